"""Divergence, sweeps with a bad job, resume, signals, reproducibility, unsafe checkpoints."""

from __future__ import annotations

import csv
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import torch

from optlab.errors import ConfigError, NumericalError

from conftest import ROOT, compose_config, read_scalars, run_train, train_here

# Its module-scoped fixture runs once: the file's tests share one pytest-xdist worker.
pytestmark = pytest.mark.xdist_group("reliability")

SMALL = ["data.n_samples=1000", "trainer.enable_model_summary=false"]  # 800 training rows: 50 steps an epoch
QUIET = ["callbacks.progress_bar.refresh_rate=0"]


def state_dict(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]


def test_divergence_stops_with_epoch_step_and_cause(tmp_path: Path) -> None:
    with pytest.raises(NumericalError) as caught:
        train_here(compose_config(tmp_path, ["optimizer=sgd", "optimizer.lr=1e20"]))
    message = str(caught.value)
    assert message.startswith("training diverged at epoch 0, step ")
    assert "optimizer.lr=1e+20" in message and "lower optimizer.lr" in message and "\n" not in message
    assert "all elements of input should be between 0 and 1" not in message
    assert json.loads((tmp_path / "result.json").read_text())["status"] == "diverged"


def test_a_run_that_learns_nothing_is_no_result_and_exits_non_zero(tmp_path: Path) -> None:
    # SGD at 0.05 saturates the notebook's sigmoid: BCE's clamp holds the loss, the accuracy stays at chance.
    result = run_train(["optimizer=sgd", "optimizer.lr=0.05", "trainer.max_epochs=2", *QUIET], cwd=tmp_path)
    assert result.returncode == 1
    (run_dir,) = (tmp_path / "logs" / "runs").iterdir()
    accuracies = {value for _, value in read_scalars(run_dir)["val/acc"]}
    assert len(accuracies) == 1 and accuracies.pop() < 0.55  # the oracle: what TensorBoard recorded
    recorded = json.loads((run_dir / "result.json").read_text())
    assert recorded["status"] == "did not learn" and "try a lower optimizer.lr (now 0.05)" in recorded["error"]
    assert (result.stdout + result.stderr).rstrip().splitlines()[-1].endswith(recorded["error"])


