"""Loggers other than TensorBoard, read back with their own tools; the run's record does not depend on them."""

from __future__ import annotations

import glob
from pathlib import Path

import pytest
from conftest import compose_config, read_scalars, train_here

from optlab.console import look_commands
from optlab.results import read_result

SMALL = ["data.n_samples=400", "trainer.max_epochs=3", "trainer.log_every_n_steps=5"]


def mlflow_run(store: str):  # type: ignore[no-untyped-def]
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=store)
    experiment = client.get_experiment_by_name("optlab")
    assert experiment is not None, "the logger created no experiment"
    (run,) = client.search_runs([experiment.experiment_id])
    return client, run


def test_mlflow_store_has_the_params_and_every_metric_at_increasing_steps(tmp_path: Path) -> None:
    pytest.importorskip("mlflow", reason="the mlflow extra is not installed (pip install -e '.[mlflow]')")
    # TensorBoard alongside MLflow: its event files are the oracle for what was logged.
    cfg = compose_config(tmp_path, [*SMALL, "logger=[tensorboard,mlflow]", "optimizer=sgd"])
    train_here(cfg)
    client, run = mlflow_run(f"sqlite:///{tmp_path / 'mlflow.db'}")

    assert run.info.status == "FINISHED" and run.info.run_name == tmp_path.name
    assert run.data.params["optimizer"] == "sgd"
    assert float(run.data.params["optimizer/lr"]) == cfg.optimizer.lr
    assert float(run.data.params["optimizer/momentum"]) == cfg.optimizer.momentum
    assert run.data.params["model/hidden_sizes"] == "[256, 1024]"

    events = read_scalars(tmp_path)
    assert {"train/loss_step", "train/loss_epoch", "val/loss", "val/acc", "val/loss_best", "test/acc"} <= set(events)
    assert set(run.data.metrics) >= set(events)
    for tag, points in events.items():
        history = client.get_metric_history(run.info.run_id, tag)
        steps = [metric.step for metric in history]
        if tag == "epoch":  # Lightning adds it to each logging call: validation's and the epoch's share a step
            assert steps == sorted(steps), f"epoch: steps go back: {steps}"
        else:
            assert steps == sorted(set(steps)), f"{tag}: steps not strictly increasing: {steps}"
        assert steps == [step for step, _ in points], tag
        assert [metric.value for metric in history] == pytest.approx([value for _, value in points], rel=1e-6), tag


@pytest.mark.parametrize("logger", ["csv", "mlflow"])
def test_result_and_report_do_not_depend_on_the_logger(tmp_path: Path, logger: str) -> None:
    if logger == "mlflow":
        pytest.importorskip("mlflow", reason="the mlflow extra is not installed (pip install -e '.[mlflow]')")
    train_here(compose_config(tmp_path / "tensorboard", SMALL))
    cfg = compose_config(tmp_path / logger, [*SMALL, f"logger={logger}"])
    train_here(cfg)

    with_tensorboard, with_other = read_result(tmp_path / "tensorboard"), read_result(tmp_path / logger)
    assert with_tensorboard is not None and with_other is not None
    assert with_other.status == with_tensorboard.status == "ok"
    assert with_other.metrics == with_tensorboard.metrics
    assert not list((tmp_path / logger).glob("events.out.tfevents.*"))
    if logger == "csv":  # the closing block's look line names the file the logger wrote, for a run and for a sweep
        assert [Path(line).is_file() for line in look_commands(cfg.logger, tmp_path / logger)] == [True]
        assert [len(glob.glob(line)) for line in look_commands(cfg.logger, tmp_path, sweep=True)] == [1]
