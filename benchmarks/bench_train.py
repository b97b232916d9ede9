"""Speed of the template against the notebook's plain loop, side by side.

    python benchmarks/bench_train.py            # or: make bench

1. Per epoch, in one process, interleaved after one unmeasured round: the notebook's loop vs
   ``optlab.train.train`` on the config ``train.py`` composes (real Trainer, TensorBoard
   logger, checkpoints, per-epoch validation), checking that both give the same losses.
   Epoch times are read from the run's own event files (the wall time of each epoch's
   ``train/loss_epoch`` point), so no timing callback adds to what is measured.
2. Ablation: the same run with one speed measure taken away at a time (each measure of
   ``optlab.profiler``, the fused optimizer, the in-memory batches, the progress bar's refresh
   rate), interleaved with the default run; each measure's saving is the median of the
   paired differences.
   The layout of the replicas' stacked matrices is measured on their vectorised step alone.
3. Replicas: a 3-optimizer x 10-seed comparison (30 trained models) as 30 notebook loops vs
   three runs of ``replicas=10``, per trained model and epoch, interleaved per optimizer
   (Adam's replicas checked against their loops' first-epoch losses); then the time per
   epoch of ``replicas=K`` for K = 1, 4, 10, 32, relative to K = 1.
4. Whole process: ``python train.py`` vs ``benchmarks/plain_notebook.py``, wall time and
   peak memory, and the time from launch to the first training step.
5. The three-optimizer sweep on the basic (sequential) launcher vs ``hydra/launcher=parallel``
   (this template's; all jobs at once, and at most two), and ``hydra/launcher=joblib`` (Hydra's
   plugin), checking that every launcher gives the same losses.
6. The optimizer protocol (``experiment=optimizer_protocol``: 4 optimizers x 9 learning rates x
   3 tuning seeds, then 10 fresh seeds for each tuned optimizer, 148 models, and 10 for each at
   torch's defaults: 188) as one ``train.py`` process, against the same 188 models (each job's
   optimizer config and seeds, read back from the protocol's own directories) trained one
   notebook loop each; per trained model. The loops train only; the protocol also validates,
   tests, checkpoints and logs every model.

Every figure is the median over the repetitions; ratios are ours / plain.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import logging
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the notebook's loop lives with the tests, as their oracle
sys.path.insert(0, str(ROOT / "benchmarks"))

from notebook_reference import NOTEBOOK_OPTIMIZERS, NeuralNetwork, notebook_data, train_network  # noqa: E402

EPOCHS = 10
N_TRAIN = 4000
# A root handler before Lightning is imported: Lightning then adds no console handler of its
# own, and its INFO lines (as in train.py, where they go to train.log) stay off this report.
logging.basicConfig(level=logging.WARNING, format="%(message)s")


def plain_epoch_sums() -> tuple[float, list[float]]:
    """The notebook's Adam loop, one epoch at a time; returns the mean seconds of epochs 2-10 and the epoch sums."""
    return plain_loop_seconds("adam", 2020, EPOCHS)


def template_epoch_sums(output_dir: Path, overrides: Sequence[str] = (), epochs: int = EPOCHS) -> tuple[float, list[float]]:
    """One run through the task train.py calls; returns the mean seconds of epochs 2-10 and the epoch sums."""
    from hydra import compose, initialize_config_dir
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from optlab.train import train

    with initialize_config_dir(str(ROOT / "configs"), version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[
                f"paths.output_dir={output_dir}",
                f"paths.log_dir={output_dir}",
                f"trainer.max_epochs={epochs}",
                "callbacks.progress_bar.terminal_only=false",  # measured as a terminal shows it, bar included
                *overrides,
            ],
        )
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):  # the progress bar still draws
        train(cfg)
    events = EventAccumulator(str(output_dir))
    events.Reload()
    epoch_ends = events.Scalars("train/loss_epoch")
    assert len(epoch_ends) == epochs
    seconds = [later.wall_time - earlier.wall_time for earlier, later in zip(epoch_ends, epoch_ends[1:])]
    return statistics.fmean(seconds), [event.value * N_TRAIN for event in epoch_ends]