def test_a_sweep_survives_a_bad_job(tmp_path: Path) -> None:
    args = [
        "-m",
        "data.batch_size=16,0,32",
        "trainer.max_epochs=1",
        "data.n_samples=400",
        "callbacks.progress_bar.refresh_rate=0",
    ]
    result = run_train(args, cwd=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 1  # the sweep reports that a job failed
    assert output.rstrip().splitlines()[-1].endswith(": 3 jobs, 2 ok, 1 failed")  # the console's last line says so
    assert "data.batch_size=0 is not valid" in output
    (sweep_dir,) = (tmp_path / "logs" / "multiruns").iterdir()
    jobs = sorted(p for p in sweep_dir.iterdir() if p.is_dir())
    for good in (jobs[0], jobs[2]):
        assert (good / "checkpoints" / "last.ckpt").is_file()
        assert len(read_scalars(good)["train/loss_epoch"]) == 1
    with (sweep_dir / "summary.csv").open() as stream:
        statuses = {row["job"][0]: (row["status"], row["error"]) for row in csv.DictReader(stream)}
    assert statuses["0"][0] == statuses["2"][0] == "ok"
    assert statuses["1"] == ("failed", "data.batch_size=0 is not valid: expected an integer >= 1")


def test_resuming_gives_bitwise_the_same_run(tmp_path: Path) -> None:
    straight, first_half, resumed = tmp_path / "straight", tmp_path / "half", tmp_path / "resumed"
    train_here(compose_config(straight, [*SMALL, "trainer.max_epochs=4"]))
    train_here(compose_config(first_half, [*SMALL, "trainer.max_epochs=2"]))
    ckpt = first_half / "checkpoints" / "last.ckpt"
    train_here(compose_config(resumed, [*SMALL, "trainer.max_epochs=4", f"ckpt_path={ckpt}"]))

    for run in (straight, resumed):  # last.ckpt is the final state, whether or not val/loss improved
        final = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
        assert (final["epoch"], final["global_step"]) == (3, 4 * 50)
    assert (first_half / "checkpoints" / "best.ckpt").is_file()
    expected, actual = state_dict(straight), state_dict(resumed)
    assert expected.keys() == actual.keys()
    for name in expected:
        assert torch.equal(expected[name], actual[name]), name
    straight_scalars, resumed_scalars = read_scalars(straight), read_scalars(resumed)
    for tag in ("train/loss_epoch", "val/loss", "val/acc"):
        assert resumed_scalars[tag] == straight_scalars[tag][2:], tag  # epochs 3-4, same steps, same values
    assert resumed_scalars["test/acc"] == straight_scalars["test/acc"]


def test_resuming_a_finished_run_still_reports_its_metrics(tmp_path: Path) -> None:
    train_here(compose_config(tmp_path / "done", [*SMALL, "trainer.max_epochs=2"]))
    ckpt = tmp_path / "done" / "checkpoints" / "last.ckpt"
    value = train_here(compose_config(tmp_path / "again", [*SMALL, "trainer.max_epochs=2", f"ckpt_path={ckpt}"])).metrics[
        "val/loss"
    ]
    assert value == read_scalars(tmp_path / "done")["val/loss"][-1][1]


def test_same_config_twice_is_identical_and_seeds_differ(tmp_path: Path) -> None:
    runs = {name: tmp_path / name for name in ("a", "b", "seed7")}
    train_here(compose_config(runs["a"], [*SMALL, "trainer.max_epochs=2"]))
    train_here(compose_config(runs["b"], [*SMALL, "trainer.max_epochs=2", "trainer.deterministic=true"]))
    train_here(compose_config(runs["seed7"], [*SMALL, "trainer.max_epochs=2", "seed=7"]))
    a, b, seed7 = (state_dict(path) for path in runs.values())
    assert all(torch.equal(a[name], b[name]) for name in a)
    assert read_scalars(runs["a"])["val/loss"] == read_scalars(runs["b"])["val/loss"]
    assert not torch.equal(a["net.0.weight"], seed7["net.0.weight"])


class RunsACommand:
    """What a malicious checkpoint holds: unpickling it runs a shell command."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return os.system, (self.command,)


def test_a_checkpoint_with_pickled_code_is_refused(tmp_path: Path) -> None:
    train_here(compose_config(tmp_path / "run", [*SMALL, "trainer.max_epochs=1"]))
    checkpoint = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    checkpoint["callback"] = print  # any pickled callable would run code on load
    evil = tmp_path / "evil.ckpt"
    torch.save(checkpoint, evil)
    with pytest.raises(
        ConfigError,
        match=r"ckpt_path=.*evil.ckpt' is not valid: refused: it holds a pickled Python object \(print\) "
        r"that this run's config does not name; "
        "loading it could run arbitrary code. If you trust the file, add trust_checkpoint=true$",
    ) as caught:
        train_here(compose_config(tmp_path / "resume", [*SMALL, "trainer.max_epochs=2", f"ckpt_path={evil}"]))
    assert "(print)" in str(caught.value)
    assert not (tmp_path / "resume" / "checkpoints").exists()
    # An object whose unpickling calls os.system: torch blocks the module outright, and the line is the same.
    command = tmp_path / "command.ckpt"
    torch.save({**checkpoint, "callback": RunsACommand(f"touch {tmp_path / 'ran'}")}, command)
    with pytest.raises(
        ConfigError, match=r"refused: it holds a pickled Python object \((posix|nt)\.system\) .* trust_checkpoint=true$"
    ):
        train_here(compose_config(tmp_path / "resume_again", [*SMALL, "trainer.max_epochs=2", f"ckpt_path={command}"]))
    assert not (tmp_path / "ran").exists()
    # The opt-in the message names loads a file the user trusts.
    trusted = train_here(
        compose_config(tmp_path / "trusted", [*SMALL, "trainer.max_epochs=2", f"ckpt_path={evil}", "trust_checkpoint=true"])
    )
    assert trusted.status == "ok" and trusted.epochs == 2


SIGNAL_RUN = [
    "data.n_samples=1000",
    "trainer.max_epochs=2",
    "print_config=false",
    "callbacks.progress_bar.refresh_rate=0",
    "trainer.enable_model_summary=false",
]  # 50 steps an epoch


def run_with_tests_on_path(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """``train.py`` with this folder importable, for the test callback that sends the signal."""
    return run_train(args, cwd=cwd, env={"PYTHONPATH": str(ROOT / "tests")})


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same run without a signal (in this process: it gives bitwise what train.py gives)."""
    run_dir = tmp_path_factory.mktemp("straight") / "run"
    train_here(compose_config(run_dir, [o for o in SIGNAL_RUN if not o.startswith("callbacks.progress_bar")]))
    return run_dir


# The test callback sends the signal at the end of step 70, in the second epoch. SIGTERM is
# Lightning's: it stops after that batch. Ctrl+C is ours: the checkpoint callback ran before
# the test callback in that batch, so it stops after the next one.
@pytest.mark.parametrize(("signum", "saved_at"), [("SIGTERM", 70), pytest.param("SIGINT", 71, marks=pytest.mark.slow)])
def test_a_signal_mid_epoch_saves_a_checkpoint_that_resumes_bitwise(
    tmp_path: Path, uninterrupted: Path, signum: str, saved_at: int
) -> None:
    stopped, resumed = tmp_path / "stopped", tmp_path / "resumed"
    signal_at = [
        "+callbacks.signal._target_=signal_at_step.SignalAtStep",
        "+callbacks.signal.step=70",
        f"+callbacks.signal.signum={signum}",
    ]
    result = run_with_tests_on_path([f"hydra.run.dir={stopped}", *SIGNAL_RUN, *signal_at], cwd=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode != 0 and "Traceback" not in output, output[-2000:]
    checkpoint = torch.load(stopped / "checkpoints" / "last.ckpt", weights_only=True)
    assert (checkpoint["epoch"], checkpoint["global_step"]) == (1, saved_at)
    assert f"ckpt_path={stopped / 'checkpoints' / 'last.ckpt'}" in output or signum == "SIGINT"

    result = run_train(
        [f"hydra.run.dir={resumed}", *SIGNAL_RUN, f"ckpt_path={stopped / 'checkpoints' / 'last.ckpt'}"], cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-2000:]
    expected, actual = state_dict(uninterrupted), state_dict(resumed)
    assert expected.keys() == actual.keys()
    for name in expected:
        assert torch.equal(expected[name], actual[name]), name
    # The interrupted epoch's mean covers all its 50 batches, before and after the stop.
    straight_scalars, resumed_scalars = read_scalars(uninterrupted), read_scalars(resumed)
    for tag in ("train/loss_epoch", "val/loss", "val/acc", "test/loss"):
        assert resumed_scalars[tag] == straight_scalars[tag][-1:], tag
