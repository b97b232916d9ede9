"""``python train.py`` as a user runs it: real subprocesses, real Hydra multirun, real event files."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest
from hydra.types import RunMode

from conftest import CONFIG_DIR, ROOT, compose_config, hparams_session, job_dirs, read_scalars, run_train, train_here
from notebook_reference import NOTEBOOK_ADAM_LOSSES

# Its module-scoped fixture runs once: the file's tests share one pytest-xdist worker.
pytestmark = pytest.mark.xdist_group("cli")


REQUIRED_TAGS = {"train/loss_step", "train/loss_epoch", "val/loss", "val/acc", "test/loss", "test/acc"}


def only_child(directory: Path) -> Path:
    children = list(directory.iterdir())
    assert len(children) == 1, children
    return children[0]


@pytest.fixture(scope="module")
def default_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path, Path]:
    """``python train.py`` on the notebook's job for two epochs, every step logged: its output, work dir and run dir."""
    work = tmp_path_factory.mktemp("default")
    result = run_train(
        ["trainer.max_epochs=2", "callbacks.progress_bar.refresh_rate=50", "trainer.log_every_n_steps=1"], cwd=work
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result, work, only_child(work / "logs" / "runs")


def test_a_run_writes_everything_under_its_output_dir(default_run: tuple[subprocess.CompletedProcess[str], Path, Path]) -> None:
    _, work, run_dir = default_run
    assert [p.name for p in work.iterdir()] == ["logs"]  # nothing lands in the working directory
    assert run_dir.name.endswith("_callbacks.progress_bar.refresh_rate-50+trainer.log_every_n_steps-1+trainer.max_epochs-2")
    for expected in (
        "checkpoints/last.ckpt",
        "checkpoints/best.ckpt",
        ".hydra/config.yaml",
        "config_tree.txt",
        "train.log",
        "result.json",
        "metrics.jsonl",
    ):
        assert (run_dir / expected).is_file(), expected

    scalars = read_scalars(run_dir)
    assert REQUIRED_TAGS <= scalars.keys()
    assert "hp_metric" not in scalars
    assert len(scalars["train/loss_epoch"]) == 2 and len(scalars["val/acc"]) == 2
    assert [step for step, _ in scalars["train/loss_step"]] == list(range(500))  # every batch, as asked
    # The epoch loss is the mean of that epoch's step losses.
    first_epoch = [value for _, value in scalars["train/loss_step"][:250]]
    assert scalars["train/loss_epoch"][0][1] == pytest.approx(sum(first_epoch) / 250, rel=1e-5)

    hparams = hparams_session(run_dir)
    assert hparams["optimizer"] == "adam"
    assert hparams["optimizer/lr"] == pytest.approx(0.001) and hparams["optimizer/fused"] == "true"
    assert hparams["data/batch_size"] == 16 and hparams["seed"] == 2020
    assert hparams["model/hidden_sizes"] == "[256, 1024]"


def console_lines(stdout: str) -> list[str]:
    """What stays on screen, the progress bar aside: each redraw (after a carriage return) replaces the last."""
    lines = [line.split("\r")[-1].rstrip() for line in stdout.splitlines()]
    return [line for line in lines if line.strip() and "it/s" not in line]


def test_the_console_shows_header_bar_epoch_table_and_closing_block_once(
    default_run: tuple[subprocess.CompletedProcess[str], Path, Path],
) -> None:
    result, _, run_dir = default_run
    run = f"logs/runs/{run_dir.name}"
    lines = console_lines(result.stdout)

    # A short header: what runs and where its outputs go.
    assert [line.split()[0] for line in lines[:5]] == ["data", "model", "optimizer", "trainer", "outputs"]
    assert lines[0] == "data       blobs: BlobDataModule, batch 16; the model gets input_size=64"
    assert lines[1] == "model      mlp: 64-256-1024-1, 280,833 parameters"
    assert lines[2] == "optimizer  adam: torch.optim.Adam(fused=True, lr=0.001)"
    assert lines[3].startswith("trainer    2 epochs on cpu x1")
    assert lines[4].startswith(f"outputs    {run}")
    assert "├──" not in result.stdout  # the config tree only when asked (print_config=true)

    # Not a terminal (a pipe, a log file): rows without a progress bar's redraws between them.
    assert "\r" not in result.stdout + result.stderr and "it/s" not in result.stdout + result.stderr

    # One row per epoch: the notebook's numbers (its printed sums over the 4000 rows, as means), then validation.
    # The columns are the metrics the model logged per epoch.
    assert lines[5].split() == ["epoch", "train/loss_epoch", "val/loss", "val/acc"]
    first, second = lines[6].split(), lines[7].split()
    assert first[0] == "1/2" and second[0] == "2/2"
    for row, printed in zip((first, second), NOTEBOOK_ADAM_LOSSES):  # to 1e-3: the fused Adam kernel rounds differently
        assert abs(float(row[1]) * 4000 - printed) <= 1e-3 * printed, (row, printed)
    assert 0.99 < float(second[3]) <= 1

    # A closing block, one fact a line: test metrics, the last and the best validation (the epoch best.ckpt
    # holds), the run directory, the exact TensorBoard command.
    scalars = read_scalars(run_dir)
    test_acc = scalars["test/acc"][-1][1]
    assert lines[8].startswith("test      epoch 2 weights: loss ") and lines[8].endswith(f", acc {test_acc:.6g}")
    assert lines[9].startswith("last val  epoch 2: loss ")
    best_epoch = min(range(2), key=lambda epoch: scalars["val/loss"][epoch][1]) + 1
    assert lines[10].startswith(f"best val  epoch {best_epoch} (best.ckpt), by val/loss: loss ")
    assert lines[-2:] == [f"run       {run}", f"look      tensorboard --logdir {run}"]

    # Nothing twice, no advertisements, no warnings nobody can act on, no Lightning chatter.
    assert len(lines) == len(set(lines)), lines
    for noise in ("Tip", "litlogger", "LeafSpec", "INFO", "GPU available", "Seed set", "Trainer.fit", "Warning", "srun"):
        assert noise not in result.stdout + result.stderr, noise
    assert "GPU available: False" in (run_dir / "train.log").read_text()  # Lightning's messages are kept in the log


def test_help_starts_with_this_templates_usage(tmp_path: Path) -> None:
    result = run_train(["--help"], cwd=tmp_path)
    assert result.returncode == 0
    first = result.stdout.splitlines()[:4]
    assert first[0].startswith("optlab: ")
    assert "python train.py" in first[2] and "the notebook" in first[2]
    assert "logs/runs/<time>_<overrides>/" in result.stdout and "tensorboard --logdir logs/" in result.stdout
    assert "== Configuration groups ==" in result.stdout  # Hydra's own part follows


def test_the_named_experiment_is_the_three_optimizer_sweep() -> None:
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", ["experiment=optimizer_comparison"], return_hydra_config=True)
    assert cfg.hydra.mode == RunMode.MULTIRUN
    assert cfg.hydra.sweeper.params == {"optimizer": "adam,sgd,rmsprop"}


def test_sweeping_two_keys_and_rerunning_never_shares_a_directory(tmp_path: Path) -> None:
    args = ["-m", "optimizer=adam,sgd", "seed=1,2", "trainer.max_epochs=1", "data.n_samples=400"]
    for _ in range(2):
        result = run_train(args, cwd=tmp_path)
        assert result.returncode == 0, result.stderr[-3000:]
    sweeps = sorted((tmp_path / "logs" / "multiruns").iterdir())
    assert len(sweeps) == 2  # the same command twice: two sweeps, side by side
    for sweep_dir in sweeps:
        jobs = job_dirs(sweep_dir)
        assert [job.name for job in jobs] == [
            "0_data.n_samples-400+optimizer-adam+seed-1+trainer.max_epochs-1",
            "1_data.n_samples-400+optimizer-adam+seed-2+trainer.max_epochs-1",
            "2_data.n_samples-400+optimizer-sgd+seed-1+trainer.max_epochs-1",
            "3_data.n_samples-400+optimizer-sgd+seed-2+trainer.max_epochs-1",
        ]
        for job in jobs:
            # One run's points only: 20 steps of 16 rows (320 training rows), every 10th logged once.
            assert [step for step, _ in read_scalars(job)["train/loss_step"]] == [9, 19]
    # Different seeds give different initial weights, so different losses.
    adam_seed_1, adam_seed_2 = (read_scalars(job)["train/loss_epoch"][0][1] for job in job_dirs(sweeps[0])[:2])
    assert adam_seed_1 != adam_seed_2


def test_reusing_a_run_directory_is_refused(tmp_path: Path) -> None:
    small = ["trainer.max_epochs=1", "data.n_samples=200"]
    train_here(compose_config(tmp_path / "run", small))  # the earlier run, trained here to save a process start
    before = {path: path.read_bytes() for path in (tmp_path / "run").rglob("*") if path.is_file()}
    result = run_train([f"hydra.run.dir={tmp_path / 'run'}", *small], cwd=tmp_path)
    assert result.returncode == 1
    assert "already holds an earlier run" in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert {path: path.read_bytes() for path in (tmp_path / "run").rglob("*") if path.is_file()} == before  # untouched


def test_unknown_optimizer_lists_the_available_ones(tmp_path: Path) -> None:
    result = run_train(["optimizer=nonexistent"], cwd=tmp_path)
    assert result.returncode != 0
    assert "Could not find 'optimizer/nonexistent'" in result.stderr
    assert "Available options in 'optimizer'" in result.stderr
    for name in ("adam", "adamw", "rmsprop", "sgd"):
        assert f"\t{name}\n" in result.stderr
    assert "Traceback" not in result.stderr


def test_eval_without_a_checkpoint_says_which_key_to_set(tmp_path: Path) -> None:
    result = run_train([], cwd=tmp_path, script="eval.py")
    assert result.returncode == 1
    lines = (result.stdout + result.stderr).strip().splitlines()
    assert lines[-1].endswith(
        "ckpt_path=None is not valid: expected the checkpoint to test, "
        "e.g. python eval.py ckpt_path=logs/runs/<run>/checkpoints/last.ckpt"
    )
    assert "Traceback" not in result.stdout + result.stderr
    (record,) = (tmp_path / "logs" / "eval").glob("*/result.json")  # the failed evaluation's record says why
    assert json.loads(record.read_text())["status"] == "failed" and "ckpt_path=None" in record.read_text()


def test_ddp_on_cpu_trains_with_two_processes_and_one_set_of_logs(tmp_path: Path) -> None:
    result = run_train(
        [
            "trainer=ddp",
            "trainer.accelerator=cpu",
            "trainer.devices=2",
            "trainer.max_epochs=1",
            "callbacks.progress_bar.refresh_rate=0",
            "print_config=true",
        ],
        cwd=tmp_path,
        env={"PYTHONWARNINGS": "default"},  # every warning Lightning gives reaches the console filter
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert [p.name for p in tmp_path.iterdir()] == ["logs"]
    run_dir = only_child(tmp_path / "logs" / "runs")
    # Each of the two ranks trains on half of the 250 batches.
    scalars = read_scalars(run_dir)
    assert [step for step, _ in scalars["train/loss_step"]] == list(range(9, 125, 10))  # every 10th optimizer step
    assert REQUIRED_TAGS <= scalars.keys()
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    assert len(list(run_dir.glob(".hydra/config.yaml"))) == 1
    assert "on cpu x2 (DDP)" in result.stdout  # the header says how it ran
    # Asked for, the resolved config tree is printed before training, by rank 0 only.
    assert result.stdout.count("├── optimizer") == 1 and "strategy: ddp" in result.stdout
    assert "warning" not in (result.stdout + result.stderr).lower()  # no sync_dist advice about the model's own logs


def run_in_terminal(args: list[str], cwd: Path, columns: int) -> str:
    """``python train.py ARGS`` on a pseudo-terminal ``columns`` wide: everything the screen receives."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    env.pop("COLUMNS", None)
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "train.py"), *args], cwd=cwd, stdin=follower, stdout=follower, stderr=follower, env=env
    )
    os.close(follower)
    received = []
    while True:
        try:
            chunk = os.read(leader, 1 << 16)
        except OSError:  # EIO: the run closed its terminal
            break
        if not chunk:
            break
        received.append(chunk)
    os.close(leader)
    assert process.wait(timeout=300) == 0
    return b"".join(received).decode()


def test_on_an_80_column_terminal_the_bar_keeps_its_width_and_rows_fit(tmp_path: Path) -> None:
    # SGD: its best epoch is not its last, so the closing block has its longest rows; the profiler adds its own.
    args = ["optimizer=sgd", "debug=profiler", "trainer.max_epochs=2", "data.n_samples=1000"]
    screen = run_in_terminal(args, tmp_path, columns=80)
    redraws = [part for line in screen.replace("\r\n", "\n").split("\n") for part in line.split("\r") if part.strip()]
    bars = [part for part in redraws if part.startswith("Epoch 2/2:") and "|" in part]
    assert bars and max(part.count("█") for part in bars) >= 10  # a bar, not one character of it
    assert all(len(part) <= 80 for part in bars) and "val/loss=" not in bars[-1]  # validation is in the rows
    paths = ("outputs ", "run ", "look ")  # a run directory is as long as its name
    assert all(len(part) <= 80 for part in redraws if not part.startswith(paths)), [p for p in redraws if len(p) > 80]
    # The profiler's summary on screen: the hooks that took most of the fit, and its table beside the run.
    (profile,) = [part for part in redraws if part.startswith("profile ")]
    assert profile.endswith(" % of the fit") and "optimizer_step " in profile
    assert [part for part in redraws if part.startswith("hooks ")] == [
        "hooks     fit-profile.txt: every hook's time (hooks nest: shares overlap)"
    ]
    (run_dir,) = (tmp_path / "logs" / "runs").iterdir()
    assert "optimizer_step" in (run_dir / "fit-profile.txt").read_text()