def seeded_network(seed: int) -> NeuralNetwork:
    """The notebook's network as ``torch.manual_seed(seed)`` right before its layers would draw it."""
    model = NeuralNetwork()  # seeds 2020 itself
    torch.manual_seed(seed)
    for layer in (model.fc1, model.fc2, model.out):  # in the order the layers were created
        layer.reset_parameters()
    return model


def plain_loop_seconds(optimizer: str, seed: int, epochs: int) -> tuple[float, list[float]]:
    """One notebook loop: the mean seconds of its epochs after the first, and its epoch sums."""
    X_train, _, Y_train, _ = notebook_data()
    model = seeded_network(seed)
    step = NOTEBOOK_OPTIMIZERS[optimizer](model.parameters())
    seconds, sums = [], []
    for _ in range(epochs):
        started = time.perf_counter()
        sums += train_network(model, step, torch.nn.BCELoss(), 1, 16, X_train, Y_train)
        seconds.append(time.perf_counter() - started)
    return statistics.fmean(seconds[1:]), sums


def replica_epoch_sums(run_dir: Path, replicas: int) -> list[list[float]]:
    """Each replica's epoch sums, from its own event file (``<run>/replica_NN/``)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    sums = []
    for k in range(replicas):
        events = EventAccumulator(str(run_dir / f"replica_{k:02d}"))
        events.Reload()
        sums.append([event.value * N_TRAIN for event in events.Scalars("train/loss_epoch")])
    return sums


REPLICA_COUNTS = (1, 4, 10, 32)


def replica_step_seconds(transposed: bool, replicas: int = 10, steps: int = 200) -> float:
    """Median seconds of one vectorised training step (model_step, backward, fused Adam) over ``replicas`` notebook models."""
    from experiment.model import BinaryClassifier
    from optlab.replicas.module import Replicas

    models = []
    for k in range(replicas):
        torch.manual_seed(2020 + k)
        models.append(BinaryClassifier(input_size=64))
    stacked = Replicas(
        models, seeds=list(range(replicas)), optimizer=lambda params: torch.optim.Adam(params, fused=True), transposed=transposed
    )
    optimizer = stacked.configure_optimizers()
    X_train, _, Y_train, _ = notebook_data()
    seconds = []
    for step in range(steps):
        batch = (X_train[16 * step : 16 * step + 16], Y_train[16 * step : 16 * step + 16])
        started = time.perf_counter()
        optimizer.zero_grad()
        stacked._step(stacked._weights(), batch)[0].sum().backward()
        optimizer.step()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds[10:])


# Each speed measure the template keeps, and the overrides that take it away.
ABLATION = {
    "fused Adam (optimizer.fused)": ["optimizer.fused=false"],
    "no-op profiler (optlab.profiler.NoProfiler)": ["trainer.profiler=null"],
    "in-memory batches (TensorBatches, not a DataLoader)": ["data._target_=probes.DataLoaderBlobs"],
    "progress bar redrawn every 25 batches, not every batch": ["callbacks.progress_bar.refresh_rate=1"],
}


def check_same_losses(ours: list[float], plain: list[float]) -> float:
    """Largest relative difference; fails loudly if speed changed the numbers."""
    worst = max(abs(a - b) / max(abs(b), 1e-12) for a, b in zip(ours, plain))
    for a, b in zip(ours, plain):
        if abs(a - b) > max(1e-3 * abs(b), 2e-4):
            raise SystemExit(f"losses differ: template {ours} vs plain loop {plain}")
    return worst


def measure_process(command: list[str], cwd: Path) -> tuple[float, float, str]:
    """Wall seconds and peak RSS (MiB) of one command, measured from a fresh parent."""
    probe = (
        "import resource, subprocess, sys, time\n"
        "start = time.time()\n"
        "done = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "wall = time.time() - start\n"
        "sys.stdout.write(done.stdout)\n"
        "if done.returncode: sys.stderr.write(done.stderr); sys.exit(done.returncode)\n"
        "print(f'PROBE {start:.6f} {wall:.6f} {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}')\n"
    )
    done = subprocess.run([sys.executable, "-c", probe, *command], cwd=cwd, capture_output=True, text=True, check=True)
    start, wall, max_rss_kib = done.stdout.strip().splitlines()[-1].split()[1:]
    return float(wall), int(max_rss_kib) / 1024, done.stdout + f"\nSTART {start}"


def first_step_delay(output: str) -> float:
    start = float(output.split("START ")[-1])
    first = next(line for line in output.splitlines() if line.startswith("FIRST_STEP_AT"))
    return float(first.split()[1]) - start


def sweep(cwd: Path, launcher: list[str]) -> tuple[float, dict[str, str]]:
    started = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "train.py"),
            "-m",
            "optimizer=adam,sgd,rmsprop",
            "callbacks.progress_bar=null",
            "+trainer.enable_progress_bar=false",
            *launcher,
        ],
        cwd=cwd,
        capture_output=True,
        check=True,
    )
    wall = time.perf_counter() - started
    sweep_dir = max((cwd / "logs" / "multiruns").iterdir(), key=lambda p: p.stat().st_mtime)
    with (sweep_dir / "summary.csv").open() as stream:
        finals = {row["job"]: row["train/loss_epoch"] for row in csv.DictReader(stream)}
    return wall, finals


def same_finals(ours: dict[str, str], sequential: dict[str, str]) -> bool:
    """Each job's final training loss equals the sequential sweep's to 1e-3 relative."""
    return ours.keys() == sequential.keys() and all(
        abs(float(ours[job]) - float(sequential[job])) <= 1e-3 * abs(float(sequential[job])) + 1e-9 for job in sequential
    )


def protocol_models(sweep_dir: Path) -> tuple[list[tuple[Any, int]], int]:
    """Every model the protocol's report counts (its optimizer config and seed), and how many it trained.

    A configuration whose replicas diverged is trained again one seed per job: those seeds are
    trained twice, and are one model each here.
    """
    from omegaconf import OmegaConf

    models, trained = {}, 0
    for config_file in sorted(sweep_dir.glob("*/.hydra/config.yaml")):
        config = OmegaConf.load(config_file)
        replicas = int(config.get("replicas", 1))
        trained += replicas
        for k in range(replicas):
            models[OmegaConf.to_yaml(config.optimizer), int(config.seed) + k] = config.optimizer
    return [(optimizer, seed) for (_, seed), optimizer in models.items()], trained


def plain_protocol_seconds(models: Sequence[tuple[Any, int]], epochs: int, train_rows: int) -> float:
    """The protocol's models trained one notebook loop each, on the rows the protocol trains on."""
    from hydra.utils import instantiate

    X_train, _, Y_train, _ = notebook_data()
    X_train, Y_train = X_train[:train_rows], Y_train[:train_rows]
    started = time.perf_counter()
    for optimizer, seed in models:
        model = seeded_network(seed)
        train_network(model, instantiate(optimizer)(model.parameters()), torch.nn.BCELoss(), epochs, 16, X_train, Y_train)
    return time.perf_counter() - started


