"""Parallel sweeps: hydra/launcher=parallel (forks of one preloaded process) and Hydra's joblib."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from conftest import CONFIG_DIR, ROOT, job_dirs, read_scalars, run_train
from hydra import compose, initialize_config_dir
from hydra_plugins.optlab_launcher.parallel_launcher import concurrent_jobs, target_modules

SWEEP = ["-m", "optimizer=sgd,rmsprop", "trainer.max_epochs=2", "data.n_samples=1000", "print_config=false",
         "callbacks.progress_bar=null", "+trainer.enable_progress_bar=false"]


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
    result = run_train([*SWEEP, f"hydra/launcher={launcher}", f"hydra.sweep.dir={tmp_path / 'sweep'}"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert epoch_losses(tmp_path / "sweep") == sequential_losses
    # Two jobs at once share the cores: each gets its half (at least one thread).
    threads = max(1, (os.cpu_count() or 1) // 2)
    assert job_logs(tmp_path / "sweep").count(f"torch uses {threads} CPU thread(s)") == 2
    assert (tmp_path / "sweep" / "summary.md").is_file()


def test_one_job_at_a_time_gets_all_threads(tmp_path: Path) -> None:
    result = run_train(
        ["-m", "optimizer=adam,sgd", "trainer.max_epochs=1", "data.n_samples=400", "callbacks.progress_bar=null",
         "hydra/launcher=parallel", "hydra.launcher.n_jobs=1", f"hydra.sweep.dir={tmp_path / 'sweep'}"],
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Launching 2 jobs, 1 at a time" in result.stderr + result.stdout
    logs = job_logs(tmp_path / "sweep")
    assert logs.count(f"torch uses {torch.get_num_threads()} CPU thread(s)") == 2
    assert [len(read_scalars(job)["train/loss_epoch"]) for job in job_dirs(tmp_path / "sweep")] == [1, 1]


@pytest.mark.parametrize("n_jobs", ["0", "-2", "two"])
def test_bad_n_jobs_is_one_line_before_any_job(n_jobs: str, tmp_path: Path) -> None:
    result = run_train(["-m", "optimizer=adam,sgd", "hydra/launcher=parallel", f"hydra.launcher.n_jobs={n_jobs}"], cwd=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 1
    assert f"hydra.launcher.n_jobs={n_jobs} is not valid: expected a positive number of jobs, or -1 for all at once" in output
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
    child = multiprocessing.get_context("spawn").Process(target=print, args=("child ran",))
    child.start()  # joblib's daemonic workers may not do this
    child.join()
    Path(cfg.paths.output_dir, "child_exitcode").write_text(str(child.exitcode))
    return 0.0

if __name__ == "__main__":
    main()
"""


def test_a_job_that_dies_is_reported_and_jobs_may_start_processes(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(textwrap.dedent(APP.format(config_dir=str(CONFIG_DIR))))
    env = {"PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    result = run_train(
        ["-m", "+action=child,die", "hydra/launcher=parallel", f"hydra.sweep.dir={tmp_path / 'sweep'}"],
        cwd=tmp_path, env=env, script=str(tmp_path / "app.py"),
    )
    assert result.returncode == 1
    assert "sweep job #1 (+action=die) died with exit code 3" in result.stdout + result.stderr
    finished, died = job_dirs(tmp_path / "sweep")
    assert (finished / "child_exitcode").read_text() == "0"
    # The report, rebuilt when the dead job was reported, lists it as unfinished.
    report = (tmp_path / "sweep" / "summary.md").read_text()
    assert "| 1 | action=die | failed |" in report and "the job was stopped before it finished" in report
    assert died.name == "1_+action-die"


def test_the_zygote_preloads_every_configured_target() -> None:
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", overrides=["data=breast_cancer", "scheduler=cosine"], return_hydra_config=True)
    modules = target_modules(cfg)
    assert {"optlab.data", "optlab.model", "torch.optim", "torch.optim.lr_scheduler", "lightning.pytorch",
            "lightning.pytorch.loggers", "optlab.callbacks"} <= set(modules)
    assert not any(module.startswith("hydra") for module in modules)  # the launcher's own config is not the task's


@pytest.mark.parametrize(("n_jobs", "sweep_jobs", "at_once"), [(-1, 3, 3), (2, 3, 2), (8, 3, 3), (-1, 1, 1)])
def test_jobs_at_once(n_jobs: int, sweep_jobs: int, at_once: int) -> None:
    assert concurrent_jobs(n_jobs, sweep_jobs) == at_once


@pytest.mark.slow
def test_ctrl_c_stops_every_job_with_a_resumable_checkpoint(tmp_path: Path) -> None:
    """Ctrl+C in a terminal reaches the whole process group: launcher, zygote and every job."""
    sweep_dir = tmp_path / "sweep"
    command = [sys.executable, str(ROOT / "train.py"), "-m", "optimizer=adam,sgd,rmsprop", "trainer.max_epochs=200",
               "callbacks.progress_bar=null", "hydra/launcher=parallel", f"hydra.sweep.dir={sweep_dir}"]
    process = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while len(list(sweep_dir.glob("*/checkpoints/last.ckpt"))) < 3 and time.monotonic() < deadline:
        time.sleep(0.2)  # every job has finished its first epoch
    os.killpg(process.pid, signal.SIGINT)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 130, output[-3000:]
    assert "sweep interrupted" in output and "Traceback" not in output, output[-3000:]
    for job in job_dirs(sweep_dir):
        checkpoint = torch.load(job / "checkpoints" / "last.ckpt", weights_only=True)
        assert checkpoint["global_step"] > 250, job.name  # saved at the interrupt, not at epoch 1's end
