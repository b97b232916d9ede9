"""What TensorBoard opens on for a sweep, read back from a real TensorBoard server's HTTP API."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from optlab.report.tensorboard import hparam_infos

from conftest import hparams_session, read_scalars, run_train

pytestmark = pytest.mark.xdist_group("tensorboard")

TENSORBOARD_TIMEOUT = 120  # seconds for the server to start and load the logdir


class TensorBoard:
    """``tensorboard --logdir DIR`` on a free port, asked what its dashboards show."""

    def __init__(self, logdir: Path) -> None:
        command = [sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir), "--host", "127.0.0.1", "--port", "0"]
        self.process = subprocess.Popen([*command, "--load_fast=false"], stderr=subprocess.PIPE, text=True)
        assert self.process.stderr is not None
        for line in self.process.stderr:  # "TensorBoard 2.x at http://127.0.0.1:PORT/ (Press CTRL+C to quit)"
            if " at http://" in line:
                self.url = line.split(" at ", 1)[1].split()[0].rstrip("/")
                break
        else:
            raise AssertionError(f"tensorboard exited with {self.process.wait()} before serving")

    def get(self, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.load(response)

    def when_loaded(self, path: str, body: dict[str, Any] | None, ready: str) -> Any:
        """The answer to ``path`` once it holds ``ready`` (the server loads the logdir in the background)."""
        deadline = time.monotonic() + TENSORBOARD_TIMEOUT
        while True:
            answer = self.get(path, body)
            if answer.get(ready) or time.monotonic() > deadline:
                return answer
            time.sleep(0.5)  # polling a condition, with a deadline: the answer decides, not the wait

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


@pytest.fixture(scope="module")
def replicas_sweep(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, TensorBoard]]:
    cwd = tmp_path_factory.mktemp("tensorboard")
    args = ["-m", "optimizer=adam,sgd", "replicas=2", "trainer.max_epochs=2", "data.n_samples=400"]
    result = run_train([*args, "callbacks.progress_bar.refresh_rate=0"], cwd=cwd)
    assert result.returncode == 0, result.stderr[-3000:]
    (sweep_dir,) = (cwd / "logs" / "multiruns").iterdir()
    server = TensorBoard(sweep_dir)
    yield sweep_dir, server
    server.stop()


def test_hparams_opens_on_the_ranking_metric_and_the_settings_that_differ(
    replicas_sweep: tuple[Path, TensorBoard],
) -> None:
    sweep_dir, server = replicas_sweep
    experiment = server.when_loaded("/data/plugin/hparams/experiment", {"experimentName": ""}, "metricInfos")
    metrics = [info["name"]["tag"] for info in experiment["metricInfos"]]
    # The oracle: the tags the jobs' own event files hold.
    job = next(path for path in sweep_dir.iterdir() if path.name.startswith("0_"))
    tags = set(read_scalars(job))
    assert metrics[0] == "val/loss"  # optimized_metric, the sweep's ranking
    assert set(metrics[:4]) == {tag for tag in tags if tag.startswith(("val/", "test/")) and not tag.endswith("_best")}
    assert "epoch" not in metrics[:5]
    ticked = ticked_by_tensorboard(experiment["hparamInfos"])
    assert {"optimizer", "optimizer/lr", "seed", "replica"} <= set(ticked) and len(ticked) == 5
    # The oracle for "varies": the HParams sessions the jobs and replicas wrote themselves.
    sessions = [hparams_session(path.parent) for path in sweep_dir.rglob("events.out.tfevents.*") if path.parent != sweep_dir]
    listed = [info["name"] for info in experiment["hparamInfos"]]
    assert all(len({repr(session.get(name)) for session in sessions}) > 1 for name in listed)  # no constant column
    assert "data/centers" in sessions[0] and "data/centers" not in listed


def ticked_by_tensorboard(infos: list[dict[str, Any]]) -> list[str]:
    """What TensorBoard's HParams table ticks: the first five hyper-parameters, those marked ``differs`` first."""
    return [info["name"] for info in sorted(infos, key=lambda info: not info.get("differs"))][:5]


def test_a_sweep_varying_fewer_than_five_settings_ticks_no_constant() -> None:
    sessions = [
        {"seed": 2020, "optimizer": "adam", "optimizer/lr": 0.001, "data/centers": 2},
        {"seed": 2020, "optimizer": "sgd", "optimizer/lr": 0.01, "optimizer/momentum": 0.9, "data/centers": 2},
    ]
    infos = [{"name": info.name, "differs": info.differs} for info in hparam_infos(sessions)]
    assert ticked_by_tensorboard(infos) == ["optimizer", "optimizer/lr", "optimizer/momentum"]


def test_replicas_and_their_mean_are_rows_of_their_own(replicas_sweep: tuple[Path, TensorBoard]) -> None:
    sweep_dir, _ = replicas_sweep
    run = next(path for path in sweep_dir.iterdir() if path.name.startswith("1_"))
    mean, first, second = (hparams_session(path) for path in (run, run / "replica_00", run / "replica_01"))
    assert (mean["replica"], first["replica"], second["replica"]) == ("mean of 2", "0", "1")
    assert (first["seed"], second["seed"]) == (2020, 2021)


def test_custom_scalars_open_on_the_ranking_metric_with_every_job(replicas_sweep: tuple[Path, TensorBoard]) -> None:
    _, server = replicas_sweep
    layout = server.when_loaded("/data/plugin/custom_scalars/layout", None, "category")
    first = layout["category"][0]
    assert first["title"].startswith("val/loss") and first["chart"][0]["multiline"]["tag"] == ["^val/loss$"]
    titles = [category["title"] for category in layout["category"]]
    assert titles[1:] == ["validation", "test", "training"]
    assert layout["category"][-1].get("closed")  # the training curves start folded
