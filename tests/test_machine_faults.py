"""Faults of the machine: processes killed, a full disk, memory gone, a dropped terminal, two runs racing, corrupted files.

Every test runs real ``train.py`` processes and synchronises with them by polling what they write
(a run's claim file names its process; ``metrics.jsonl`` shows it trains), never by sleeping on
a guess; each asserts on the files left behind and the line shown.
"""

from __future__ import annotations

import csv
import json
import os
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from optlab.report.tables import build_report
from optlab.results import RunResult, write_result

from conftest import ROOT, run_train, start_train

# A sweep whose job 1 is still training when the test acts on it (30 epochs of 50 steps), the others short.
SWEEP = ["-m", "trainer.max_epochs=1,30,1", "data.n_samples=1000", "callbacks.progress_bar.refresh_rate=0"]


def start(args: list[str], cwd: Path) -> subprocess.Popen[str]:
    """``python train.py ARGS`` as a process of its own that the test can signal while it runs."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.Popen(
        [sys.executable, str(ROOT / "train.py"), *args],
        cwd=cwd,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def wait_for(condition: Callable[[], object], process: subprocess.Popen[str], what: str, timeout: float = 120) -> object:
    """Poll until ``condition()`` holds (and return it), failing if the process ended first or time ran out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := condition():
            return found
        assert process.poll() is None, f"the run ended before {what}: {process.communicate()[0][-3000:]}"
        time.sleep(0.01)
    process.kill()
    raise AssertionError(f"timed out waiting for {what}")


def training_pid(job_dir: Path) -> int | None:
    """The pid of the run in ``job_dir`` once it is training (its claim is written and it has logged a step)."""
    claim, history = job_dir / ".run_claim", job_dir / "metrics.jsonl"
    if not (history.is_file() and history.stat().st_size and claim.is_file()):
        return None
    return json.loads(claim.read_text())["pid"]


def job_dir(sweep_dir: Path, number: int) -> Path | None:
    return next(iter(sweep_dir.glob(f"{number}_*")), None) if sweep_dir.is_dir() else None


def summary(sweep_dir: Path) -> list[dict[str, str]]:
    with (sweep_dir / "summary.csv").open() as stream:
        return list(csv.DictReader(stream))


def last_line(output: str) -> str:
    return output.rstrip().splitlines()[-1]


def test_a_parallel_sweeps_killed_job_is_reported_killed_and_the_others_ok(tmp_path: Path) -> None:
    sweep_dir = tmp_path / "sweep"
    run = start_train([*SWEEP, "hydra/launcher=parallel", f"hydra.sweep.dir={sweep_dir}"], cwd=tmp_path)
    pid = wait_for(lambda: (job := job_dir(sweep_dir, 1)) and training_pid(job), run, "job 1 trained")
    os.kill(pid, signal.SIGKILL)  # what the out-of-memory killer does
    result = run.wait()
    output = result.stdout + result.stderr
    assert result.returncode == 1 and "Traceback" not in output, output[-3000:]
    assert last_line(output) == "sweep sweep: 3 jobs, 2 ok, 1 killed"
    rows = summary(sweep_dir)
    assert [(row["job"].split("_")[0], row["status"]) for row in rows] == [("0", "ok"), ("1", "killed"), ("2", "ok")]
    assert rows[1]["error"] == "killed by SIGKILL"
    assert build_report(sweep_dir)  # the report a later `python -m optlab.report` writes is the same one
    assert summary(sweep_dir) == rows


