"""The cluster path against a real SLURM (scripts/slurm/start_cluster.sh; .ci/run starts it).

Every test submits real jobs through ``hydra/launcher=slurm`` and reads back what they
wrote and the states SLURM gave them. They run on a cluster with accounting (slurmdbd, the
default of start_cluster.sh) and on one without (SLURM_ACCOUNTING=none); a test that needs
``sacct`` skips where it answers nothing, and one needs a cluster without.
"""

from __future__ import annotations

import csv
import re
import shutil
import subprocess
import time
from datetime import datetime
from pathlib import Path

import pytest
import torch

from conftest import ROOT, job_dirs, read_scalars, run_train


def slurm_answers() -> bool:
    if shutil.which("sinfo") is None:
        return False
    try:
        done = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=10)
    except subprocess.TimeoutExpired:
        return False
    return done.returncode == 0 and any(state.startswith(("idle", "mix", "alloc")) for state in done.stdout.split())


def sacct_answers() -> bool:
    """Whether this cluster keeps accounting: without it sacct says "Slurm accounting storage is disabled"."""
    try:
        done = subprocess.run(
            ["sacct", "-n", "-X", "-o", "JobID", "-S", "now"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


SLURM = slurm_answers()
ACCOUNTING = SLURM and sacct_answers()
pytestmark = [
    pytest.mark.slurm,
    pytest.mark.skipif(not SLURM, reason="no SLURM answers here: start one with bash scripts/slurm/start_cluster.sh (root)"),
]
needs_sacct = pytest.mark.skipif(
    not ACCOUNTING,
    reason="this SLURM keeps no accounting: sacct answers nothing "
    "(bash scripts/slurm/start_cluster.sh starts one with accounting)",
)
needs_no_accounting = pytest.mark.skipif(
    ACCOUNTING,
    reason="this SLURM keeps accounting; the test is for one without (SLURM_ACCOUNTING=none bash scripts/slurm/start_cluster.sh)",
)

SMALL = ["trainer.max_epochs=2", "data.n_samples=1000", "callbacks.progress_bar.refresh_rate=0"]  # 50 steps an epoch
ON_SLURM = ["-m", "hydra/launcher=slurm"]
TEST_CALLBACKS = {"PYTHONPATH": str(ROOT / "tests")}  # the jobs inherit the environment they are submitted from


def only_sweep(work: Path) -> Path:
    (sweep_dir,) = (work / "logs" / "multiruns").iterdir()
    return sweep_dir


def summary(sweep_dir: Path) -> list[dict[str, str]]:
    with (sweep_dir / "summary.csv").open() as stream:
        return list(csv.DictReader(stream))


def slurm_states(sweep_dir: Path) -> dict[str, str]:
    """The end states SLURM gave the sweep's jobs: its accounting's, or without accounting
    slurmctld's (squeue shows a finished job for MinJobAge, 300 s by default).

    Their ids are the folders submitit keeps in .submitit/. A job's result is on disk a
    moment before its last process has exited, so the states are polled until no job is
    still RUNNING or COMPLETING (for 30 s at most).
    """
    ids = sorted(path.name for path in (sweep_dir / ".submitit").iterdir() if re.fullmatch(r"\d+_\d+", path.name))
    arrays = ",".join(sorted({job.split("_")[0] for job in ids}))
    if ACCOUNTING:
        command = ["sacct", "-n", "-P", "-X", "-o", "JobID,State", "-j", ",".join(ids)]
    else:
        command = ["squeue", "--noheader", "--states=all", "--format=%i|%T", f"--jobs={arrays}"]
    deadline = time.monotonic() + 30
    while True:
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        states = dict(line.split("|") for line in done.stdout.split())
        if not {"RUNNING", "COMPLETING"} & set(states.values()) or time.monotonic() > deadline:
            return states
        time.sleep(0.5)


def test_a_sweep_runs_each_job_as_a_slurm_job_with_the_threads_it_was_given(tmp_path: Path) -> None:
    # The digits experiment (a standard LightningDataModule and a multi-class model), two seeds
    # per job as replicas: the cluster path is not the notebook's alone. The DDP and requeue
    # tests below run the notebook's.
    digits = [
        "data=digits",
        "model=mlp_multiclass",
        "trainer.max_epochs=2",
        "callbacks.progress_bar.refresh_rate=0",
        "replicas=2",
    ]
    result = run_train([*ON_SLURM, "optimizer=adam,sgd", *digits], cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    sweep_dir = only_sweep(tmp_path)
    rows = {(row["job"], row["overrides"]): row for row in summary(sweep_dir)}
    assert [row["status"] for row in rows.values()] == ["ok"] * 4  # each replica a seed of its job
    assert set(slurm_states(sweep_dir).values()) == {"COMPLETED"}
    assert "sweep logs/multiruns/" in result.stdout and "4 jobs (replicas of 2 runs), 4 ok." in result.stdout
    for job in job_dirs(sweep_dir):  # hydra.launcher.cpus_per_task=1: one torch thread, not one per core
        assert ", 1 torch thread\n" in (job / "train.log").read_text()
        for k in range(2):
            scalars = read_scalars(job / f"replica_{k:02d}")
            (row,) = (row for (name, _), row in rows.items() if name == f"{job.name}/replica_{k:02d}")
            assert len(scalars["train/loss"]) == 2 and float(row["test/acc"]) == pytest.approx(
                scalars["test/acc"][-1][1], rel=1e-6
            )


def test_ddp_over_two_slurm_tasks_trains_one_model_with_one_set_of_logs(tmp_path: Path) -> None:
    result = run_train([*ON_SLURM, "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", *SMALL], cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (job,) = job_dirs(only_sweep(tmp_path))
    log = (job / "train.log").read_text()
    assert "on cpu x2 (DDP)" in log and "Starting with 2 processes" in log
    # Each of the two ranks (SLURM's tasks) trains on half of the 50 batches an epoch: 25 steps.
    final = torch.load(job / "checkpoints" / "last.ckpt", weights_only=True)
    assert final["global_step"] == 2 * 25
    assert len(read_scalars(job)["train/loss_epoch"]) == 2
    assert len(list(job.glob("metrics.jsonl"))) == 1 and "ok" in (job / "result.json").read_text()


def test_a_requeued_job_resumes_bitwise_and_a_killed_job_is_reported_while_the_others_finish(tmp_path: Path) -> None:
    """One sweep, three jobs: at step 70 (in the second epoch) one is killed outright, one requeued, one left alone."""
    events = [
        "+callbacks.event._target_=signal_at_step.SlurmEventAtStep",
        "+callbacks.event.kind=kill,requeue,none",
        "+callbacks.event.step=70",
    ]
    result = run_train([*ON_SLURM, *SMALL, *events], cwd=tmp_path, env=TEST_CALLBACKS, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output[-3000:]  # a job failed: the sweep says so, once all of them ended
    assert "ended without a result (SLURM: FAILED)" in output and "Traceback" not in output
    sweep_dir = only_sweep(tmp_path)
    killed, requeued, untouched = job_dirs(sweep_dir)
    # Reported within a minute of the kill, with accounting or without (srun writes "Killed" to the job's log then).
    (killed_log,) = (sweep_dir / ".submitit").glob("*_0/*_0_0_log.err")
    (reported,) = re.findall(
        r"^\[([\d-]+ [\d:]+),\d+\]\[HYDRA\] SLURM job \S+ \(#0: .*ended without a result", output, re.MULTILINE
    )
    waited = datetime.strptime(reported, "%Y-%m-%d %H:%M:%S").timestamp() - killed_log.stat().st_mtime
    assert "Killed" in killed_log.read_text() and waited < 60, f"reported {waited:.0f} s after the kill"
    rows = summary(sweep_dir)
    assert [row["status"] for row in rows] == ["killed", "ok", "ok"]
    assert rows[0]["error"] == "ended without a result (SLURM: FAILED)"
    assert sorted(slurm_states(sweep_dir).values()) == ["COMPLETED", "COMPLETED", "FAILED"]

    log = (requeued / "train.log").read_text()
    assert "stopped by SIGTERM at epoch 1" in log  # the first attempt saved its state...
    assert "requeued by SLURM (restart 1): resuming from" in log  # ...the second resumed from it, in the same directory
    # Requeued or not, the same weights and metrics: the untouched job is the same run, never stopped.
    expected = torch.load(untouched / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    actual = torch.load(requeued / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    assert expected.keys() == actual.keys()
    for name in expected:
        assert torch.equal(expected[name], actual[name]), name
    ours, theirs = read_scalars(requeued), read_scalars(untouched)
    for tag in ("train/loss_epoch", "val/loss", "test/acc"):  # the two attempts' event files together
        assert [value for _, value in ours[tag]] == [value for _, value in theirs[tag]], tag
    assert len(read_scalars(killed).get("train/loss_epoch", [])) == 1  # what it logged before the kill stays


def test_a_request_the_cluster_cannot_meet_fails_at_submission_in_one_line(tmp_path: Path) -> None:
    result = run_train([*ON_SLURM, *SMALL, "hydra.launcher.cpus_per_task=64"], cwd=tmp_path, timeout=60)
    output = result.stdout + result.stderr
    assert result.returncode == 1
    assert (
        "SLURM refused the jobs: sbatch: error: Batch job submission failed: More processors requested than permitted" in output
    )
    assert "Traceback" not in output


@pytest.mark.parametrize(
    ("trainer", "gpus"),
    [
        (["trainer=cpu"], None),
        (["trainer=ddp", "trainer.accelerator=cpu"], None),
        (["trainer=gpu"], 1),
        (["trainer=ddp", "trainer.accelerator=gpu", "trainer.devices=4"], 4),
    ],
)
def test_gpus_are_requested_only_when_the_run_uses_them(trainer: list[str], gpus: int | None) -> None:
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(str(ROOT / "configs"), version_base="1.3"):
        cfg = compose("train", ["hydra/launcher=slurm", *trainer], return_hydra_config=True)
    assert cfg.hydra.launcher.gpus_per_node == gpus
    assert cfg.hydra.launcher.tasks_per_node == cfg.trainer.devices


def submit(tmp_path: Path, script: str) -> str:
    done = subprocess.run(
        ["sbatch", "--parsable", f"--output={tmp_path / 'slurm-%j.out'}", "--wrap", script],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return done.stdout.strip().split(";")[0]


def state_when_done(job_id: str, timeout_s: float = 30) -> tuple[str, object]:
    """What the launcher's state watcher says of a job once it has ended, and the watcher."""
    from hydra_plugins.optlab_launcher._slurm_states import SlurmStateWatcher

    watcher = SlurmStateWatcher()
    deadline = time.monotonic() + timeout_s
    while not watcher.is_done(job_id, mode="force"):
        assert time.monotonic() < deadline, f"job {job_id} still {watcher.get_state(job_id, mode='cache')} after {timeout_s} s"
        time.sleep(0.5)
    return watcher.get_state(job_id, mode="cache"), watcher


@needs_sacct
def test_with_accounting_the_launcher_reads_job_states_from_sacct(tmp_path: Path) -> None:
    state, watcher = state_when_done(submit(tmp_path, "kill -9 $$"))
    assert state == "FAILED" and watcher.accounting is True  # type: ignore[attr-defined]


@needs_no_accounting
def test_without_accounting_the_launcher_reads_job_states_from_squeue(tmp_path: Path) -> None:
    state, watcher = state_when_done(submit(tmp_path, "kill -9 $$"))
    assert state == "FAILED" and watcher.accounting is False  # type: ignore[attr-defined]
    assert state_when_done(submit(tmp_path, "exit 0"))[0] == "COMPLETED"
    # A job slurmctld no longer knows (it ended more than MinJobAge ago) has ended.
    assert state_when_done("2000000000")[0] == "ENDED"


@pytest.mark.slow  # 16 SLURM jobs in two batches, about 40 s
def test_the_optimizer_protocol_runs_its_jobs_on_slurm(tmp_path: Path) -> None:
    grid = ["hydra.sweeper.lr_grid.low=1e-3", "hydra.sweeper.lr_grid.high=1e-2", "hydra.sweeper.lr_grid.points=2"]
    seeds = ["hydra.sweeper.optimizers=[adam,sgd]", "hydra.sweeper.tuning_seeds=2", "hydra.sweeper.confirm_seeds=2"]
    args = ["experiment=optimizer_protocol", "hydra/launcher=slurm", *grid, *seeds, "trainer.max_epochs=1", "data.n_samples=400"]
    result = run_train(args, cwd=tmp_path, timeout=900)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert output.count("SLURM jobs: ") == 2  # the tuning grid with the defaults, then the confirmations
    sweep_dir = tmp_path / "logs" / "protocols" / "optimizer_protocol"
    with (sweep_dir / "protocol.csv").open() as stream:
        confirmed = [row for row in csv.DictReader(stream) if row["stage"] == "confirm"]
    assert sorted(row["optimizer"] for row in confirmed) == ["adam", "sgd"] and {row["seeds"] for row in confirmed} == {"2"}
    assert output.rstrip().endswith("sweep logs/protocols/optimizer_protocol: 16 jobs, 16 ok")
