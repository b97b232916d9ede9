"""Parallel sweeps: hydra/launcher=parallel (forks of one preloaded process) and Hydra's joblib."""

from __future__ import annotations

import io
import logging
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.utils import JobReturn, JobStatus

from hydra_plugins.optlab_launcher._results import JobTraceback, portable
from hydra_plugins.optlab_launcher.parallel_launcher import concurrent_jobs, target_modules
from optlab.console import TqdmHandler
from optlab.threads import available_cores

from conftest import CONFIG_DIR, ROOT, compose_config, job_dirs, read_scalars, run_train, train_here

# Its module-scoped fixture runs once: the file's tests share one pytest-xdist worker.
pytestmark = pytest.mark.xdist_group("parallel_launcher")

ALL_CORES = {"OMP_NUM_THREADS": ""}  # not this worker's share of the cores (conftest): the launcher divides them
SWEEP = [
    "-m",
    "optimizer=sgd,rmsprop",
    "trainer.max_epochs=2",
    "data.n_samples=1000",
    "print_config=false",
    "callbacks.progress_bar=null",
    "+trainer.enable_progress_bar=false",
]


def plural_threads(count: int) -> str:
    """How the run header says a job's torch thread pool: ``, 2 torch threads`` at the end of its trainer line."""
    return f", {count} torch thread" + ("\n" if count == 1 else "s\n")


def epoch_losses(sweep_dir: Path) -> list[list[tuple[int, float]]]:
    return [read_scalars(job)["train/loss_epoch"] for job in job_dirs(sweep_dir)]


def job_logs(sweep_dir: Path) -> str:
    return "".join(log.read_text() for log in sweep_dir.glob("*/train.log"))


@pytest.fixture(scope="module")
def sequential_losses(tmp_path_factory: pytest.TempPathFactory) -> list[list[tuple[int, float]]]:
    work = tmp_path_factory.mktemp("sequential")
    result = run_train([*SWEEP, f"hydra.sweep.dir={work / 'sweep'}"], cwd=work)
    assert result.returncode == 0, result.stderr[-3000:]
    return epoch_losses(work / "sweep")


