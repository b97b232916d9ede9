"""Bad input ends the run before training with a message naming key, value and what is accepted."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from optlab.errors import ConfigError, UserError
from optlab.history import read_history

from conftest import compose_config, run_train, train_here

CASES = [
    (["optimizer.lr=-1"], "optimizer.lr=-1", "finite number >= 0"),
    (["optimizer.lr=abc"], "optimizer.lr='abc'", "finite number >= 0"),
    (["optimizer.lr=inf"], "optimizer.lr=inf", "finite number >= 0"),
    (["data.batch_size=0"], "data.batch_size=0", "integer >= 1"),
    (["data.batch_size=-4"], "data.batch_size=-4", "integer >= 1"),
    (["data.batch_size=2.5"], "data.batch_size=2.5", "integer >= 1"),
    (["trainer.max_epochs=-2"], "trainer.max_epochs=-2", "must be a non-negative integer or -1"),  # Lightning's words
    (["data.n_samples=1"], "data.n_samples=1", "integer >= 2"),
    (["data.n_samples=3", "data.train_fraction=0.2"], "data.n_samples=3", "too few rows to split"),
    (["data.n_features=0"], "data.n_features=0", "integer >= 1"),
    (["data.centers=3"], "data.centers=3", "binary classifier"),
    (["data.cluster_std=-1"], "data.cluster_std=-1", "finite number >= 0"),
    (["data.train_fraction=0"], "data.train_fraction=0", "strictly between 0 and 1"),
    (["data.train_fraction=1.5"], "data.train_fraction=1.5", "strictly between 0 and 1"),
    (["trainer.accelerator=tpu2"], "trainer.accelerator='tpu2'", "invalid accelerator name"),
    (["ckpt_path=/nonexistent/last.ckpt"], "ckpt_path='/nonexistent/last.ckpt'", "existing checkpoint file"),
    (
        ["data.batch_size=${paths.nope}"],
        "data.batch_size='${paths.nope}'",
        "cannot be resolved: Interpolation key 'paths.nope' not found",
    ),
    (["+optimizer.lrr=1"], "optimizer.lrr=1", "torch.optim.Adam accepts: lr, betas"),
    (["+data.foo=1"], "data.foo=1", "experiment.blobs.BlobDataModule accepts: n_samples"),
    (["model.hidden_sizes=[8]", "+model.width=3"], "model.width=3", "experiment.model.BinaryClassifier accepts: hidden_sizes"),
]


@pytest.mark.parametrize("overrides, named, accepted", CASES, ids=[" ".join(case[0]) for case in CASES])
def test_bad_value_is_refused_before_training(tmp_path: Path, overrides: list[str], named: str, accepted: str) -> None:
    with pytest.raises(ConfigError) as caught:
        train_here(compose_config(tmp_path, overrides))
    message = str(caught.value)
    assert message.startswith(f"{named} is not valid: ") and accepted in message
    assert "\n" not in message
    assert not list(tmp_path.glob("events.out.tfevents.*")) and not (tmp_path / "checkpoints").exists()


@pytest.mark.parametrize("metric", ["val/accuracy", "test/accuracy"])
def test_an_optimized_metric_the_model_never_logs_names_what_it_logged(tmp_path: Path, metric: str) -> None:
    """Which metrics exist is the model's to say: the checkpoint callbacks monitor optimized_metric, and Lightning
    refuses a monitor nobody logged once the first epoch ends (a test metric is logged only after training)."""
    cfg = compose_config(tmp_path, [f"optimized_metric={metric}", "trainer.max_epochs=3", "data.n_samples=200"])
    with pytest.raises(ConfigError) as caught:
        train_here(cfg)
    message = str(caught.value)
    assert message.startswith(
        f"optimized_metric='{metric}' is not valid: this run has not logged it by the end of epoch 1, "
        "when ModelCheckpoint looks for it; it logged: train/loss_epoch, train/loss_step, val/acc, "
    )
    assert message.endswith("; set optimized_metric to one of those") and "\n" not in message
    assert {record["epoch"] for record in read_history(tmp_path).records} == {0}  # it costs one epoch, not the run


def test_without_a_monitoring_callback_a_name_never_logged_is_refused_after_the_test(tmp_path: Path) -> None:
    cfg = compose_config(tmp_path, ["optimized_metric=val/accuracy", "trainer.max_epochs=2", "data.n_samples=200", "~callbacks"])
    with pytest.raises(
        ConfigError,
        match=r"^optimized_metric='val/accuracy' is not valid: this run has not logged it; "
        r"it logged: test/acc, test/loss, train/loss_epoch, ",
    ):
        train_here(cfg)
    assert len(read_history(tmp_path).values("train/loss_epoch")) == 2


@pytest.mark.parametrize(
    "accelerator, present",
    [("cuda", torch.cuda.is_available()), ("mps", torch.backends.mps.is_available())],
)
def test_accelerator_missing_on_this_machine_is_refused(tmp_path: Path, accelerator: str, present: bool) -> None:
    if present:
        pytest.skip(f"{accelerator} is present here")
    with pytest.raises(ConfigError, match=f"^trainer.accelerator='{accelerator}' is not valid: .* not available"):
        train_here(compose_config(tmp_path, [f"trainer.accelerator={accelerator}"]))


def test_torch_range_checks_are_reported_as_user_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"optimizer \(torch.optim.Adam\): Invalid beta parameter at index 0: 2.0"):
        train_here(compose_config(tmp_path, ["+optimizer.betas=[2.0,0.9]"]))


def test_cli_prints_one_line_and_exits_non_zero(tmp_path: Path) -> None:
    result = run_train(["data.batch_size=0"], cwd=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 1
    assert "data.batch_size=0 is not valid: expected an integer >= 1" in output
    assert "Traceback" not in output
    (run_dir,) = (tmp_path / "logs" / "runs").iterdir()
    assert '"status": "failed"' in (run_dir / "result.json").read_text()


def test_full_traceback_on_request(tmp_path: Path) -> None:
    result = run_train(["data.batch_size=0"], cwd=tmp_path, env={"HYDRA_FULL_ERROR": "1"})
    assert result.returncode == 1 and "Traceback" in result.stderr and "ConfigError" in result.stderr


def test_a_key_that_does_not_exist_is_named(tmp_path: Path) -> None:
    result = run_train(["optimizer.lrr=0.1"], cwd=tmp_path)
    assert result.returncode == 1
    assert "Could not override 'optimizer.lrr'" in result.stderr and "Key 'lrr' is not in struct" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "logs").exists()


def test_unwritable_log_dir_is_reported_before_anything_runs(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    result = run_train([f"paths.log_dir={blocker / 'logs'}"], cwd=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 1
    assert f"{blocker} is a file, not a directory" in output and "paths.log_dir" in output
    assert "Traceback" not in output and "Seed set" not in output


def test_ddp_inside_a_local_sweep_is_refused(tmp_path: Path) -> None:
    """Lightning's ddp re-runs the command line for its extra ranks: inside -m, the whole sweep."""
    result = run_train(["-m", "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", "data.n_samples=200"], cwd=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 1
    assert "trainer.strategy='ddp' is not valid: cannot run inside a local sweep (-m)" in output
    assert "Traceback" not in output
