"""Loggers other than TensorBoard, read back with their own tools; the run's record does not depend on them."""

from __future__ import annotations

import glob
import json
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from optlab.console import look_commands
from optlab.results import read_result

from conftest import compose_config, hparams_session, read_scalars, train_here

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


# ---- Weights & Biases, offline ----------------------------------------------------------------
# wandb 0.2x-0.3x writes an offline run as <save_dir>/wandb/offline-run-*/run-<id>.wandb: a
# 7-byte header (":W&B", magic 0xBEE1, version 0), then LevelDB-log records in 32 KiB blocks,
# each a wandb_internal_pb2.Record. wandb 0.31 reads these files in Go only, so this reads them.
WANDB_BLOCK = 32768
WANDB_FULL, WANDB_FIRST, WANDB_MIDDLE, WANDB_LAST = 1, 2, 3, 4
W_AND_B_OWN_KEYS = {"_step", "_timestamp", "_runtime", "trainer/global_step"}


def wandb_records(path: Path) -> Iterator[Any]:
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert struct.unpack("<4sHB", data[:7]) == (b":W&B", 0xBEE1, 0), f"{path}: not a W&B run file"
    position, pieces = 7, b""
    while position + 7 <= len(data):
        left = WANDB_BLOCK - position % WANDB_BLOCK
        if left < 7:  # a block's tail too short for a record header is padding
            position += left
            continue
        checksum, length, kind = struct.unpack("<IHB", data[position : position + 7])
        if (checksum, length, kind) == (0, 0, 0):  # zero padding up to the end of the block
            position += left
            continue
        chunk = data[position + 7 : position + 7 + length]
        assert zlib.crc32(chunk, zlib.crc32(bytes([kind]))) == checksum, f"{path}: bad checksum at byte {position}"
        position += 7 + length
        if kind == WANDB_FULL:
            yield wandb_internal_pb2.Record.FromString(chunk)
        elif kind in (WANDB_FIRST, WANDB_MIDDLE):
            pieces = (b"" if kind == WANDB_FIRST else pieces) + chunk
        elif kind == WANDB_LAST:
            yield wandb_internal_pb2.Record.FromString(pieces + chunk)
    assert position == len(data), f"{path}: {len(data) - position} bytes left over"


def wandb_run(run_dir: Path) -> dict[str, Any]:
    """The one offline W&B run under ``run_dir``: its name, history rows, config and exit code."""
    paths = list(run_dir.glob("wandb/offline-run-*/run-*.wandb"))
    assert len(paths) == 1, f"{run_dir}: {len(paths)} offline W&B runs, not 1"
    (path,) = paths
    run: dict[str, Any] = {"history": [], "config": {}, "exit_code": None}

    def key(item: Any) -> str:
        return item.key or "/".join(item.nested_key)

    for record in wandb_records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run["name"] = record.run.display_name
        elif kind == "history":
            run["history"].append({key(item): json.loads(item.value_json) for item in record.history.item})
        elif kind == "config":
            run["config"].update({key(item): json.loads(item.value_json) for item in record.config.update})
        elif kind == "exit":
            run["exit_code"] = record.exit.exit_code
    run["config"].pop("_wandb", None)
    return run


@pytest.fixture
def wandb_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """wandb as on a machine never logged in: offline, no network, nothing written outside ``tmp_path``."""
    pytest.importorskip("wandb", reason="the wandb extra is not installed (pip install -e '.[wandb]')")
    from optlab.wandb_logger import WandbLogger

    for name in ("WANDB_API_KEY", "WANDB_BASE_URL", "WANDB_ENTITY", "WANDB_PROJECT", "WANDB_RUN_ID", "WANDB_RESUME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))  # no login: the config's offline resolver says offline
    monkeypatch.setenv("WANDB_MODE", "offline")  # restored afterwards (Lightning's logger sets it to dryrun)
    monkeypatch.setenv("WANDB_ERROR_REPORTING", "false")  # no crash reports
    for name in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR"):
        monkeypatch.setenv(name, str(tmp_path / "wandb-home" / name.lower()))
    yield
    WandbLogger.finish_last()


def test_wandb_offline_run_has_every_tensorboard_point_and_the_params_alone_and_beside_tensorboard(
    tmp_path: Path, wandb_offline: None, capfd: pytest.CaptureFixture[str], recwarn: pytest.WarningsRecorder
) -> None:
    import wandb

    from optlab.wandb_logger import WandbLogger

    overrides = ["data.n_samples=400", "trainer.max_epochs=2", "trainer.log_every_n_steps=5", "optimizer=sgd"]
    both = compose_config(tmp_path / "both", [*overrides, "logger=[tensorboard,wandb]"])
    train_here(both)
    # Then W&B alone, in the same process, as the second job of a sweep on Hydra's basic launcher.
    alone = compose_config(tmp_path / "alone", [*overrides, "logger=wandb"])
    train_here(alone)
    WandbLogger.finish_last()
    wandb.teardown()  # wandb-core closes a finished run's file after finish() returns; teardown waits for it
    runs = {name: wandb_run(tmp_path / name) for name in ("both", "alone")}  # one run each, not one for the two

    events = read_scalars(tmp_path / "both")
    assert {"train/loss_step", "train/loss_epoch", "val/loss", "val/acc", "val/loss_best", "test/acc", "epoch"} <= set(events)
    for name, run in runs.items():
        assert run["name"] == name and run["exit_code"] == 0, name
        history = run["history"]
        # W&B numbers the rows itself (_step) and drops a row whose _step goes back: none may.
        assert [row["_step"] for row in history] == list(range(len(history))), name
        steps = [row["trainer/global_step"] for row in history]
        assert steps == sorted(steps), f"{name}: trainer/global_step goes back: {steps}"
        assert set().union(*history) - W_AND_B_OWN_KEYS == set(events), name
        for tag, points in events.items():  # TensorBoard's step is Lightning's global step: W&B's trainer/global_step
            logged = [(row["trainer/global_step"], row[tag]) for row in history if tag in row]
            assert [step for step, _ in logged] == [step for step, _ in points], f"{name}: {tag}"
            assert [value for _, value in logged] == pytest.approx([value for _, value in points], rel=1e-6), f"{name}: {tag}"

    config = runs["both"]["config"]
    session = hparams_session(tmp_path / "both")  # the hyper-parameters TensorBoard shows
    assert {name: config[name] for name in session} == session
    assert config["optimizer"] == "sgd" and config["optimizer/lr"] == both.optimizer.lr
    assert config["optimizer/momentum"] == both.optimizer.momentum and config["model/hidden_sizes"] == "[256, 1024]"
    assert runs["alone"]["config"] == config
    # Quiet: no wandb lines on the console (its warnings go to the run's debug.log), no warnings raised.
    console = capfd.readouterr()
    assert "wandb" not in console.out + console.err, console.out + console.err
    assert not [str(warning.message) for warning in recwarn if "wandb" in str(warning.message).lower()]
    # The closing block's look line names the offline run it wrote.
    (look,) = look_commands(alone.logger, tmp_path / "alone")
    assert look.startswith("wandb sync ") and len(glob.glob(look.split()[2])) == 1
