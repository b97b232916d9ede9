"""Checks on the composed config, run before anything is built or trained.

Each check raises :class:`~optlab.errors.ConfigError`, whose message names the key, the
bad value and what is accepted. Data-set arguments are checked by the data module itself
(it knows its own arguments); everything else is checked here.
"""

from __future__ import annotations

import math
import os
from typing import Any

import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, ListConfig, OmegaConf

from optlab.cli import in_sweep
from optlab.arguments import is_number
from optlab.building import build, check_argument_types, target_class, unknown_argument
from optlab.checkpoints import configured_classes, load_checkpoint, trained_with
from optlab.errors import ConfigError, UserError

ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps")
# Lightning's short names for its precisions: "16" is 16-mixed (float32 weights), not 16-true.
PRECISION_ALIASES = {"32": "32-true", "16": "16-mixed", "bf16": "bf16-mixed", "64": "64-true"}
PRECISIONS = ("32-true", "16-mixed", "bf16-mixed", "16-true", "bf16-true", "64-true", *PRECISION_ALIASES)


def check_optimizer(optimizer: DictConfig) -> torch.optim.Optimizer:
    """Learning rate, then a trial build on one parameter: unknown arguments and torch's own range checks."""
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
            "trainer.precision", precision,
            f"float16 weights turn {optimizer._target_}'s updates (eps={eps:g}) into NaN; "
            "use 16-mixed or bf16-mixed (float32 weights), or bf16-true",
        )


def check_clipping(trainer: DictConfig, optimizer: DictConfig) -> None:
    """Lightning refuses, at the first step, to clip the gradients of a fused optimizer under mixed precision."""
    clip = trainer.get("gradient_clip_val")
    if clip and canonical_precision(trainer.get("precision")).endswith("-mixed") and optimizer.get("fused"):
        raise ConfigError(
            "trainer.gradient_clip_val", clip,
            f"Lightning cannot clip a fused optimizer's gradients under precision {trainer.precision}; "
            "add optimizer.fused=false, or use precision 32-true",
        )


def check_trainer(trainer: DictConfig) -> None:
    max_epochs = trainer.get("max_epochs")
    if max_epochs is not None and not (
        isinstance(max_epochs, int) and not isinstance(max_epochs, bool)
        and (max_epochs >= 0 or (max_epochs == -1 and (trainer.get("max_steps") or -1) > 0))
    ):
        raise ConfigError("trainer.max_epochs", max_epochs, "expected an integer >= 0 (or -1 with trainer.max_steps > 0)")
    check_accelerator(trainer.get("accelerator", "auto"))
    check_devices(trainer.get("devices", "auto"), trainer.get("accelerator", "auto"))
    if str(trainer.get("precision", "32-true")) not in PRECISIONS:
        raise ConfigError("trainer.precision", trainer.get("precision"), f"expected one of {', '.join(PRECISIONS)}")
    check_strategy_in_sweep(trainer)


def check_devices(devices: Any, accelerator: Any) -> None:
    """A positive count, -1 or "auto" for all, or a list of device indices; GPUs that exist."""
    if devices == "auto" or devices == -1:
        return
    indices = list(devices) if isinstance(devices, list | ListConfig) else None
    count = len(indices) if indices is not None else devices
    if not (isinstance(count, int) and not isinstance(count, bool) and count >= 1) or \
            (indices is not None and not all(isinstance(i, int) and i >= 0 for i in indices)):
        raise ConfigError("trainer.devices", devices, 'expected a number of devices >= 1, -1 or "auto" for all, or a list like [0,1]')
    if accelerator in ("gpu", "cuda") and torch.cuda.is_available() and count > torch.cuda.device_count():
        raise ConfigError("trainer.devices", devices, f"this machine has {torch.cuda.device_count()} CUDA GPU(s)")