def test_sigterm_to_a_joblib_sweep_interrupts_its_jobs_and_leaves_no_worker_behind(tmp_path: Path) -> None:
    """Hydra's joblib launcher: loky's workers would train on after a SIGTERM that ended the sweep's process alone."""
    sweep_dir = tmp_path / "sweep"
    args = ["-m", "trainer.max_epochs=30,30,1", "data.n_samples=1000", "callbacks.progress_bar.refresh_rate=0"]
    run = start([*args, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", f"hydra.sweep.dir={sweep_dir}"], cwd=tmp_path)
    workers = [
        wait_for(lambda n=n: (job := job_dir(sweep_dir, n)) and training_pid(job), run, f"job {n} trained") for n in (0, 1)
    ]
    run.send_signal(signal.SIGTERM)
    output = run.communicate(timeout=120)[0]  # a worker left training would hold the pipe open: TimeoutExpired
    assert run.returncode == 128 + signal.SIGTERM and "Traceback" not in output, output[-3000:]
    assert last_line(output) == "sweep sweep: 3 jobs, 0 ok, 2 interrupted, 1 never started"
    rows = summary(sweep_dir)
    assert [row["status"] for row in rows] == ["interrupted", "interrupted", "never started"]
    assert all(row["error"].startswith("stopped by SIGTERM at epoch ") and "resume with: " in row["error"] for row in rows[:2])
    for number in (0, 1):  # each saved where it stopped, to resume from
        assert torch.load(job_dir(sweep_dir, number) / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] >= 1
    deadline = time.monotonic() + 60
    while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.05)  # polling for the workers' end, with a deadline
    assert not any(alive(pid) for pid in workers), "a joblib worker outlived its sweep"


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_sequential_sweep_killed_midway_lists_the_job_that_never_started(tmp_path: Path) -> None:
    sweep_dir = tmp_path / "sweep"
    run = start_train([*SWEEP, f"hydra.sweep.dir={sweep_dir}"], cwd=tmp_path)
    pid = wait_for(lambda: (job := job_dir(sweep_dir, 1)) and training_pid(job), run, "job 1 trained")
    assert pid == run.pid  # the basic launcher runs the jobs in the sweep's own process
    os.kill(pid, signal.SIGKILL)
    assert run.wait().returncode == -signal.SIGKILL
    rebuilt = run_train([str(sweep_dir)], cwd=tmp_path, script=ROOT / "src" / "optlab" / "report" / "__main__.py")
    assert rebuilt.returncode == 0, rebuilt.stderr
    rows = summary(sweep_dir)
    assert [row["status"] for row in rows] == ["ok", "killed", "never started"]
    assert rows[2]["job"] == "2_never_started" and "trainer.max_epochs=1" in rows[2]["overrides"]
    assert "3 jobs, 1 ok, 1 killed, 1 never started" in (sweep_dir / "summary.md").read_text()


def test_ctrl_c_stops_a_sweep_which_still_writes_its_report(tmp_path: Path) -> None:
    sweep_dir = tmp_path / "sweep"
    run = start_train([*SWEEP, f"hydra.sweep.dir={sweep_dir}"], cwd=tmp_path)
    wait_for(lambda: (job := job_dir(sweep_dir, 1)) and training_pid(job), run, "job 1 trained")
    os.kill(run.pid, signal.SIGINT)
    result = run.wait()
    output = result.stdout + result.stderr
    assert result.returncode == 128 + signal.SIGINT and "Traceback" not in output, output[-3000:]
    assert last_line(output) == "sweep sweep: 3 jobs, 1 ok, 1 interrupted, 1 never started"
    rows = summary(sweep_dir)
    assert [row["status"] for row in rows] == ["ok", "interrupted", "never started"]
    assert rows[1]["error"].startswith("stopped by SIGINT at epoch ")
    # The job's own overrides, so the resumed run trains what the job did (30 epochs, not the default 10).
    last_ckpt = job_dir(sweep_dir, 1) / "checkpoints" / "last.ckpt"
    assert rows[1]["error"].endswith(
        "; resume with: python train.py trainer.max_epochs=30 data.n_samples=1000 callbacks.progress_bar.refresh_rate=0 "
        f"ckpt_path={last_ckpt}"
    )
    last = torch.load(job_dir(sweep_dir, 1) / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] >= 1  # saved where it stopped, to resume from


def test_two_runs_started_together_into_one_directory_one_runs_and_one_refuses(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    args = [f"hydra.run.dir={run_dir}", "data.n_samples=200", "trainer.max_epochs=1", "callbacks.progress_bar.refresh_rate=0"]
    first, second = start_train(args, cwd=tmp_path), start_train(args, cwd=tmp_path)
    results = [first.wait(), second.wait()]
    assert sorted(result.returncode for result in results) == [0, 1], results
    refused = next(result.stdout + result.stderr for result in results if result.returncode == 1)
    assert f"output directory {run_dir} " in refused and "pick a new hydra.run.dir" in refused and "Traceback" not in refused
    assert len(refused.strip().splitlines()) == 1  # one line, and no file of its own in the directory
    # Everything in the directory is the one run's: one claim, one process's event files, one run in its log.
    winner = json.loads((run_dir / ".run_claim").read_text())["pid"]
    assert {path.name.split(".")[5] for path in run_dir.glob("events.out.tfevents.*")} == {str(winner)}
    assert (run_dir / "train.log").read_text().count("data       blobs") == 1
    assert RunResult(**json.loads((run_dir / "result.json").read_text())).status == "ok"


@pytest.mark.parametrize("signum", ["SIGHUP", "SIGINT"])
def test_a_dropped_terminal_and_ctrl_c_save_last_ckpt_and_record_an_interruption(tmp_path: Path, signum: str) -> None:
    run_dir = tmp_path / "run"
    args = [
        f"hydra.run.dir={run_dir}",
        "data.n_samples=1000",
        "trainer.max_epochs=2",
        "callbacks.progress_bar.refresh_rate=0",
        "+callbacks.signal._target_=signal_at_step.SignalAtStep",
        "+callbacks.signal.step=70",
        f"+callbacks.signal.signum={signum}",
    ]
    result = run_train(args, cwd=tmp_path, env={"PYTHONPATH": str(ROOT / "tests")})
    output = result.stdout + result.stderr
    assert result.returncode == 128 + signal.Signals[signum] and "Traceback" not in output, output[-3000:]
    last = run_dir / "checkpoints" / "last.ckpt"
    expected = f"stopped by {signum} at epoch 1, step 71; resume with: python train.py "  # after the batch it arrived in
    assert last_line(output).startswith(expected) and last_line(output).endswith(f" ckpt_path={last}")
    assert json.loads((run_dir / "result.json").read_text())["status"] == "interrupted"
    assert json.loads((run_dir / "result.json").read_text())["error"] == last_line(output)
    assert torch.load(last, weights_only=True)["global_step"] == 71
    if signum == "SIGINT":  # the command it printed, run as printed, finishes the run, with no warning about its new directory
        command = shlex.split(last_line(output).split("; resume with: ", 1)[1])
        assert command[:2] == ["python", "train.py"] and "data.n_samples=1000" in command and "trainer.max_epochs=2" in command
        resumed = run_train(command[2:], cwd=tmp_path, env={"PYTHONWARNINGS": "default", "PYTHONPATH": str(ROOT / "tests")})
        assert resumed.returncode == 0 and "warning" not in (resumed.stdout + resumed.stderr).lower()
        (resumed_dir,) = (tmp_path / "logs" / "runs").iterdir()
        assert json.loads((resumed_dir / "result.json").read_text())["steps"] == 100  # both epochs of 50 steps, as asked
        assert "The dirpath has changed" in (resumed_dir / "train.log").read_text()  # kept for whoever reads the log


@pytest.fixture
def small_disk(tmp_path: Path):  # noqa: ANN201
    """A 9 MiB tmpfs: room for one epoch's two checkpoints of the notebook's model (3.4 MB each), not for a third."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root (CI runs as root)")
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=9m", "tmpfs", str(disk)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    yield disk
    subprocess.run(["umount", str(disk)], check=True)


def test_a_full_disk_at_a_checkpoint_save_keeps_the_previous_checkpoint(tmp_path: Path, small_disk: Path) -> None:
    run_dir = small_disk / "run"
    args = [f"hydra.run.dir={run_dir}", "data.n_samples=500", "trainer.max_epochs=3", "callbacks.progress_bar.refresh_rate=0"]
    result = run_train(args, cwd=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 1 and "Traceback" not in output, output[-3000:]
    assert last_line(output).startswith("No space left on device: ")
    assert last_line(output).removeprefix("No space left on device: ") in (
        str(run_dir / "checkpoints" / "last.ckpt"),
        str(run_dir / "checkpoints" / "best.ckpt"),
    )
    assert not list(run_dir.rglob("*.tmp"))  # no partial file, under its own name or any other
    for name in ("last.ckpt", "best.ckpt"):  # the first epoch's, whole
        assert torch.load(run_dir / "checkpoints" / name, weights_only=True)["epoch"] == 0
    recorded = json.loads((run_dir / "result.json").read_text())
    assert recorded["status"] == "failed" and recorded["error"] == last_line(output)


def test_memory_that_runs_out_is_one_line_and_recorded(tmp_path: Path) -> None:
    def limit_address_space() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))

    run_dir = tmp_path / "run"
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    env.pop("HYDRA_FULL_ERROR", None)
    result = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), f"hydra.run.dir={run_dir}", "model.hidden_sizes=[40000,40000]"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=limit_address_space,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1 and "Traceback" not in output, output[-3000:]
    assert last_line(output).startswith("out of memory: ") and "can't allocate memory" in last_line(output)
    recorded = json.loads((run_dir / "result.json").read_text())
    assert recorded["status"] == "failed" and recorded["error"] == last_line(output)


def test_a_report_survives_corrupted_files_and_names_them(tmp_path: Path) -> None:
    for number, optimizer in enumerate(("adam", "sgd", "rmsprop", "adamw", "adagrad")):
        job = tmp_path / f"{number}_optimizer-{optimizer}"
        (job / ".hydra").mkdir(parents=True)
        (job / ".hydra" / "overrides.yaml").write_text(f"- optimizer={optimizer}\n")
        (job / ".hydra" / "config.yaml").write_text("optimized_metric: val/loss\n")
        lines = [
            json.dumps({"step": step, "stage": "validate", "val/loss": 1.0 / (step + 1), "epoch": step}) for step in range(3)
        ]
        (job / "metrics.jsonl").write_text("\n".join(lines) + "\n")
        write_result(job, RunResult(status="ok", epochs=3))
    (tmp_path / "1_optimizer-sgd" / "result.json").write_bytes(b"\0" * 64)  # zeroed, as a crash mid-write can leave it
    with (tmp_path / "2_optimizer-rmsprop" / "metrics.jsonl").open("ab") as stream:
        stream.write(b"\xff\xfe not text\n")
    (tmp_path / "3_optimizer-adamw" / ".hydra" / "overrides.yaml").write_text("- optimizer=adamw\n- [unclosed\n")
    (tmp_path / "4_optimizer-adagrad" / "result.json").unlink()
    (tmp_path / "4_optimizer-adagrad" / "result.json").mkdir()  # not a file: no record, but no sign of a kill either
    rebuilt = run_train([str(tmp_path)], cwd=tmp_path, script=ROOT / "src" / "optlab" / "report" / "__main__.py")
    assert rebuilt.returncode == 0 and "Traceback" not in rebuilt.stderr, rebuilt.stderr
    rows = {row["job"]: row for row in summary(tmp_path)}
    assert rows["0_optimizer-adam"]["status"] == "ok"
    assert (rows["1_optimizer-sgd"]["status"], rows["1_optimizer-sgd"]["error"]) == (
        "unreadable",
        "result.json is not JSON (Expecting value, line 1 column 1)",
    )
    assert (rows["2_optimizer-rmsprop"]["status"], rows["2_optimizer-rmsprop"]["error"]) == (
        "unreadable",
        "metrics.jsonl line 4 is not UTF-8 text",
    )
    assert rows["3_optimizer-adamw"]["status"] == "unreadable"
    assert rows["3_optimizer-adamw"]["error"].startswith(".hydra/overrides.yaml cannot be read (")
    assert (rows["4_optimizer-adagrad"]["status"], rows["4_optimizer-adagrad"]["error"]) == (
        "unreadable",
        "result.json cannot be read (Is a directory)",
    )
