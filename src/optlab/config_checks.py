"""Checks on the composed config that neither Lightning, torch nor the classes it builds make, or make too late.

One place per concern: the run's own settings (``seed``, ``replicas``, ...) against a typed
schema; the optimizer's arguments against torch's signature and torch's own range checks,
on a trial instance; what only fails mid-run (clipping a fused optimizer under mixed
precision, float16 weights with Adam's epsilon, DDP inside a local sweep); the resume
checkpoint. Trainer flags are Lightning's to check when the Trainer is built, the data's
and the model's arguments their classes' (``optlab.building`` turns either into one line).
Each check raises :class:`~optlab.errors.ConfigError`: the key, the bad value, what is accepted.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, fields
from enum import Enum
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf, ValidationError
from omegaconf.errors import InterpolationKeyError, InterpolationResolutionError

from optlab.building import build, check_argument_types, target_class, unknown_argument
from optlab.errors import ConfigError, UserError, is_number
from optlab.hydra_context import in_sweep

# Lightning's short names for its precisions: "16" is 16-mixed (float32 weights), not 16-true.
PRECISION_ALIASES = {"32": "32-true", "16": "16-mixed", "bf16": "bf16-mixed", "64": "64-true"}


class Direction(str, Enum):
    minimize = "minimize"
    maximize = "maximize"


@dataclass
class RunSettings:
    """The top-level keys of ``configs/train.yaml``, typed: OmegaConf refuses a value of another type."""

    seed: int = 2020
    replicas: int = 1
    num_threads: int | None = None
    optimized_metric: str = ""
    optimized_direction: Direction = Direction.minimize
    print_config: bool = False
    trust_checkpoint: bool = False


# What each setting accepts, said the same way whether its type or its range is wrong.
ACCEPTED = {
    "seed": "expected an integer from 0 to 4294967295",
    "replicas": "expected a whole number of seeds to train together, >= 1 (1: a single run)",
    "num_threads": "expected a number of threads >= 1, or null",
    "optimized_metric": "expected the name of a metric the model logs",
    "optimized_direction": "expected minimize or maximize",
    "print_config": "expected true or false",
    "trust_checkpoint": "expected true or false",
}
IN_RANGE = {  # what the types cannot say
    "seed": lambda seed: 0 <= seed < 2**32,
    "replicas": lambda replicas: replicas >= 1,
    "num_threads": lambda threads: threads is None or threads >= 1,
    "optimized_metric": bool,
}


def check_run_settings(cfg: DictConfig) -> None:
    present = {field.name: cfg[field.name] for field in fields(RunSettings) if field.name in cfg}
    try:
        settings = OmegaConf.merge(OmegaConf.structured(RunSettings), present)
    except ValidationError as error:
        key = str(error.full_key)
        raise ConfigError(key, present.get(key), ACCEPTED[key]) from None
    for key, fits in IN_RANGE.items():
        if not fits(settings[key]):
            raise ConfigError(key, cfg.get(key), ACCEPTED[key])


def check_optimizer(optimizer: DictConfig) -> torch.optim.Optimizer:
    """Learning rate and argument types, then a trial build on one parameter: unknown arguments and torch's range checks."""
    lr = optimizer.get("lr")
    if lr is not None and not (is_number(lr) and math.isfinite(lr) and lr >= 0):
        raise ConfigError("optimizer.lr", lr, "expected a finite number >= 0")
    check_argument_types(target_class(optimizer, "optimizer"), OmegaConf.to_container(optimizer, resolve=True), "optimizer")
    factory = build(optimizer, "optimizer")
    try:
        return factory([torch.nn.Parameter(torch.zeros(1))])
    except TypeError as error:
        if not (unknown := unknown_argument(error, optimizer, "optimizer", given=("params",))):
            raise
        raise unknown from None
    except ValueError as error:  # torch's messages name the argument, e.g. "Invalid beta parameter at index 0: 2.0"
        raise UserError(f"optimizer ({optimizer._target_}): {error}") from None


def canonical_precision(precision: Any) -> str:
    """``precision`` by its full name, as Lightning reads it (``16`` -> ``16-mixed``)."""
    return PRECISION_ALIASES.get(str(precision), str(precision))


def check_precision(precision: Any, optimizer: DictConfig) -> None:
    """float16 weights cannot hold an epsilon below float16's smallest number: Adam-like updates become NaN."""
    eps = optimizer.get("eps", 1e-8 if "Adam" in str(optimizer.get("_target_", "")) else None)
    if canonical_precision(precision) == "16-true" and eps is not None and eps < torch.finfo(torch.float16).tiny:
        raise ConfigError(
            "trainer.precision",
            precision,
            f"float16 weights turn {optimizer._target_}'s updates (eps={eps:g}) into NaN; "
            "use 16-mixed or bf16-mixed (float32 weights), or bf16-true",
        )