def check_strategy_in_sweep(trainer: DictConfig) -> None:
    """Lightning's ``ddp`` starts its extra processes by re-running the command line; inside a
    local sweep that command is the whole sweep. Under SLURM the processes already exist."""
    strategy = trainer.get("strategy", "auto")
    if in_sweep() and isinstance(strategy, str) and strategy.startswith("ddp") and "spawn" not in strategy \
            and "SLURM_NTASKS" not in os.environ:
        raise ConfigError(
            "trainer.strategy", strategy,
            "cannot run inside a local sweep (-m): its extra processes would re-run the whole sweep; "
            "use trainer.strategy=ddp_spawn, one command per configuration, or hydra/launcher=slurm",
        )


def check_accelerator(accelerator: Any) -> None:
    if accelerator not in ACCELERATORS:
        raise ConfigError("trainer.accelerator", accelerator, f"expected one of {', '.join(ACCELERATORS)}")
    cuda = torch.cuda.is_available()
    mps = torch.backends.mps.is_available()
    missing = {
        "cuda": None if cuda else "no CUDA GPU is available on this machine; use cpu or auto",
        "gpu": None if cuda or mps else "no GPU (CUDA or Apple MPS) is available on this machine; use cpu or auto",
        "mps": None if mps else "no Apple MPS device is available on this machine; use cpu or auto",
    }.get(accelerator)
    if missing:
        raise ConfigError("trainer.accelerator", accelerator, missing)


def check_seed(seed: Any) -> None:
    if not (isinstance(seed, int) and not isinstance(seed, bool) and 0 <= seed < 2**32):
        raise ConfigError("seed", seed, "expected an integer from 0 to 4294967295")


def check_replicas(replicas: Any) -> None:
    if not (isinstance(replicas, int) and not isinstance(replicas, bool) and replicas >= 1):
        raise ConfigError("replicas", replicas, "expected a whole number of seeds to train together, >= 1 (1: a single run)")


def validate_evaluation(cfg: DictConfig) -> None:
    """What eval.py needs before it imports Lightning: a checkpoint file, an accelerator that exists."""
    if OmegaConf.is_missing(cfg, "ckpt_path") or cfg.ckpt_path is None:
        raise ConfigError("ckpt_path", None, "required: python eval.py ckpt_path=logs/runs/<run>/checkpoints/last.ckpt")
    # The objects the run that wrote it may have saved are those its own config names.
    load_checkpoint(cfg.ckpt_path, lambda: configured_classes(trained_with(cfg.ckpt_path) or cfg),
                    trusted=cfg.get("trust_checkpoint", False))
    check_accelerator(cfg.trainer.get("accelerator", "auto"))


def validate(cfg: DictConfig) -> None:
    """Everything that can be checked before the data is made or a Trainer exists (and before Lightning is imported)."""
    check_seed(cfg.get("seed"))
    check_replicas(cfg.get("replicas", 1))
    if cfg.get("optimizer") is not None:
        check_optimizer(cfg.optimizer)
    if cfg.get("scheduler") is not None:
        check_argument_types(target_class(cfg.scheduler, "scheduler"), OmegaConf.to_container(cfg.scheduler, resolve=True), "scheduler")
    check_trainer(cfg.trainer)
    check_precision(cfg.trainer.get("precision"), cfg.get("optimizer") or {})
    check_clipping(cfg.trainer, cfg.get("optimizer") or {})
    if cfg.get("ckpt_path") is not None:  # readable, and holding nothing that is not safe to load
        load_checkpoint(cfg.ckpt_path, lambda: configured_classes(cfg), trusted=cfg.get("trust_checkpoint", False))
    # Which metrics exist is the model's to say: a name it never logs is refused after the first epoch.
    if not isinstance(cfg.get("optimized_metric"), str) or not cfg.optimized_metric:
        raise ConfigError("optimized_metric", cfg.get("optimized_metric"), "expected the name of a metric the model logs")
    if cfg.get("optimized_direction", "minimize") not in ("minimize", "maximize"):
        raise ConfigError("optimized_direction", cfg.get("optimized_direction"), "expected minimize or maximize")
