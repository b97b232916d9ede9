"""The speed measures (optlab.speed) keep Lightning's behaviour."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import pytest
from conftest import compose_config
from hydra.utils import instantiate

from optlab.speed import NoProfiler


@pytest.mark.parametrize("name", ["last_checkpoint", "best_checkpoint"])
def test_checkpoint_state_keys_are_lightnings(name: str, tmp_path: Path) -> None:
    """Callback states in checkpoints are filed under the state key: it must not change."""
    node = compose_config(tmp_path).callbacks[name]
    ours = instantiate(node)
    lightnings = instantiate(node, _target_="lightning.pytorch.callbacks.ModelCheckpoint")
    assert type(ours) is not type(lightnings)
    assert ours.state_key == lightnings.state_key


def test_the_default_trainer_uses_the_no_op_profiler_and_simple_still_profiles(tmp_path: Path) -> None:
    assert isinstance(instantiate(compose_config(tmp_path).trainer).profiler, NoProfiler)
    profiled = instantiate(compose_config(tmp_path, ["trainer.profiler=simple"]).trainer).profiler
    assert isinstance(profiled, pl.profilers.SimpleProfiler)
