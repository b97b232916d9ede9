"""The speed measure (optlab.profiler) keep Lightning's behaviour."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
from hydra.utils import instantiate

from optlab.profiler import NoProfiler

from conftest import compose_config


def test_the_default_trainer_uses_the_no_op_profiler_and_simple_still_profiles(tmp_path: Path) -> None:
    assert isinstance(instantiate(compose_config(tmp_path).trainer).profiler, NoProfiler)
    profiled = instantiate(compose_config(tmp_path, ["trainer.profiler=simple"]).trainer).profiler
    assert isinstance(profiled, pl.profilers.SimpleProfiler)
