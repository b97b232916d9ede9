"""Shared helpers: compose the real configs, run the real train.py, read real event files."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import metadata as hparams_metadata

from optlab.config_checks import check_config
from optlab.results import RunResult
from optlab.runner import execute
from optlab.train import train

ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = ROOT / "configs"

# Under pytest-xdist each worker gets its share of the cores, and so does every train.py it
# starts (OMP_NUM_THREADS, which the runs honour): two workers with two torch threads each
# on two cores would spin-wait on each other.
if os.environ.get("PYTEST_XDIST_WORKER"):
    from optlab.threads import available_cores

    _share = max(1, available_cores() // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))
    os.environ["OMP_NUM_THREADS"] = str(_share)
    import torch

    torch.set_num_threads(_share)


def compose_config(output_dir: Path, overrides: Sequence[str] = ()) -> DictConfig:
    """The config ``train.py`` would get, with outputs pointed at ``output_dir``."""
    quiet = [] if "~callbacks" in overrides else ["callbacks.progress_bar=null"]
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        return compose(
            "train",
            overrides=[
                f"paths.output_dir={output_dir}",
                f"paths.log_dir={output_dir}",
                *quiet,
                "trainer.enable_model_summary=false",
                *overrides,
            ],
        )


def train_here(cfg: DictConfig) -> RunResult:
    """What ``train.py`` does, in this process: check the config, train, record ``result.json``; errors are raised."""
    return execute(train, cfg, checks=check_config)


class ScriptRun:
    """A running ``python <script> ARGS`` (a real process: signal it with its ``pid``); ``wait()`` gives what it did."""

    def __init__(self, runner: ScriptRunner, pid: int, args: list[str], streams: tempfile.TemporaryDirectory[str]) -> None:
        self.runner, self.pid, self.args, self._streams = runner, pid, args, streams

    def poll(self) -> int | None:
        return self.runner.returncode(self.pid, block=False)

    def wait(self, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        try:
            code = self.runner.returncode(self.pid, timeout=timeout)
        except TimeoutError:
            os.killpg(self.pid, signal.SIGKILL)
            self.runner.returncode(self.pid, timeout=30)
            raise subprocess.TimeoutExpired(self.args, timeout, *self._read()) from None
        out, err = self._read()
        self._streams.cleanup()
        return subprocess.CompletedProcess(self.args, code, out, err)

    def _read(self) -> tuple[str, str]:
        folder = Path(self._streams.name)
        return (folder / "stdout").read_text(), (folder / "stderr").read_text()


class ScriptRunner:
    """``python <script> ARGS`` through ``script_server.py``: each run a real process, forked after the imports."""

    def __init__(self) -> None:
        self._server: subprocess.Popen[bytes] | None = None
        self._ended: dict[int, int] = {}

    def _started(self) -> subprocess.Popen[bytes]:
        if self._server is None or self._server.poll() is not None:
            self._server = subprocess.Popen(
                [sys.executable, str(ROOT / "tests" / "script_server.py")],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                env={**os.environ, "PYTHONWARNINGS": "ignore"},
            )
        return self._server

    def _reply(self, deadline: float) -> dict[str, int]:
        server = self._started()
        assert server.stdout is not None
        if not select.select([server.stdout], [], [], max(0.0, deadline - time.monotonic()))[0]:
            raise TimeoutError
        line = server.stdout.readline()
        if not line:
            raise RuntimeError("the script server ended")
        return json.loads(line)

    def start(self, script: Path, args: Sequence[str], cwd: Path, env: dict[str, str]) -> ScriptRun:
        server = self._started()
        assert server.stdin is not None
        streams = tempfile.TemporaryDirectory()
        out, err = Path(streams.name) / "stdout", Path(streams.name) / "stderr"
        request = {"script": str(script), "args": list(args), "cwd": str(cwd), "env": env, "stdout": str(out), "stderr": str(err)}
        server.stdin.write((json.dumps(request) + "\n").encode())
        server.stdin.flush()
        while "returncode" in (reply := self._reply(time.monotonic() + 60)):  # another run's end, on the way
            self._ended[reply["pid"]] = reply["returncode"]
        return ScriptRun(self, reply["pid"], [sys.executable, str(script), *args], streams)

    def returncode(self, pid: int, timeout: float = 300, block: bool = True) -> int | None:
        deadline = time.monotonic() + (timeout if block else 0)
        while pid not in self._ended:
            try:
                reply = self._reply(deadline)
            except TimeoutError:
                if block:
                    raise
                return None
            self._ended[reply["pid"]] = reply["returncode"]
        return self._ended[pid]


_RUNNER = ScriptRunner()


def run_train(
    args: Sequence[str], cwd: Path, timeout: float = 300, env: dict[str, str] | None = None, script: str | Path = "train.py"
) -> subprocess.CompletedProcess[str]:
    """``python train.py ARGS`` (or another entry script) in ``cwd``, as a user would run it: a real process of its own,
    forked from one that has already imported what train.py imports (``script_server.py``). Users see Hydra's short
    errors, so the tests run without ``HYDRA_FULL_ERROR``."""
    return start_train(args, cwd, env, script).wait(timeout)


def start_train(args: Sequence[str], cwd: Path, env: dict[str, str] | None = None, script: str | Path = "train.py") -> ScriptRun:
    """``python train.py ARGS`` started and left running, for a test to signal it; ``.wait()`` for its outcome."""
    base = {**os.environ, "PYTHONWARNINGS": "ignore"}
    base.pop("HYDRA_FULL_ERROR", None)
    base.pop("PYTEST_CURRENT_TEST", None)
    return _RUNNER.start(ROOT / script, args, cwd, {**base, **(env or {})})  # an absolute script stays as it is


def read_scalars(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar series in the event files of one run directory (not its subfolders)."""
    accumulator = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    accumulator.Reload()
    return {tag: [(event.step, event.value) for event in accumulator.Scalars(tag)] for tag in accumulator.Tags()["scalars"]}


def job_dirs(sweep_dir: Path) -> list[Path]:
    """A sweep's job directories, in job order (the number prefix sorts them)."""
    return sorted((d for d in sweep_dir.iterdir() if d.is_dir() and not d.name.startswith(".")), key=lambda d: d.name)


def job_overrides(job_dir: Path) -> tuple[int, dict[str, str]]:
    """``2_optimizer-sgd+seed-1`` -> (2, {"optimizer": "sgd", "seed": "1"})."""
    number, _, overrides = job_dir.name.partition("_")
    return int(number), dict(item.split("-", 1) for item in overrides.split("+"))


def hparams_session(run_dir: Path) -> dict[str, object]:
    """The hyper-parameters TensorBoard's HParams tab shows for this run."""
    accumulator = EventAccumulator(str(run_dir))
    accumulator.Reload()
    content = accumulator.PluginTagToContent(hparams_metadata.PLUGIN_NAME)
    start = hparams_metadata.parse_session_start_info_plugin_data(content[hparams_metadata.SESSION_START_INFO_TAG])
    assert hparams_metadata.EXPERIMENT_TAG not in content  # TensorBoard builds the table from all runs
    return {key: getattr(value, value.WhichOneof("kind")) for key, value in start.hparams.items()}


@pytest.fixture
def quick_run_args() -> list[str]:
    """Overrides that keep a subprocess run short and its output quiet."""
    return ["trainer.max_epochs=2", "callbacks.progress_bar.refresh_rate=0", "trainer.enable_model_summary=false"]