@pytest.mark.parametrize("launcher", ["parallel", "joblib"])
def test_parallel_sweep_gives_the_sequential_numbers(
    launcher: str, sequential_losses: list[list[tuple[int, float]]], tmp_path: Path
) -> None:
    """One thread per job in parallel, all cores in sequence: MKL's strict mode keeps the numbers equal.

    SGD and RMSprop at the notebook's learning rates are chaotic: any rounding difference
    between one- and two-thread runs would show.
    """
    result = run_train(
        [*SWEEP, f"hydra/launcher={launcher}", f"hydra.sweep.dir={tmp_path / 'sweep'}"], cwd=tmp_path, env=ALL_CORES
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert epoch_losses(tmp_path / "sweep") == sequential_losses
    # The cores are shared among the jobs running at once: both jobs for parallel, one per
    # core for joblib (its n_jobs=-1), at least one thread each.
    cores = available_cores()
    threads = max(1, cores // (2 if launcher == "parallel" else cores))
    assert job_logs(tmp_path / "sweep").count(plural_threads(threads)) == 2
    assert (tmp_path / "sweep" / "summary.md").is_file()


@pytest.mark.slow  # n_jobs=1: the thread split of the default layout is checked in the quick suite
def test_one_job_at_a_time_gets_all_threads(tmp_path: Path) -> None:
    result = run_train(
        [
            "-m",
            "optimizer=adam,sgd",
            "trainer.max_epochs=1",
            "data.n_samples=400",
            "callbacks.progress_bar=null",
            "hydra/launcher=parallel",
            "hydra.launcher.n_jobs=1",
            f"hydra.sweep.dir={tmp_path / 'sweep'}",
        ],
        cwd=tmp_path,
        env=ALL_CORES,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Launching 2 jobs, 1 at a time" in result.stderr + result.stdout
    logs = job_logs(tmp_path / "sweep")
    assert logs.count(plural_threads(available_cores())) == 2
    assert [len(read_scalars(job)["train/loss_epoch"]) for job in job_dirs(tmp_path / "sweep")] == [1, 1]


@pytest.mark.parametrize("n_jobs", ["0", "-2", "two"])
def test_bad_n_jobs_is_one_line_before_any_job(n_jobs: str, tmp_path: Path) -> None:
    result = run_train(["-m", "optimizer=adam,sgd", "hydra/launcher=parallel", f"hydra.launcher.n_jobs={n_jobs}"], cwd=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 1
    assert (
        f"hydra.launcher.n_jobs={n_jobs} is not valid: expected a positive number of jobs, or -1 for up to two per core" in output
    )
    assert "Traceback" not in output
    assert not (tmp_path / "logs").exists()


APP = """
import multiprocessing, os, sys
from pathlib import Path
import hydra


@hydra.main(version_base="1.3", config_path={config_dir!r}, config_name="train")
def main(cfg):
    if cfg.action == "die":
        os._exit(3)  # as if killed: no result, no traceback
    if cfg.action == "raise":
        raise ValueError("a bug in the task")
    child = multiprocessing.get_context("spawn").Process(target=print, args=("child ran",))
    child.start()  # joblib's daemonic workers may not do this
    child.join()
    Path(cfg.paths.output_dir, "child_exitcode").write_text(str(child.exitcode))
    return 0.0

if __name__ == "__main__":
    main()
"""


def run_app(tmp_path: Path, args: list[str]) -> subprocess.CompletedProcess[str]:
    """A tiny Hydra app on this template's configs, whose jobs fail or start processes on request."""
    (tmp_path / "app.py").write_text(textwrap.dedent(APP.format(config_dir=str(CONFIG_DIR))))
    env = {"PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    return run_train(
        ["-m", "hydra/launcher=parallel", f"hydra.sweep.dir={tmp_path / 'sweep'}", *args],
        cwd=tmp_path,
        env=env,
        script=str(tmp_path / "app.py"),
    )


def test_batches_reuse_one_zygote_and_jobs_may_start_processes(tmp_path: Path) -> None:
    # Two batches (as Optuna launches them), at most two jobs at once.
    result = run_app(
        tmp_path,
        [
            "+action=child",
            "+n=1,2,3",
            "hydra.launcher.n_jobs=2",
            "hydra.sweeper.max_batch_size=2",
            "~hydra.callbacks.sweep_report",
        ],
    )  # the app writes no result.json to report
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "Launching 2 jobs, 2 at a time" in output and "Launching 1 jobs, 1 at a time" in output
    assert output.count("every job starts from here") == 1  # the second batch forks from the same zygote
    assert [(job / "child_exitcode").read_text() for job in job_dirs(tmp_path / "sweep")] == ["0", "0", "0"]


def test_failed_and_dead_jobs_are_reported_with_their_traceback(tmp_path: Path) -> None:
    result = run_app(tmp_path, ["+action=child,raise,die"])
    output = result.stdout + result.stderr
    assert result.returncode == 1
    # The first failure is raised by Hydra's sweeper, with the traceback from inside the job.
    assert "ValueError: a bug in the task" in output and 'app.py", line' in output, output[-3000:]
    assert "Traceback" in output
    finished, _, died = job_dirs(tmp_path / "sweep")
    assert (finished / "child_exitcode").read_text() == "0"
    assert died.name == "2_+action-die"
    # The job that died without a word has a result.json saying so, written for it by the zygote; the report,
    # written once every job had ended, lists it.
    report = (tmp_path / "sweep" / "summary.md").read_text()
    assert "| 2 | action=die | failed |" in report and "exited with status 3 without a result" in report


class NeedsTwoArguments(Exception):
    def __init__(self, what: str, why: str) -> None:
        super().__init__(f"{what}: {why}")


def test_results_that_cannot_travel_are_replaced_not_lost() -> None:
    failed = JobReturn(overrides=["x=1"], status=JobStatus.FAILED)
    failed.return_value = NeedsTwoArguments("lr", "too large")  # pickles, but cannot be rebuilt
    received = pickle.loads(pickle.dumps(portable(failed)))
    with pytest.raises(RuntimeError, match="NeedsTwoArguments") as raised:
        _ = received.return_value
    assert isinstance(raised.value.__cause__, JobTraceback)

    done = JobReturn(overrides=["x=2"], status=JobStatus.COMPLETED)
    done.return_value = lambda: 0  # cannot be pickled
    assert pickle.loads(pickle.dumps(portable(done))).return_value.startswith("<function")


def test_the_zygote_preloads_every_configured_target() -> None:
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", overrides=["data=breast_cancer", "scheduler=cosine"], return_hydra_config=True)
    modules = target_modules(cfg)
    assert {
        "experiment.tabular",
        "experiment.model",
        "torch.optim",
        "torch.optim.lr_scheduler",
        "lightning.pytorch",
        "lightning.pytorch.loggers",
        "optlab.callbacks",
    } <= set(modules)
    assert not any(module.startswith("hydra") for module in modules)  # the launcher's own config is not the task's


@pytest.mark.parametrize(
    ("n_jobs", "sweep_jobs", "cores", "at_once"), [(-1, 3, 2, 3), (-1, 100, 16, 32), (2, 3, 2, 2), (8, 3, 2, 3), (-1, 1, 2, 1)]
)
def test_jobs_at_once(n_jobs: int, sweep_jobs: int, cores: int, at_once: int) -> None:
    assert concurrent_jobs(n_jobs, sweep_jobs, cores) == at_once


@pytest.mark.slow
@pytest.mark.parametrize(
    ("deliver", "signum"),
    [("ctrl_c", signal.SIGINT), ("to_launcher", signal.SIGINT), ("to_launcher", signal.SIGTERM)],
    ids=["ctrl_c", "sigint_to_launcher", "sigterm_to_launcher"],
)
def test_a_stopped_sweep_leaves_every_job_a_resumable_checkpoint(tmp_path: Path, deliver: str, signum: int) -> None:
    """Ctrl+C in a terminal signals the launcher's process group; an IDE or a scheduler may signal the launcher alone."""
    sweep_dir = tmp_path / "sweep"
    command = [
        sys.executable,
        str(ROOT / "train.py"),
        "-m",
        "optimizer=adam,sgd,rmsprop",
        "trainer.max_epochs=200",
        "callbacks.progress_bar=null",
        "hydra/launcher=parallel",
        f"hydra.sweep.dir={sweep_dir}",
    ]
    process = subprocess.Popen(
        command,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 120
    while len(list(sweep_dir.glob("*/checkpoints/last.ckpt"))) < 3:  # every job has finished its first epoch
        assert time.monotonic() < deadline and process.poll() is None, "the jobs never finished an epoch"
        time.sleep(0.2)
    time.sleep(0.5)  # every job is well inside its second epoch: a save there is the interrupt's, not the epoch end's
    if deliver == "ctrl_c":
        os.killpg(process.pid, signum)
    else:
        process.send_signal(signum)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 128 + signum, output[-3000:]
    assert f"sweep stopped by {signal.Signals(signum).name}" in output, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    for job in job_dirs(sweep_dir):
        checkpoint = torch.load(job / "checkpoints" / "last.ckpt", weights_only=True)
        assert checkpoint["global_step"] > 250, job.name  # saved at the interrupt, not at epoch 1's end


REPLICAS_SWEEP = [
    *(a for a in SWEEP if not a.startswith(("trainer.max_epochs", "data.n_samples"))),
    "replicas=2",
    "data.n_samples=400",
    "trainer.max_epochs=1",
]


def replica_losses(launcher: str, work: Path) -> list[list[tuple[int, float]]]:
    """Every replica's epoch losses in a sweep of two jobs of two replicas each, on ``launcher``."""
    sweep = work / launcher
    result = run_train([*REPLICAS_SWEEP, f"hydra/launcher={launcher}", f"hydra.sweep.dir={sweep}"], cwd=work, env=ALL_CORES)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "4 jobs (replicas of 2 runs), 4 ok." in result.stdout  # each replica a seed of its job
    return [read_scalars(job / f"replica_{k:02d}")["train/loss_epoch"] for job in job_dirs(sweep) for k in range(2)]


@pytest.fixture(scope="module")
def sequential_replica_losses(tmp_path_factory: pytest.TempPathFactory) -> list[list[tuple[int, float]]]:
    """The same two runs, one after the other in this process (train.py's task, without a launcher)."""
    work, losses = tmp_path_factory.mktemp("replicas"), []
    for optimizer in ("sgd", "rmsprop"):
        train_here(
            compose_config(
                work / optimizer, [f"optimizer={optimizer}", "replicas=2", "data.n_samples=400", "trainer.max_epochs=1"]
            )
        )
        losses += [read_scalars(work / optimizer / f"replica_{k:02d}")["train/loss_epoch"] for k in range(2)]
    return losses


# Hydra's joblib plugin runs the same task in its own worker processes: in the slow suite.
@pytest.mark.parametrize("launcher", ["parallel", pytest.param("joblib", marks=pytest.mark.slow)])
def test_replicas_under_a_parallel_launcher_give_the_sequential_numbers(
    launcher: str, sequential_replica_losses: list[list[tuple[int, float]]], tmp_path: Path
) -> None:
    """Each job trains two seeds as replicas; one thread per job in parallel, the numbers of the runs one after the other."""
    losses = replica_losses(launcher, tmp_path)
    assert len(losses) == 4 and all(len(curve) == 1 for curve in losses)
    assert losses == sequential_replica_losses


class RecordedWrites(io.RawIOBase):
    """A file that keeps each write it receives: what reaches the terminal in one system call."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.writes.append(bytes(data))
        return len(data)


def test_a_multi_line_console_record_reaches_the_shared_terminal_in_one_write() -> None:
    """Jobs of a parallel sweep write to one terminal; a record cut in two lets another job's line into it."""
    raw = RecordedWrites()
    stream = io.TextIOWrapper(io.BufferedWriter(raw), line_buffering=True)  # as sys.stderr is, and stdout on a terminal
    handler = TqdmHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.emit(logging.LogRecord("optlab", logging.INFO, __file__, 1, "data  blobs\nmodel mlp", None, None))
    assert raw.writes == [b"data  blobs\nmodel mlp\n"]
