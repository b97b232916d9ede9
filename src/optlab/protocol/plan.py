"""The protocol's jobs: which configurations train, on which seeds, as which Hydra overrides."""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

# Optimizer arguments that change how an update is computed, not which update: kept as configured
# for the "torch defaults" runs (a fused kernel gives the same update up to float rounding).
IMPLEMENTATION_ARGUMENTS = ("fused", "foreach", "capturable", "differentiable")
# Fresh seeds start this far above the tuning seeds: none is shared between tuning and confirmation.
CONFIRM_SEED_OFFSET = 1000


@dataclass(frozen=True)
class Settings:
    """``hydra.sweeper``'s settings (``configs/hydra/sweeper/protocol.yaml``)."""

    optimizers: tuple[str, ...]
    learning_rates: tuple[float, ...]
    tuning_seeds: int
    confirm_seeds: int
    seeds_as: str  # "replicas": a configuration's seeds in one run; "jobs": one job per seed
    target: float | None  # the validation value to reach; None: the median final value of the confirmed runs


def learning_rates(low: float, high: float, points: int) -> tuple[float, ...]:
    """``points`` learning rates from ``low`` to ``high``, evenly spaced in log, at 4 significant digits."""
    return tuple(float(f"{value:.4g}") for value in np.geomspace(low, high, points))


@dataclass(frozen=True)
class Task:
    """A data set and model to compare the optimizers on: its name and the overrides that compose it."""

    name: str
    overrides: tuple[str, ...]


@dataclass(frozen=True)
class Run:
    """One configuration of one optimizer on one task, trained on ``seeds`` seeds from ``seed`` up."""

    task: Task
    optimizer: str
    stage: str  # "tune", "defaults" (torch's default settings) or "confirm" (the tuned one on fresh seeds)
    lr: float | None  # None: torch's default settings
    seed: int
    seeds: int

    @property
    def settings(self) -> str:
        return "torch defaults" if self.lr is None else f"lr={self.lr:g}"


def jobs_of(run: Run, defaults: Mapping[str, Sequence[str]], as_replicas: bool) -> list[list[str]]:
    """The overrides of the job(s) that train ``run``: one job of its seeds as replicas, or one job per seed."""
    overrides = [*run.task.overrides, f"optimizer={run.optimizer}"]
    overrides += list(defaults[run.optimizer]) if run.lr is None else [f"optimizer.lr={run.lr:g}"]
    if as_replicas and run.seeds > 1:
        return [[*overrides, f"seed={run.seed}", f"replicas={run.seeds}"]]
    return [[*overrides, f"seed={run.seed + k}"] for k in range(run.seeds)]


def override_value(value: Any) -> str:
    """A Python value as Hydra's override grammar writes it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list | tuple):
        return "[" + ",".join(override_value(item) for item in value) + "]"
    return repr(value) if isinstance(value, float) else str(value)


def torch_defaults(target: type, configured: Mapping[str, Any]) -> list[str]:
    """Overrides that put each argument the optimizer config sets back to the class's own default."""
    parameters = inspect.signature(target).parameters
    overrides = []
    for key, value in configured.items():
        if key.startswith("_") or key in IMPLEMENTATION_ARGUMENTS or key not in parameters:
            continue
        default = parameters[key].default
        if default is inspect.Parameter.empty or default == value:
            continue
        overrides.append(f"optimizer.{key}={override_value(default)}")
    return overrides


def tuning_runs(task: Task, settings: Settings, seed: int) -> list[Run]:
    return [
        Run(task, optimizer, "tune", lr, seed, settings.tuning_seeds)
        for optimizer in settings.optimizers
        for lr in settings.learning_rates
    ]


def defaults_runs(task: Task, settings: Settings, seed: int) -> list[Run]:
    return [
        Run(task, optimizer, "defaults", None, seed + CONFIRM_SEED_OFFSET, settings.confirm_seeds)
        for optimizer in settings.optimizers
    ]


def confirm_run(task: Task, optimizer: str, lr: float, settings: Settings, seed: int) -> Run:
    return Run(task, optimizer, "confirm", lr, seed + CONFIRM_SEED_OFFSET, settings.confirm_seeds)
