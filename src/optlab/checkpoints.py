"""What a checkpoint holds, and whether it fits the run that wants to resume from it or score it.

A checkpoint is loaded with ``weights_only=True``: plain tensors and containers, never
pickled code. Every mismatch is found before training, with one line saying what the
checkpoint was trained with (read from the run directory it came from, when it is there).
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from optlab.errors import ConfigError

EXAMPLE = "e.g. logs/runs/<run>/checkpoints/last.ckpt"
ZIP_START, PICKLE_START = b"PK\x03\x04", b"\x80"  # torch.save's zip format; the legacy pickle format


def first_line(error: BaseException) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0]}" if text else type(error).__name__


def load_checkpoint(path: Any) -> dict[str, Any]:
    """The checkpoint's contents, or a ConfigError saying what the file is instead."""
    file = Path(str(path))
    if not file.is_file():
        raise ConfigError("ckpt_path", path, f"expected an existing checkpoint file, {EXAMPLE}")
    with file.open("rb") as stream:
        start = stream.read(4)
    if not start.startswith((ZIP_START, PICKLE_START)):
        raise ConfigError("ckpt_path", path, f"not a torch checkpoint (neither a zip archive nor a pickle), {EXAMPLE}")
    try:
        checkpoint = torch.load(str(file), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        if found := re.search(r"Unsupported global: GLOBAL (\S+)", str(error)):
            raise ConfigError(
                "ckpt_path", path,
                f"refused: it holds pickled Python objects ({found.group(1)}), not just tensors and plain data; "
                "loading it could run arbitrary code",
            ) from None
        raise ConfigError("ckpt_path", path, f"not a readable torch checkpoint ({first_line(error)})") from None
    except Exception as error:  # truncated, corrupt: whatever torch's reader stumbles on
        raise ConfigError("ckpt_path", path, f"not a readable torch checkpoint ({first_line(error)})") from None
    if not isinstance(checkpoint, dict) or not {"state_dict", "hyper_parameters"} <= checkpoint.keys():
        raise ConfigError("ckpt_path", path, f"a torch file, but not a checkpoint of this template's runs ({EXAMPLE})")
    return checkpoint


def trained_with(path: Any) -> DictConfig | None:
    """The config of the run that wrote the checkpoint: ``<run>/checkpoints/x.ckpt`` -> ``<run>/.hydra/``."""
    run_dir = Path(str(path)).resolve().parent.parent
    config, hydra = run_dir / ".hydra" / "config.yaml", run_dir / ".hydra" / "hydra.yaml"
    if not config.is_file():
        return None
    loaded = OmegaConf.load(config)
    if hydra.is_file():
        loaded.choices = OmegaConf.select(OmegaConf.load(hydra), "hydra.runtime.choices")
    return loaded


def _choice(run: DictConfig | None, group: str) -> str:
    if run is None:
        return ""
    choice, target = OmegaConf.select(run, f"choices.{group}"), OmegaConf.select(run, f"{group}._target_")
    return f"{group}={choice} ({target})" if choice else str(target or "")


def check_model_fits(checkpoint: dict[str, Any], path: Any, hidden_sizes: Any) -> None:
    trained = list(checkpoint["hyper_parameters"].get("hidden_sizes", []))
    if trained != list(hidden_sizes):
        raise ConfigError(
            "ckpt_path", path,
            f"it holds a model with model.hidden_sizes={trained}, this run builds {list(hidden_sizes)}: "
            f"pass model.hidden_sizes=[{','.join(map(str, trained))}] to resume it",
        )


def check_input_fits(checkpoint: dict[str, Any], path: Any, n_features: int) -> None:
    """After the data is made: the checkpoint's first layer takes as many features as the data has."""
    trained = checkpoint["hyper_parameters"].get("input_size")
    if trained != n_features:
        data = _choice(trained_with(path), "data") or "the data it was trained with"
        raise ConfigError(
            "ckpt_path", path,
            f"it holds a model taking {trained} features, this run's data has {n_features}: pass {data.split(' ')[0]}",
        )


def check_optimizer_fits(checkpoint: dict[str, Any], path: Any, optimizer: torch.optim.Optimizer, configured: str) -> None:
    """The saved optimizer state is one ``optimizer`` can load: the same settings, hence the same class."""
    saved = checkpoint.get("optimizer_states") or []
    if not saved:
        return
    settings = set(saved[0]["param_groups"][0]) - {"params"}
    expected = set(optimizer.param_groups[0]) - {"params"}
    if settings != expected:
        trained = _choice(trained_with(path), "optimizer") or f"an optimizer with settings {', '.join(sorted(settings))}"
        raise ConfigError(
            "ckpt_path", path,
            f"it was trained with {trained}, this run configures {configured}: "
            "resume with the optimizer it was trained with, or train anew without ckpt_path",
        )


def check_scheduler_fits(checkpoint: dict[str, Any], path: Any, scheduler: Any) -> None:
    saved, configured = len(checkpoint.get("lr_schedulers") or []), 1 if scheduler else 0
    if saved != configured:
        state = f"the state of {saved} learning-rate scheduler(s)" if saved else "no learning-rate scheduler"
        wanted = "scheduler=null" if not saved else "the scheduler= it was trained with"
        raise ConfigError("ckpt_path", path, f"it holds {state}, this run configures {configured}: pass {wanted}")
