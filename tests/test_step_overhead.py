"""The per-step trims of Lightning's bookkeeping keep Lightning's behaviour."""

from __future__ import annotations

import inspect
from pathlib import Path

import lightning.pytorch as pl
import pytest
from conftest import compose_config, read_scalars
from hydra.utils import instantiate
from lightning.pytorch.utilities.signature_utils import is_param_in_hook_signature

from optlab.model import BinaryClassifier
from optlab.profilers import NoProfiler
from optlab.train import train


@pytest.mark.parametrize("name", ["last_checkpoint", "best_checkpoint"])
def test_checkpoint_state_keys_are_lightnings(name: str, tmp_path: Path) -> None:
    """Callback states in checkpoints are filed under the state key: it must not change."""
    node = compose_config(tmp_path).callbacks[name]
    ours = instantiate(node)
    lightnings = instantiate(node, _target_="lightning.pytorch.callbacks.ModelCheckpoint")
    assert type(ours) is not type(lightnings)
    assert ours.state_key == lightnings.state_key


def test_training_step_signature_is_what_inspect_finds() -> None:
    model = BinaryClassifier(input_size=2, hidden_sizes=[4])
    assert inspect.getfullargspec(model.training_step).args == ["self", "batch", "batch_idx"]
    assert is_param_in_hook_signature(model.training_step, "batch_idx", min_args=2)


def test_the_default_trainer_uses_the_no_op_profiler_and_simple_still_profiles(tmp_path: Path) -> None:
    assert isinstance(instantiate(compose_config(tmp_path).trainer).profiler, NoProfiler)
    profiled = instantiate(compose_config(tmp_path, ["trainer.profiler=simple"]).trainer).profiler
    assert isinstance(profiled, pl.profilers.SimpleProfiler)


@pytest.mark.parametrize(("every", "steps"), [(0, []), (7, [0, 7, 14])])
def test_step_losses_follow_log_every_n_steps(every: int, steps: list[int], tmp_path: Path) -> None:
    # 400 samples: 320 training rows, 20 batches of 16.
    train(compose_config(tmp_path, ["data.n_samples=400", "trainer.max_epochs=1", f"trainer.log_every_n_steps={every}"]))
    scalars = read_scalars(tmp_path)
    assert [step for step, _ in scalars.get("train/loss_step", [])] == steps
    assert len(scalars["train/loss_epoch"]) == 1
