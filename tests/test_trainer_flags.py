"""The Trainer flags Lightning users pass from the command line, read back from the event files.

Every run here has 320 training rows: 20 batches of 16 per epoch.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from optlab.config_checks import check_config
from optlab.errors import ConfigError
from optlab.history import read_history
from optlab.results import read_result

from conftest import CONFIG_DIR, compose_config, read_scalars, train_here
from notebook_reference import NeuralNetwork, notebook_data

SMALL = ["data.n_samples=400", "print_config=false"]
BATCHES = 20


def run(tmp_path: Path, *overrides: str) -> dict[str, list[tuple[int, float]]]:
    """Train with ``overrides``, every step logged unless they say otherwise; the event files' scalars."""
    every_step = [] if any(o.startswith("trainer.log_every_n_steps=") for o in overrides) else ["trainer.log_every_n_steps=1"]
    train_here(compose_config(tmp_path, [*SMALL, *every_step, *overrides]))
    return read_scalars(tmp_path)


def steps(scalars: dict[str, list[tuple[int, float]]], tag: str) -> list[int]:
    return [step for step, _ in scalars[tag]]


def optimizer_steps(run_dir: Path) -> int:
    result = read_result(run_dir)
    assert result is not None and result.status == "ok", result
    return int(result.steps or 0)


def test_gradient_accumulation_logs_optimizer_steps_in_order(tmp_path: Path) -> None:
    scalars = run(tmp_path, "trainer.accumulate_grad_batches=4", "trainer.max_epochs=2")
    assert optimizer_steps(tmp_path) == 2 * BATCHES // 4
    # One point per optimizer step, numbered by optimizer steps, never folding back.
    assert steps(scalars, "train/loss_step") == list(range(10))
    assert steps(scalars, "val/loss") == steps(scalars, "train/loss_epoch") == [4, 9]
    # The whole event file in the order it was written: no point goes back in time.
    written = _steps_in_write_order(tmp_path)
    assert written == sorted(written) and written[-1] == 10  # the test metrics, after the last step


def _steps_in_write_order(run_dir: Path) -> list[int]:
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    files = sorted(run_dir.glob("events.out.tfevents.*"))  # fit's, then test's: names start with the time
    return [event.step for file in files for event in EventFileLoader(str(file)).Load() if event.summary.value]


def test_validation_twice_per_epoch(tmp_path: Path) -> None:
    scalars = run(tmp_path, "trainer.val_check_interval=0.5", "trainer.max_epochs=2")
    assert steps(scalars, "val/loss") == [9, 19, 29, 39]
    assert len(scalars["val/acc_best"]) == 4


def test_validation_every_second_epoch(tmp_path: Path) -> None:
    scalars = run(tmp_path, "trainer.check_val_every_n_epoch=2", "trainer.max_epochs=4")
    assert steps(scalars, "val/loss") == [39, 79]
    assert len(scalars["train/loss_epoch"]) == 4


def test_limited_train_and_val_batches(tmp_path: Path) -> None:
    scalars = run(
        tmp_path,
        "trainer.limit_train_batches=5",
        "data.eval_batch_size=10",
        "trainer.limit_val_batches=3",
        "trainer.max_epochs=3",
    )
    assert optimizer_steps(tmp_path) == 15
    assert steps(scalars, "train/loss_step") == list(range(15))
    # 3 validation batches of 10 rows: the last val/loss is the final weights' loss on those 30 rows.
    model = notebook_model(torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"])
    _, x_held, _, y_held = notebook_data(400)
    with torch.no_grad():
        expected = torch.nn.BCELoss()(model(x_held[:30]), y_held[:30]).item()
    assert scalars["val/loss"][-1][1] == pytest.approx(expected, rel=1e-5)
    assert len(scalars["val/loss"]) == 3


def notebook_model(state_dict: dict[str, torch.Tensor]) -> NeuralNetwork:
    """The notebook's network holding a checkpoint's weights (net.0, net.2, net.4 are fc1, fc2, out)."""
    model = NeuralNetwork()
    names = {"net.0": "fc1", "net.2": "fc2", "net.4": "out"}
    model.load_state_dict(
        {
            f"{names[key.rsplit('.', 1)[0]]}.{key.rsplit('.', 1)[1]}": value
            for key, value in state_dict.items()
            if key.startswith("net.")
        }
    )
    return model


def test_max_steps_stops_mid_epoch(tmp_path: Path) -> None:
    scalars = run(tmp_path, "trainer.max_steps=7", "trainer.max_epochs=10")
    assert optimizer_steps(tmp_path) == 7
    assert steps(scalars, "train/loss_step") == list(range(7))


def test_overfit_batches_trains_on_the_same_batches(tmp_path: Path) -> None:
    scalars = run(tmp_path, "+trainer.overfit_batches=2", "trainer.max_epochs=30")
    assert optimizer_steps(tmp_path) == 60
    losses = [value for _, value in scalars["train/loss_epoch"]]
    assert losses[-1] < 1e-3 < losses[0]  # two batches, seen 30 times: learned by heart


def test_fast_dev_run_runs_one_batch_and_logs_nothing(tmp_path: Path) -> None:
    train_here(compose_config(tmp_path, [*SMALL, "+trainer.fast_dev_run=true"]))
    assert optimizer_steps(tmp_path) == 1
    assert not list(tmp_path.glob("events.out.tfevents.*")) and not (tmp_path / "checkpoints").exists()


def test_gradient_clipping_matches_plain_pytorch(tmp_path: Path) -> None:
    """One SGD step with the gradient norm clipped to 1e-3, against the same step in plain PyTorch."""
    clip, lr = 1e-3, 0.5
    train_here(
        compose_config(
            tmp_path,
            [
                "print_config=false",
                "optimizer=sgd",
                f"optimizer.lr={lr}",
                "optimizer.momentum=0",
                f"trainer.gradient_clip_val={clip}",
                "trainer.max_steps=1",
            ],
        )
    )
    ours = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]

    x_train, _, y_train, _ = notebook_data()
    model = NeuralNetwork()
    before = [p.detach().clone() for p in model.parameters()]
    torch.nn.BCELoss()(model(x_train[:16]), y_train[:16]).backward()
    assert torch.nn.utils.clip_grad_norm_(model.parameters(), clip) > 100 * clip  # the clip really bites
    torch.optim.SGD(model.parameters(), lr=lr).step()
    expected = [p.detach() for p in model.parameters()]
    theirs = [value for name, value in ours.items() if name.startswith("net.")]
    update = math.sqrt(sum(float(((a - b) ** 2).sum()) for a, b in zip(theirs, before)))
    assert update == pytest.approx(lr * clip, rel=1e-3)
    for mine, reference in zip(theirs, expected):
        assert torch.allclose(mine, reference, atol=1e-7)


