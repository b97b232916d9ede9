"""Checks on the composed config, run before anything is built or trained.

Each check raises :class:`~optlab.errors.ConfigError`, whose message names the key, the
bad value and what is accepted. Data-set arguments are checked by the data module itself
(it knows its own arguments); everything else is checked here.
"""

from __future__ import annotations

import inspect
import math
import os
import pickle
import re
from pathlib import Path
from typing import Any

import torch
from hydra.errors import InstantiationException
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig

from optlab.cli import in_sweep
from optlab.errors import ConfigError, UserError, is_number

ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps")
# What every training run logs, and so what optimized_metric may name.
METRIC_TAGS = ("train/loss_epoch", "val/loss", "val/acc", "val/loss_best", "val/acc_best", "test/loss", "test/acc")


def accepted_arguments(target: type) -> list[str]:
    parameters = inspect.signature(target).parameters.values()
    return [p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self"]


def unknown_argument(error: TypeError, node: DictConfig, key: str, given: Any = ()) -> ConfigError | None:
    """``TypeError: ... unexpected keyword argument 'lrr'`` as a ConfigError listing what the class takes."""
    if "unexpected keyword argument" not in str(error):
        return None
    name = str(error).rsplit("'", 2)[-2]
    target = node._target_
    accepted = ", ".join(a for a in accepted_arguments(get_class(target)) if a not in given)
    return ConfigError(f"{key}.{name}", node.get(name), f"{target} accepts: {accepted}")


def build(node: DictConfig, key: str, **kwargs: Any) -> Any:
    """``instantiate`` with the user's mistakes turned into one-line errors naming ``key``."""
    try:
        return instantiate(node, **kwargs)
    except InstantiationException as error:
        cause = error.__cause__
        if isinstance(cause, ConfigError):
            raise cause.under(key) from None
        if isinstance(cause, UserError):
            raise cause from None
        if isinstance(cause, TypeError) and (unknown := unknown_argument(cause, node, key, given=kwargs)):
            raise unknown from None
        if cause is None:  # the target itself could not be found or imported
            raise ConfigError(f"{key}._target_", node.get("_target_"), "expected an importable class") from None
        raise


def check_optimizer(optimizer: DictConfig) -> None:
    """Learning rate, then a trial build on one parameter: unknown arguments and torch's own range checks."""
    lr = optimizer.get("lr")
    if lr is not None and not (is_number(lr) and math.isfinite(lr) and lr >= 0):
        raise ConfigError("optimizer.lr", lr, "expected a finite number >= 0")
    factory = build(optimizer, "optimizer")
    try:
        factory([torch.nn.Parameter(torch.zeros(1))])
    except TypeError as error:
        if not (unknown := unknown_argument(error, optimizer, "optimizer", given=("params",))):
            raise
        raise unknown from None
    except ValueError as error:  # torch's messages name the argument, e.g. "Invalid beta parameter at index 0: 2.0"
        raise UserError(f"optimizer ({optimizer._target_}): {error}") from None


def check_precision(precision: Any, optimizer: DictConfig) -> None:
    """float16 weights cannot hold an epsilon below float16's smallest number: Adam-like updates become NaN."""
    eps = optimizer.get("eps", 1e-8 if "Adam" in str(optimizer.get("_target_", "")) else None)
    if str(precision) in ("16-true", "16", "half") and eps is not None and eps < torch.finfo(torch.float16).tiny:
        raise ConfigError(
            "trainer.precision", precision,
            f"float16 weights turn {optimizer._target_}'s updates (eps={eps:g}) into NaN; "
            "use 16-mixed or bf16-mixed (float32 weights), or bf16-true",
        )


def check_model(model: DictConfig) -> None:
    """Hidden sizes and the initialisation scheme with its arguments, tried on a small tensor."""
    from optlab.model import INITIALISERS

    hidden_sizes = model.get("hidden_sizes", [])
    if not all(isinstance(width, int) and not isinstance(width, bool) and width >= 1 for width in hidden_sizes):
        raise ConfigError("model.hidden_sizes", list(hidden_sizes), "expected a list of layer widths, each an integer >= 1, e.g. [256,1024]")
    init = model.get("init", "default")
    if init == "default":
        return
    if init not in INITIALISERS:
        raise ConfigError("model.init", init, f"expected one of default, {', '.join(INITIALISERS)}")
    params = dict((model.get("init_params") or {}).get(init) or {})
    try:
        INITIALISERS[init](torch.empty(2, 2), **params)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"model.init_params.{init}", params, f"not accepted by torch.nn.init.{init}_: {error}") from None


def check_trainer(trainer: DictConfig) -> None:
    max_epochs = trainer.get("max_epochs")
    if max_epochs is not None and not (
        isinstance(max_epochs, int) and not isinstance(max_epochs, bool)
        and (max_epochs >= 0 or (max_epochs == -1 and (trainer.get("max_steps") or -1) > 0))
    ):
        raise ConfigError("trainer.max_epochs", max_epochs, "expected an integer >= 0 (or -1 with trainer.max_steps > 0)")
    check_accelerator(trainer.get("accelerator", "auto"))
    check_strategy_in_sweep(trainer)


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


def check_ckpt_path(ckpt_path: Any) -> None:
    """The checkpoint exists and holds only plain data: loading it must not run pickled code."""
    if ckpt_path is None:
        return
    if not Path(str(ckpt_path)).is_file():
        raise ConfigError("ckpt_path", ckpt_path, "expected an existing checkpoint file, e.g. logs/runs/<run>/checkpoints/last.ckpt")
    try:
        torch.load(str(ckpt_path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(error))
        culprit = f" ({found.group(1)})" if found else ""
        raise ConfigError(
            "ckpt_path", ckpt_path,
            f"refused: it holds pickled Python objects{culprit}, not just tensors and plain data; "
            "loading it could run arbitrary code",
        ) from None
    except (RuntimeError, EOFError, OSError) as error:
        raise ConfigError("ckpt_path", ckpt_path, f"not a readable torch checkpoint ({error})") from None


def validate(cfg: DictConfig) -> None:
    """Everything that can be checked before the data is made or a Trainer exists."""
    check_optimizer(cfg.optimizer)
    check_model(cfg.model)
    check_trainer(cfg.trainer)
    check_precision(cfg.trainer.get("precision"), cfg.optimizer)
    check_ckpt_path(cfg.get("ckpt_path"))
    if cfg.get("optimized_metric") not in METRIC_TAGS:
        raise ConfigError("optimized_metric", cfg.get("optimized_metric"), f"expected one of {', '.join(METRIC_TAGS)}")
    if cfg.get("optimized_direction", "minimize") not in ("minimize", "maximize"):
        raise ConfigError("optimized_direction", cfg.get("optimized_direction"), "expected minimize or maximize")
