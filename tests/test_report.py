"""The sweep report: real sweeps read back, seed groups, failed jobs, the PNG."""

from __future__ import annotations

import csv
import json
import math
import statistics
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests

from optlab.report.tables import build_report
from optlab.results import RunResult, write_result

from conftest import ROOT, hparams_session, job_dirs, job_overrides, read_scalars, run_train
from notebook_reference import notebook_losses

# Its module-scoped fixture runs once: the file's tests share one pytest-xdist worker.
pytestmark = pytest.mark.xdist_group("report")

QUICK = ["trainer.max_epochs=2", "data.n_samples=400", "callbacks.progress_bar.refresh_rate=0"]


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def read_rows(sweep_dir: Path) -> list[dict[str, str]]:
    with (sweep_dir / "summary.csv").open() as stream:
        return list(csv.DictReader(stream))


def only_sweep(tmp_path: Path) -> Path:
    (sweep_dir,) = (tmp_path / "logs" / "multiruns").iterdir()
    return sweep_dir


SWEEP = [
    "-m",
    "optimizer=adam,sgd,rmsprop",
    "trainer.max_epochs=2",
    "data.n_samples=1000",
    "callbacks.progress_bar.refresh_rate=0",
]


@pytest.fixture(scope="module")
def three_optimizer_sweep(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    """``python train.py -m optimizer=adam,sgd,rmsprop``: its output and its sweep directory."""
    work = tmp_path_factory.mktemp("sweep")
    result = run_train(SWEEP, cwd=work)
    assert result.returncode == 0, result.stderr[-3000:]
    return result, only_sweep(work)


def test_a_sweep_runs_one_job_per_optimizer(three_optimizer_sweep: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    _, sweep_dir = three_optimizer_sweep
    jobs = job_dirs(sweep_dir)
    assert [job_overrides(job) for job in jobs] == [
        (
            number,
            {
                "optimizer": optimizer,
                "trainer.max_epochs": "2",
                "data.n_samples": "1000",
                "callbacks.progress_bar.refresh_rate": "0",
            },
        )
        for number, optimizer in enumerate(["adam", "sgd", "rmsprop"])
    ]
    for job in jobs:
        assert hparams_session(job)["optimizer"] == job_overrides(job)[1]["optimizer"]
    # Adam's first epoch is stable enough to match the plain loop across processes. RMSprop
    # and SGD at the notebook's rates are chaotic: float rounding that differs between this
    # process and the job's (MKL mode, thread split) moves them by far more than 1e-3, so
    # their equivalence is checked in one process by test_notebook_equivalence.py.
    adam = read_scalars(jobs[0])["train/loss_epoch"][0][1] * 800
    assert adam == pytest.approx(notebook_losses("adam", 1, samples=1000)[0], rel=1e-3)


def test_report_of_a_real_sweep_holds_what_the_event_files_hold(
    three_optimizer_sweep: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    result, sweep_dir = three_optimizer_sweep
    rows = read_rows(sweep_dir)
    assert len(rows) == 3
    final_val_loss = {}
    for row in rows:
        scalars = {tag: [value for _, value in points] for tag, points in read_scalars(sweep_dir / row["job"]).items()}
        assert row["status"] == "ok" and row["error"] == ""
        assert float(row["train/loss_epoch"]) == pytest.approx(
            scalars["train/loss_epoch"][-1], rel=1e-6
        )  # the event files, in float32
        assert float(row["best val/loss"]) == pytest.approx(min(scalars["val/loss"]), rel=1e-6)  # the event files, in float32
        assert float(row["val/acc"]) == pytest.approx(scalars["val/acc"][-1], rel=1e-6)  # the event files, in float32
        assert float(row["test/acc"]) == pytest.approx(scalars["test/acc"][-1], rel=1e-6)  # the event files, in float32
        assert float(row["test/loss"]) == pytest.approx(scalars["test/loss"][-1], rel=1e-6)  # the event files, in float32
        assert int(row["epochs"]) == 2
        assert float(row["fit_seconds"]) > 0 and float(row["steps_per_second"]) > 0
        final_val_loss[row["job"].split("_")[0]] = scalars["val/loss"][-1]

    markdown = (sweep_dir / "summary.md").read_text()
    job_rows = [line for line in markdown.splitlines() if line.startswith("| ") and "| ok |" in line]
    ranked = sorted(final_val_loss, key=final_val_loss.get)
    assert [line.split(" | ")[0].strip("| ") for line in job_rows] == ranked  # best val/loss first
    assert "optimizer=adam" in markdown and "optimizer=rmsprop" in markdown
    assert png_size(sweep_dir / "comparison.png") == (1800, 480)  # a panel per training and validation metric

    # The console ends with the table, best first, then where the plot, table and TensorBoard are.
    sweep = f"logs/multiruns/{sweep_dir.name}"
    closing = result.stdout.rstrip().splitlines()[-10:]
    assert closing[0] == f"sweep {sweep}: 3 jobs, 3 ok. Best first by val/loss (lower is better)."
    # The columns are the metrics the jobs logged, optimized_metric first, then validation, test and training
    # ones, as many as fit 80 columns; summary.md has them all.
    assert closing[1].split() == ["job", "overrides", "status", "val/loss", "val/acc", "test/loss", "test/acc"]
    assert max(len(line) for line in closing[1:5]) <= 80
    assert "train/loss_epoch" in markdown and "fit_seconds" in markdown
    assert [line.split()[0] for line in closing[2:5]] == ranked
    assert closing[-4:] == [
        f"plot      {sweep}/comparison.png",
        f"table     {sweep}/summary.md (all columns: summary.csv, statistics: groups.csv)",
        f"look      tensorboard --logdir {sweep}",
        f"sweep {sweep}: 3 jobs, 3 ok",  # the last line: how every job ended
    ]


def test_a_failed_job_is_reported_and_the_others_finish(tmp_path: Path) -> None:
    result = run_train(["-m", "optimizer.lr=0.001,-1,0.01", *QUICK], cwd=tmp_path)
    assert result.returncode != 0  # the sweep as a whole failed
    rows = {row["job"].split("_")[0]: row for row in read_rows(only_sweep(tmp_path))}
    assert [rows[n]["status"] for n in "012"] == ["ok", "failed", "ok"]
    assert rows["1"]["error"] == "optimizer.lr=-1 is not valid: expected a finite number >= 0"
    assert rows["1"]["error"].count("\n") == 0
    assert float(rows["2"]["test/acc"]) > 0.5 and int(rows["2"]["epochs"]) == 2
    assert "| failed |" in (only_sweep(tmp_path) / "summary.md").read_text()
    # The console's table lists the failed job below the jobs that finished, and the closing lines say why.
    table = result.stdout[result.stdout.index("sweep logs/multiruns/") :]
    failed_row = next(line for line in table.splitlines() if line.startswith("1 "))
    assert failed_row.split()[1:] == ["optimizer.lr=-1", "failed"]
    (why,) = [line for line in table.splitlines() if line.startswith("  1_")]
    assert why.endswith(": failed: optimizer.lr=-1 is not valid: expected a finite number >= 0")


def write_records(run_dir: Path, records: list[dict[str, object]]) -> None:
    """``metrics.jsonl`` as the run's MetricHistory writes it: one line per logging call, with its stage and epoch."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(record) + "\n" for record in records))


def write_hydra_files(run_dir: Path, overrides: list[str]) -> None:
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / ".hydra" / "overrides.yaml").write_text("".join(f"- {item}\n" for item in overrides))
    (run_dir / ".hydra" / "config.yaml").write_text("optimized_metric: val/loss\noptimized_direction: minimize\n")


def write_job(
    sweep_dir: Path,
    number: int,
    overrides: list[str],
    train_loss: list[float],
    val_acc: list[float],
    result: bool = True,
    status: str = "ok",
) -> None:
    """A job directory as Hydra and train.py leave it."""
    job_dir = sweep_dir / f"{number}_{','.join(overrides)}"
    write_hydra_files(job_dir, overrides)
    records: list[dict[str, object]] = []
    for epoch, (loss, acc) in enumerate(zip(train_loss, val_acc)):
        records.append({"step": epoch, "stage": "validate", "val/loss": loss * 2, "val/acc": acc, "epoch": epoch})
        records.append({"step": epoch, "stage": "train", "train/loss_epoch": loss, "epoch": epoch})
    if result:
        records.append(
            {
                "step": len(train_loss),
                "stage": "test",
                "test/acc": val_acc[-1],
                "test/loss": train_loss[-1] * 2,
                "epoch": len(train_loss),
            }
        )
    write_records(job_dir, records)
    if result:
        write_result(job_dir, RunResult(status=status, metrics={}, fit_seconds=2.0, steps=100, epochs=len(train_loss)))


def group_row(markdown: str, name: str) -> list[str]:
    row = next(line for line in markdown.splitlines() if line.startswith(f"| {name} |"))
    return [cell.strip() for cell in row.strip("|").split("|")]


def fmt(value: float) -> str:
    return f"{value:.4g}"


def test_jobs_that_differ_only_by_seed_carry_their_spread_interval_and_holm_corrected_tests(tmp_path: Path) -> None:
    losses = {
        ("a", 1): 0.5, ("a", 2): 0.7, ("a", 3): 0.9,
        ("b", 1): 0.01, ("b", 2): 0.02, ("b", 3): 0.06, ("b", 4): 0.03,
        ("c", 1): 0.04, ("c", 2): 0.05, ("c", 3): 0.2,
    }  # fmt: skip
    for number, ((name, seed), final) in enumerate(losses.items()):
        write_job(tmp_path, number, [f"optimizer={name}", f"seed={seed}"], [1.0, final], [0.8, 0.9 + seed / 100])
    write_job(tmp_path, 10, ["optimizer=c", "seed=4"], [1.0, math.nan], [0.8, 0.5], status="diverged")
    build_report(tmp_path)
    markdown = (tmp_path / "summary.md").read_text()
    val_losses = {name: [2 * v for (group, _), v in losses.items() if group == name] for name in "abc"}
    # The oracles: scipy's and statsmodels' own functions on the logged numbers, and counting by hand.
    for name, values in val_losses.items():
        cells = group_row(markdown, f"optimizer={name}")
        ci = stats.bootstrap((np.array(values),), np.mean, method="percentile", random_state=0).confidence_interval
        assert cells[1:3] == [str(len(values) + (name == "c")), "1" if name == "c" else "0"]  # seeds, diverged
        assert cells[3:6] == [fmt(np.mean(values)), fmt(np.std(values, ddof=1)), f"[{fmt(ci.low)}, {fmt(ci.high)}]"]
        assert min(values) <= ci.low  # a loss's interval has no negative bound
        assert cells[6] == fmt(np.mean([min(v, 2.0) for v in values]))  # best val/loss: the lower of its two epochs
    pairs = [("a", "b"), ("a", "c"), ("b", "c")]
    raw = [stats.ttest_ind(val_losses[x], val_losses[y], equal_var=False).pvalue for x, y in pairs]
    holm_p = dict(zip(pairs, multipletests(raw, method="holm")[1]))
    assert group_row(markdown, "optimizer=b")[9] == "best"  # lowest mean val/loss ranks first
    for name in "ac":
        adjusted = holm_p[tuple(sorted((name, "b")))]
        assert group_row(markdown, f"optimizer={name}")[9] == f"{adjusted:.3g}" + (" *" if adjusted < 0.05 else "")
    # P(c's seed beats b's): 4 x 4 pairs, the diverged seed of c the worst.
    c_seeds = [*val_losses["c"], math.inf]
    wins = sum(1.0 if x < y else 0.5 if x == y else 0.0 for x in c_seeds for y in val_losses["b"])
    assert group_row(markdown, "optimizer=c")[10] == f"{wins / 16:.2f}"
    assert "Holm" in markdown and "diverged" in markdown
    with (tmp_path / "groups.csv").open() as stream:
        rows = {(row["configuration"], row["column"]): row for row in csv.DictReader(stream)}
    a = rows[("optimizer=a", "val/loss")]
    assert float(a["mean"]) == statistics.fmean(val_losses["a"]) and float(a["std"]) == statistics.stdev(val_losses["a"])
    assert float(a["holm_p_vs_best"]) == pytest.approx(holm_p[("a", "b")], rel=1e-12)
    assert rows[("optimizer=c", "val/loss")]["diverged"] == "1" and rows[("optimizer=b", "val/loss")]["p_vs_best"] == ""
    assert png_size(tmp_path / "comparison.png") == (1800, 480)


def write_replicated_run(sweep_dir: Path, number: int, overrides: list[str], seeds: list[int], finals: list[float]) -> None:
    """A run directory as ``replicas=K`` leaves it: one record per replica below it, each with its seed."""
    run_dir = sweep_dir / f"{number}_{','.join(overrides)}"
    write_hydra_files(run_dir, overrides)
    write_result(run_dir, RunResult(status="ok", metrics={}, fit_seconds=2.0, steps=100, epochs=2))
    for replica, (seed, final) in enumerate(zip(seeds, finals)):
        replica_dir = run_dir / f"replica_{replica:02d}"
        write_records(
            replica_dir,
            [
                {"step": 0, "stage": "validate", "val/loss": 1.0, "epoch": 0},
                {"step": 0, "stage": "train", "train/loss_epoch": 1.0, "epoch": 0},
                {"step": 1, "stage": "validate", "val/loss": final, "epoch": 1},
                {"step": 1, "stage": "train", "train/loss_epoch": final / 2, "epoch": 1},
            ],
        )
        write_result(replica_dir, RunResult(status="ok", metrics={}, fit_seconds=2.0, steps=100, epochs=2))
        (replica_dir / "replica.json").write_text(json.dumps({"replica": replica, "seed": seed}))


def test_replicas_and_seed_jobs_are_seeds_alike(tmp_path: Path) -> None:
    write_replicated_run(tmp_path, 0, ["optimizer=a", "replicas=3"], [0, 1, 2], [0.3, 0.4, 0.5])
    write_replicated_run(tmp_path, 1, ["optimizer=b", "replicas=3"], [0, 1, 2], [0.1, 0.12, 0.11])
    write_job(tmp_path, 2, ["optimizer=b", "seed=3"], [1.0, 0.065], [0.8, 0.9])  # val/loss 0.13, a fourth seed of b
    jobs = build_report(tmp_path)
    assert [(job.name, job.overrides.get("seed")) for job in jobs][:3] == [
        (f"0_optimizer=a,replicas=3/replica_0{k}", str(k)) for k in range(3)
    ]
    markdown = (tmp_path / "summary.md").read_text()
    b = group_row(markdown, "optimizer=b")
    assert b[1:4] == ["4", "0", fmt(np.mean([0.1, 0.12, 0.11, 0.13]))]
    welch = stats.ttest_ind([0.1, 0.12, 0.11, 0.13], [0.3, 0.4, 0.5], equal_var=False)  # one pair: Holm leaves p as is
    assert group_row(markdown, "optimizer=a")[9] == f"{welch.pvalue:.3g}" + (" *" if welch.pvalue < 0.05 else "")
    rows = read_rows(tmp_path)
    assert rows[0]["job"] == "0_optimizer=a,replicas=3/replica_00" and float(rows[0]["val/loss"]) == 0.3
    assert (tmp_path / rows[0]["job"]).is_dir()


def test_a_job_that_never_finished_is_reported_unfinished(tmp_path: Path) -> None:
    write_job(tmp_path, 0, ["optimizer=a"], [1.0, 0.5], [0.8, 0.9])
    write_job(tmp_path, 1, ["optimizer=b"], [1.0], [0.7], result=False)
    build_report(tmp_path)
    rows = read_rows(tmp_path)
    assert [row["status"] for row in rows] == ["ok", "unfinished"]
    assert rows[1]["error"] == "no result.json: killed, or still running elsewhere"
    assert rows[1]["train/loss_epoch"] == "1.0"  # what it did write is still reported


def test_report_command_rebuilds_any_sweep_dir(tmp_path: Path) -> None:
    write_job(tmp_path, 0, ["optimizer=a"], [1.0, 0.5], [0.8, 0.9])
    command = [sys.executable, "-m", "optlab.report", str(tmp_path)]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert {"comparison.png", "summary.csv", "summary.md"} <= {p.name for p in tmp_path.iterdir()}
    missing = run_train([str(tmp_path / "nope")], cwd=tmp_path, script=ROOT / "src" / "optlab" / "report" / "__main__.py")
    assert missing.returncode == 2 and "is not a directory" in missing.stderr


@pytest.mark.parametrize("values, log_scale", [([1.0, 0.5], False), ([3.0, 1e-4], True)])
def test_loss_axis_turns_logarithmic_when_values_span_decades(values: list[float], log_scale: bool) -> None:
    import numpy as np

    from optlab.report.plot import spans_decades

    assert spans_decades(np.array(values)) is log_scale