def check_clipping(trainer: DictConfig, optimizer: DictConfig) -> None:
    """Lightning refuses, at the first step, to clip the gradients of a fused optimizer under mixed precision."""
    clip = trainer.get("gradient_clip_val")
    if clip and canonical_precision(trainer.get("precision")).endswith("-mixed") and optimizer.get("fused"):
        raise ConfigError(
            "trainer.gradient_clip_val",
            clip,
            f"Lightning cannot clip a fused optimizer's gradients under precision {trainer.precision}; "
            "add optimizer.fused=false, or use precision 32-true",
        )


def check_strategy_in_sweep(trainer: DictConfig) -> None:
    """Lightning's ``ddp`` starts its extra processes by re-running the command line; inside a
    local sweep that command is the whole sweep. Under SLURM the processes already exist."""
    strategy = trainer.get("strategy", "auto")
    if (
        in_sweep()
        and isinstance(strategy, str)
        and strategy.startswith("ddp")
        and "spawn" not in strategy
        and "SLURM_NTASKS" not in os.environ
    ):
        raise ConfigError(
            "trainer.strategy",
            strategy,
            "cannot run inside a local sweep (-m): its extra processes would re-run the whole sweep; "
            "use trainer.strategy=ddp_spawn, one command per configuration, or hydra/launcher=slurm",
        )


def check_trainer(trainer: DictConfig) -> None:
    """Flag types against the Trainer's own annotations (``max_epochs: int``); the values are Lightning's to check."""
    from lightning.pytorch import Trainer

    flags = {
        key: value
        for key, value in trainer.items_ex(resolve=False)
        if not str(key).startswith("_") and not OmegaConf.is_interpolation(trainer, str(key))
    }
    check_argument_types(Trainer, flags, "trainer")
    check_strategy_in_sweep(trainer)


def check_interpolations(cfg: DictConfig) -> None:
    """Every ``${...}`` in the config resolves: one naming a key the config lacks (lightning-hydra-template's
    ``${paths.root_dir}``, a typo) is one line naming where it is written, not OmegaConf's traceback."""
    for key, node in cfg.items_ex(resolve=False):
        if key == "hydra" or OmegaConf.is_missing(cfg, key):  # Hydra's node resolves inside the job; ??? is checked where used
            continue
        try:  # resolving is the check
            if OmegaConf.is_config(node):
                OmegaConf.to_container(node, resolve=True)
            else:
                OmegaConf.select(cfg, str(key))
        except InterpolationKeyError as error:
            where = str(error.full_key or key)
            raise ConfigError(where, written_value(cfg, where), f"it cannot be resolved: {str(error).splitlines()[0]}") from None
        except InterpolationResolutionError:  # a resolver that needs the running job (${hydra:...}): checked where used
            continue


def written_value(cfg: DictConfig, key: str) -> Any:
    """The value at ``key`` as the config writes it (``${paths.data_dir}``), interpolations unresolved."""
    node: Any = OmegaConf.to_container(cfg, resolve=False)
    for part in key.replace("[", ".").replace("]", "").split("."):
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


def check_config(cfg: DictConfig) -> None:
    """What ``train.py`` can check before the data is made or the model built."""
    check_interpolations(cfg)
    check_run_settings(cfg)
    if cfg.get("optimizer") is not None:
        check_optimizer(cfg.optimizer)
    if cfg.get("scheduler") is not None:
        check_argument_types(
            target_class(cfg.scheduler, "scheduler"), OmegaConf.to_container(cfg.scheduler, resolve=True), "scheduler"
        )
    check_trainer(cfg.trainer)
    check_precision(cfg.trainer.get("precision"), cfg.get("optimizer") or {})
    check_clipping(cfg.trainer, cfg.get("optimizer") or {})
    if cfg.get("ckpt_path") is not None:  # readable, and holding nothing that is not safe to load
        from optlab.checkpoints import configured_classes, load_checkpoint

        load_checkpoint(cfg.ckpt_path, lambda: configured_classes(cfg), trusted=cfg.get("trust_checkpoint", False))


def check_evaluation_config(cfg: DictConfig) -> None:
    """What ``eval.py`` needs: a checkpoint that loads (the objects its run may have saved are those its own config names)."""
    from optlab.checkpoints import configured_classes, load_checkpoint, trained_with

    check_interpolations(cfg)
    if OmegaConf.is_missing(cfg, "ckpt_path") or cfg.ckpt_path is None:
        raise ConfigError(
            "ckpt_path",
            None,
            "expected the checkpoint to test, e.g. python eval.py ckpt_path=logs/runs/<run>/checkpoints/last.ckpt",
        )
    load_checkpoint(
        cfg.ckpt_path, lambda: configured_classes(trained_with(cfg.ckpt_path) or cfg), trusted=cfg.get("trust_checkpoint", False)
    )