@pytest.mark.parametrize("precision, dtype", [("bf16-mixed", torch.float32), ("64-true", torch.float64)])
def test_precision_runs_on_cpu(tmp_path: Path, precision: str, dtype: torch.dtype) -> None:
    scalars = run(tmp_path, f"trainer.precision={precision}", "trainer.max_epochs=2")
    losses = [value for _, value in scalars["train/loss_epoch"]]
    assert all(math.isfinite(loss) for loss in losses) and losses[1] < losses[0]
    state = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    assert state["net.0.weight"].dtype == dtype
    if precision == "64-true":  # the same run in double precision: the same losses to float32's precision
        single = run(tmp_path / "single", "trainer.max_epochs=2")
        assert losses == pytest.approx([value for _, value in single["train/loss_epoch"]], rel=1e-4)


def test_float16_weights_are_refused_with_adam(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"trainer.precision='16-true' is not valid: .*bf16-mixed"):
        train_here(compose_config(tmp_path, [*SMALL, "trainer.precision=16-true"]))


def test_clipping_a_fused_optimizer_under_mixed_precision_is_refused_before_training(tmp_path: Path) -> None:
    clipped = [*SMALL, "trainer.precision=bf16-mixed", "trainer.gradient_clip_val=1.0", "trainer.max_epochs=1"]
    with pytest.raises(ConfigError, match=r"trainer.gradient_clip_val=1.0 is not valid: .*optimizer.fused=false"):
        train_here(compose_config(tmp_path / "fused", clipped))
    assert not (tmp_path / "fused" / "checkpoints").exists()
    train_here(compose_config(tmp_path / "unfused", [*clipped, "optimizer.fused=false"]))  # what the message suggests
    assert read_result(tmp_path / "unfused").status == "ok"


def test_precision_aliases_mean_what_lightning_reads() -> None:
    """``16`` is Lightning's 16-mixed (float32 weights): Adam is fine, clipping a fused Adam is not."""
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        check_config(compose("train", ["trainer.precision=16"]))
        with pytest.raises(ConfigError, match=r"trainer.gradient_clip_val=1.0 is not valid"):
            check_config(compose("train", ["trainer.precision=16", "trainer.gradient_clip_val=1.0"]))


def test_no_logger_still_records_the_run(tmp_path: Path) -> None:
    train_here(compose_config(tmp_path, [*SMALL, "~logger", "trainer.max_epochs=2"]))
    assert not list(tmp_path.glob("events.out.tfevents.*"))
    result = read_result(tmp_path)
    assert result is not None and result.status == "ok" and 0.9 < result.metrics["test/acc"] <= 1
    assert len(read_history(tmp_path).values("train/loss_epoch")) == 2


def test_no_callbacks_trains_with_lightnings_defaults(tmp_path: Path) -> None:
    scalars = run(tmp_path, "~callbacks", "trainer.max_epochs=2")
    assert len(scalars["val/loss"]) == 2
    # Lightning's own default checkpoint takes over from ours.
    assert [path.name for path in (tmp_path / "checkpoints").iterdir()] == ["epoch=1-step=40.ckpt"]


def test_log_every_n_steps_sets_the_step_points(tmp_path: Path) -> None:
    scalars = run(tmp_path, "trainer.log_every_n_steps=7", "trainer.max_epochs=1")
    assert steps(scalars, "train/loss_step") == [6, 13]
    assert len(scalars["train/loss_epoch"]) == 1