def median_ratio(ours: list[float], plain: list[float]) -> float:
    return statistics.median(o / p for o, p in zip(ours, plain))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--sweep-reps", type=int, default=3)
    parser.add_argument("--ablation-reps", type=int, default=5)
    parser.add_argument("--replica-reps", type=int, default=2)
    parser.add_argument("--replica-seeds", type=int, default=10)
    parser.add_argument("--replica-epochs", type=int, default=3)
    parser.add_argument("--protocol-epochs", type=int, default=2, help="epochs per model in the protocol's 148")
    parser.add_argument(
        "--skip", nargs="*", default=[], choices=["epoch", "ablation", "replicas", "process", "sweep", "protocol"]
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="optlab-bench-"))
    rows: list[tuple[str, str, str, str]] = []
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads; work dir {work}",
        flush=True,
    )

    if "epoch" not in args.skip:
        plain_epoch_sums()  # one unmeasured round: neither path pays first-call costs in a measured one
        template_epoch_sums(work / "warm-up")
        plain, ours, worst = [], [], 0.0
        for rep in range(args.reps):
            plain_seconds, plain_sums = plain_epoch_sums()
            ours_seconds, ours_sums = template_epoch_sums(work / f"epoch-{rep}")
            worst = max(worst, check_same_losses(ours_sums, plain_sums))
            plain.append(plain_seconds)
            ours.append(ours_seconds)
            print(f"  epoch rep {rep}: plain {plain[-1] * 1e3:.1f} ms, template {ours[-1] * 1e3:.1f} ms", flush=True)
        rows.append(
            (
                "time per epoch (s)",
                f"{statistics.median(plain):.3f}",
                f"{statistics.median(ours):.3f}",
                f"{median_ratio(ours, plain):.2f}",
            )
        )
        print(f"  losses equal to the plain loop's: largest relative difference {worst:.1e}", flush=True)

    if "ablation" not in args.skip:
        savings: dict[str, list[float]] = {name: [] for name in ABLATION}
        for rep in range(args.ablation_reps):
            for number, (name, overrides) in enumerate(ABLATION.items()):
                with_it, _ = template_epoch_sums(work / f"ablation-{rep}-{number}-with")
                without, _ = template_epoch_sums(work / f"ablation-{rep}-{number}-without", overrides)
                savings[name].append((without - with_it) / without)
            print(f"  ablation rep {rep}: " + ", ".join(f"{100 * v[-1]:+.1f}%" for v in savings.values()), flush=True)
        ablation_rows = [
            (name, f"{100 * statistics.median(values):+.1f}%", f"{100 * min(values):+.1f}% .. {100 * max(values):+.1f}%")
            for name, values in savings.items()
        ]
        # The replicas' layout measure, on the vectorised step alone (a run with replicas pays it every step).
        layout = []
        for _ in range(args.ablation_reps):
            with_it, without = replica_step_seconds(transposed=True), replica_step_seconds(transposed=False)
            layout.append((without - with_it) / without)
        ablation_rows.append(
            (
                "replicas=10: matrices stored [K, in, out] (optlab.replicas.layout), per vectorised step",
                f"{100 * statistics.median(layout):+.1f}%",
                f"{100 * min(layout):+.1f}% .. {100 * max(layout):+.1f}%",
            )
        )

    if "replicas" not in args.skip:
        # 3 optimizers x SEEDS seeds: 30 notebook loops, one per trained model, against three
        # runs of replicas=SEEDS, interleaved per optimizer; the ratio is per trained model.
        seeds, epochs = args.replica_seeds, args.replica_epochs
        ratios, plain_per_model, ours_per_model, worst, later = [], [], [], 0.0, 0.0
        template_epoch_sums(work / "replicas-warm-up", [f"replicas={seeds}"], epochs=2)
        for rep in range(args.replica_reps):
            plain_total = ours_total = 0.0
            for optimizer in NOTEBOOK_OPTIMIZERS:
                plain_runs = [plain_loop_seconds(optimizer, 2020 + k, epochs) for k in range(seeds)]
                run_dir = work / f"replicas-{rep}-{optimizer}"
                seconds, _ = template_epoch_sums(run_dir, [f"optimizer={optimizer}", f"replicas={seeds}"], epochs=epochs)
                plain_total += sum(seconds for seconds, _ in plain_runs)
                ours_total += seconds
                if optimizer == "adam":  # each replica's first epoch is its loop's; later, rounding grows apart
                    for (_, plain_sums), replica_sums in zip(plain_runs, replica_epoch_sums(run_dir, seeds), strict=True):
                        worst = max(worst, check_same_losses(replica_sums[:1], plain_sums[:1]))
                        later = max(later, max(abs(a - b) / abs(b) for a, b in zip(replica_sums, plain_sums)))
            plain_per_model.append(plain_total / (3 * seeds))
            ours_per_model.append(ours_total / (3 * seeds))
            ratios.append(ours_total / plain_total)
            print(
                f"  replicas rep {rep}: per trained model and epoch, plain {plain_per_model[-1] * 1e3:.1f} ms, "
                f"replicas={seeds} {ours_per_model[-1] * 1e3:.1f} ms",
                flush=True,
            )
        rows.append(
            (
                f"3 optimizers x {seeds} seeds, per trained model and epoch: {3 * seeds} notebook loops vs "
                f"3 runs of replicas={seeds} (s)",
                f"{statistics.median(plain_per_model):.3f}",
                f"{statistics.median(ours_per_model):.3f}",
                f"{statistics.median(ratios):.2f}",
            )
        )
        print(
            f"  Adam replicas' first-epoch losses equal to their loops': largest relative difference {worst:.1e} "
            f"(over all {epochs} epochs {later:.1e}: fused vs the notebook's Adam and batched matmuls round apart)",
            flush=True,
        )
        scaling: dict[int, list[float]] = {k: [] for k in REPLICA_COUNTS}
        for rep in range(args.replica_reps):
            for k in REPLICA_COUNTS:
                scaling[k].append(template_epoch_sums(work / f"scaling-{rep}-{k}", [f"replicas={k}"], epochs=epochs)[0])
            print(f"  scaling rep {rep}: " + ", ".join(f"K={k} {scaling[k][-1]:.2f} s" for k in REPLICA_COUNTS), flush=True)
        for k in REPLICA_COUNTS[1:]:
            ratio = statistics.median(o / one for o, one in zip(scaling[k], scaling[1]))
            rows.append(
                (
                    f"replicas={k} vs replicas=1, time per epoch (s); per replica {ratio / k:.2f}",
                    f"{statistics.median(scaling[1]):.3f}",
                    f"{statistics.median(scaling[k]):.3f}",
                    f"{ratio:.2f}",
                )
            )

    if "process" not in args.skip:
        plain_wall, ours_wall, plain_rss, ours_rss, startup = [], [], [], [], []
        train_command = [
            sys.executable,
            str(ROOT / "train.py"),
            "callbacks.progress_bar.refresh_rate=0",
            "+callbacks.first_step._target_=probes.FirstStepProbe",
        ]
        os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT / "benchmarks"), os.environ.get("PYTHONPATH", "")])
        for rep in range(args.reps):
            wall, rss, _ = measure_process([sys.executable, str(ROOT / "benchmarks" / "plain_notebook.py")], work)
            plain_wall.append(wall)
            plain_rss.append(rss)
            wall, rss, output = measure_process(train_command, work)
            ours_wall.append(wall)
            ours_rss.append(rss)
            startup.append(first_step_delay(output))
            print(
                f"  process rep {rep}: plain {plain_wall[-1]:.2f} s {plain_rss[-1]:.0f} MiB, "
                f"train.py {ours_wall[-1]:.2f} s {ours_rss[-1]:.0f} MiB, first step after {startup[-1]:.2f} s",
                flush=True,
            )
        rows.append(
            (
                "whole process (s)",
                f"{statistics.median(plain_wall):.2f}",
                f"{statistics.median(ours_wall):.2f}",
                f"{median_ratio(ours_wall, plain_wall):.2f}",
            )
        )
        rows.append(
            (
                "peak memory (MiB)",
                f"{statistics.median(plain_rss):.0f}",
                f"{statistics.median(ours_rss):.0f}",
                f"{median_ratio(ours_rss, plain_rss):.2f}",
            )
        )
        rows.append(("launch to first training step (s)", "", f"{statistics.median(startup):.2f}", ""))

    if "sweep" not in args.skip:
        launchers = {
            "sequential": [],
            "parallel": ["hydra/launcher=parallel"],
            "parallel, n_jobs=2": ["hydra/launcher=parallel", "hydra.launcher.n_jobs=2"],
            "joblib": ["hydra/launcher=joblib"],
        }
        parallel_launchers = [name for name in launchers if name != "sequential"]
        walls: dict[str, list[float]] = {name: [] for name in launchers}
        for rep in range(args.sweep_reps):
            finals = {}
            for name, launcher in launchers.items():
                wall, finals[name] = sweep(work, launcher)
                walls[name].append(wall)
            for name in parallel_launchers:
                if not same_finals(finals["sequential"], finals[name]):
                    raise SystemExit(
                        f"{name} sweep numbers differ from the sequential sweep: {finals[name]} vs {finals['sequential']}"
                    )
            print(
                f"  sweep rep {rep}: " + ", ".join(f"{name} {walls[name][-1]:.1f} s" for name in launchers) + " (same numbers)",
                flush=True,
            )
        for name in parallel_launchers:
            rows.append(
                (
                    f"3-optimizer sweep, hydra/launcher={name} vs sequential (s)",
                    f"{statistics.median(walls['sequential']):.1f}",
                    f"{statistics.median(walls[name]):.1f}",
                    f"{median_ratio(walls[name], walls['sequential']):.2f}",
                )
            )

    if "protocol" not in args.skip:
        epochs = args.protocol_epochs
        sweep_dir = work / "protocol"
        command = [
            sys.executable,
            str(ROOT / "train.py"),
            "experiment=optimizer_protocol",
            f"trainer.max_epochs={epochs}",
            "callbacks.progress_bar.refresh_rate=0",
            f"hydra.sweep.dir={sweep_dir}",
        ]
        ours_wall, _, _ = measure_process(command, work)
        models, trained = protocol_models(sweep_dir)
        train_rows = int(N_TRAIN * (1 - 0.2))  # the experiment validates on the last fifth of the training rows
        plain_wall = plain_protocol_seconds(models, epochs, train_rows)
        print(
            f"  protocol: {len(models)} models, {epochs} epochs each: train.py {ours_wall:.0f} s ({trained} trained: "
            f"the seeds of replicas that diverged again one job each), one notebook loop per model {plain_wall:.0f} s",
            flush=True,
        )
        rows.append(
            (
                f"optimizer protocol, {len(models)} trained models of {epochs} epochs, per model: "
                "one notebook loop each vs `experiment=optimizer_protocol` (s)",
                f"{plain_wall / len(models):.2f}",
                f"{ours_wall / len(models):.2f}",
                f"{ours_wall / plain_wall:.2f}",
            )
        )

    measured = (
        f"Measured by `make bench` on {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{time.strftime('%Y-%m-%d')}; medians of interleaved repetitions."
    )
    table = markdown_table(["measure", "plain / baseline", "optlab", "ratio"], rows)
    print("\n" + table)
    if rows and not args.skip:
        write_between_markers(ROOT / "README.md", f"{measured}\n\n{table}")
    if "ablation" not in args.skip:
        ablation = markdown_table(["speed measure", "time per epoch it saves (median)", "range over reps"], ablation_rows)
        print("\n" + ablation)
        if not args.skip:
            write_between_markers(ROOT / "docs" / "speed.md", f"{measured}\n\n{table}\n\nWhat each measure saves:\n\n{ablation}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\n(benchmark process peak {peak:.0f} MiB)")


def markdown_table(header: list[str], rows: list[tuple[str, ...]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join([*lines, *("| " + " | ".join(row) + " |" for row in rows)])


def write_between_markers(path: Path, text: str) -> None:
    """Replace what lies between ``<!-- bench:start -->`` and ``<!-- bench:end -->`` in ``path`` (a full run only)."""
    content = path.read_text()
    start, end = content.index("<!-- bench:start -->\n") + len("<!-- bench:start -->\n"), content.index("<!-- bench:end -->")
    path.write_text(content[:start] + text + "\n" + content[end:])
    print(f"wrote the table into {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
