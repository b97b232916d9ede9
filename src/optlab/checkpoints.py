"""What a checkpoint holds, and whether it fits the run that wants to resume from it or score it.

A checkpoint is loaded with ``weights_only=True``: tensors and plain containers, plus the
few Python objects a run of this template saves in its hyper-parameters (``functools.partial``
factories of the classes its config names, omegaconf's lists and dicts), never other pickled
code. A checkpoint holding anything else is refused, unless the user says they trust it
(``trust_checkpoint=true``). Every mismatch is found before training, with one line saying
what the checkpoint was trained with (read from the run directory it came from, when it is there).
"""

from __future__ import annotations

import collections
import functools
import importlib
import pickle
import re
import typing
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import omegaconf
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf

from optlab.errors import ConfigError, first_line

EXAMPLE = "e.g. logs/runs/<run>/checkpoints/last.ckpt"
ZIP_START, PICKLE_START = b"PK\x03\x04", b"\x80"  # torch.save's zip format; the legacy pickle format


def hydra_partial_class() -> type:
    """The class of what ``_partial_: true`` gives: ``functools.partial``, or Hydra 1.3.8's subclass of it
    that checks its target when called. Asked of Hydra rather than named (it lives in a private module)."""
    return type(instantiate({"_target_": "collections.OrderedDict", "_partial_": True}))


# What a module's hyper-parameters may hold in a checkpoint besides tensors and plain data:
# factories (partials) and omegaconf's containers, which Hydra passes to modules.
SAFE_GLOBALS = (
    functools.partial,
    hydra_partial_class(),
    ListConfig,
    DictConfig,
    omegaconf.base.ContainerMetadata,
    omegaconf.base.Metadata,
    omegaconf.nodes.AnyNode,
    typing.Any,
    collections.defaultdict,
    list,
    dict,
    int,
    float,
    str,
    bool,
    tuple,
)
TRUST_KEY = "trust_checkpoint"


def configured_classes(cfg: Any) -> list[Any]:
    """Every class or function a config's ``_target_`` names: what a run of it may pickle in its hyper-parameters."""
    found = []
    for target in targets(OmegaConf.to_container(cfg, resolve=False) if OmegaConf.is_config(cfg) else cfg):
        module, _, name = target.rpartition(".")
        try:
            found.append(getattr(importlib.import_module(module), name))
        except (ImportError, AttributeError, ValueError):
            continue  # the config's own checks name a target that does not import
    return found


def targets(node: Any) -> Iterator[str]:
    if isinstance(node, Mapping):
        if isinstance(node.get("_target_"), str):
            yield node["_target_"]
        for key, value in node.items():
            if key != "hydra":
                yield from targets(value)
    elif isinstance(node, list | tuple):
        for value in node:
            yield from targets(value)


@contextmanager
def trusted_globals(allowed: Collection[Any]) -> Iterator[None]:
    """Lets ``torch.load(weights_only=True)``, and Lightning's loads through it, rebuild what a run's hyper-parameters hold."""
    with torch.serialization.safe_globals([*SAFE_GLOBALS, *allowed]):
        yield


def load_checkpoint(path: Any, allowed: Callable[[], Collection[Any]] = tuple, trusted: bool = False) -> dict[str, Any]:
    """The checkpoint's contents, or a ConfigError saying what the file is instead.

    ``allowed``: the classes the run's config names (e.g. ``lambda: configured_classes(cfg)``),
    which its hyper-parameters may hold as factories; asked for only when the checkpoint holds
    such objects, since naming them imports the config's modules. ``trusted``: load anything
    (``trust_checkpoint=true``).
    """
    file = Path(str(path))
    if not file.is_file():
        raise ConfigError("ckpt_path", path, f"expected an existing checkpoint file, {EXAMPLE}")
    with file.open("rb") as stream:
        start = stream.read(4)
    if not start.startswith((ZIP_START, PICKLE_START)):
        raise ConfigError("ckpt_path", path, f"not a torch checkpoint (neither a zip archive nor a pickle), {EXAMPLE}")
    try:
        try:
            checkpoint = _load(file, (), trusted)
        except pickle.UnpicklingError as error:
            if "Unsupported global" not in str(error):
                raise
            checkpoint = _load(file, allowed(), trusted)
    except pickle.UnpicklingError as error:
        # "Unsupported global: GLOBAL x.Y" (a class not allowed), "unsupported GLOBAL posix.system whose module is blocked"
        if found := re.search(r"unsupported global(?:: GLOBAL)? (\S+)", str(error), re.IGNORECASE):
            raise ConfigError(
                "ckpt_path",
                path,
                f"refused: it holds a pickled Python object ({found.group(1)}) that this run's config does not name; "
                f"loading it could run arbitrary code. If you trust the file, add {TRUST_KEY}=true",
            ) from None
        raise ConfigError("ckpt_path", path, f"not a readable torch checkpoint ({first_line(error)})") from None
    except Exception as error:  # truncated, corrupt: whatever torch's reader stumbles on
        raise ConfigError("ckpt_path", path, f"not a readable torch checkpoint ({first_line(error)})") from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise ConfigError("ckpt_path", path, f"a torch file, but not a Lightning checkpoint ({EXAMPLE})")
    return checkpoint


def _load(file: Path, allowed: Collection[Any], trusted: bool) -> Any:
    with trusted_globals(allowed):
        return torch.load(str(file), map_location="cpu", weights_only=not trusted)


# torch.compile wraps a module as ``_orig_mod``: a compiled network's weights are saved as
# ``net._orig_mod.0.weight`` (Lightning issues 17415, 20233). The same weights either way.
COMPILED = "_orig_mod."


def uncompiled(name: str) -> str:
    return name.replace(COMPILED, "")


def state_dict_for(model: torch.nn.Module, saved: Mapping[str, Any]) -> dict[str, Any]:
    """The checkpoint's tensors under the model's own names, whether or not either was compiled."""
    names = {uncompiled(name): name for name in model.state_dict()}
    return {names.get(uncompiled(name), name): value for name, value in saved.items()}


def load_under_own_names(model: torch.nn.Module) -> None:
    """Lets Lightning's resume (``model.load_state_dict``) take weights saved with or without ``torch.compile``.

    The module compiles its network in ``setup`` (lightning-hydra-template's ``compile``), after
    which its names have ``_orig_mod``; a run resumed with the other setting still loads.
    """

    def own_names(module: torch.nn.Module, state_dict: dict[str, Any], prefix: str, *_: Any) -> None:
        renamed = state_dict_for(module, state_dict)
        state_dict.clear()
        state_dict.update(renamed)

    model.register_load_state_dict_pre_hook(own_names)


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


def _differing_settings(trained: DictConfig | None, current: DictConfig | None, choices: Mapping[str, str]) -> list[str]:
    """``data=blobs`` or ``model.hidden_sizes=[8, 8]``: the model and data settings of the checkpoint's run, not this one's."""
    if trained is None or current is None:
        return []
    differing = []
    for group in ("model", "data"):
        trained_choice = OmegaConf.select(trained, f"choices.{group}")
        if trained_choice and choices.get(group) and trained_choice != choices[group]:
            differing.append(f"{group}={trained_choice}")
            continue
        before, now = OmegaConf.select(trained, group) or {}, OmegaConf.select(current, group) or {}
        for key in before:
            if key != "_target_" and before.get(key) != now.get(key):
                value = OmegaConf.to_container(before[key]) if OmegaConf.is_config(before[key]) else before[key]
                differing.append(f"{group}.{key}={value}")
    return differing


def check_state_fits(
    checkpoint: dict[str, Any],
    path: Any,
    model: torch.nn.Module,
    cfg: DictConfig | None = None,
    choices: Mapping[str, str] | None = None,
) -> None:
    """The checkpoint's tensors fit the model this run built: same names, same shapes.

    Read from the two state dicts, so it holds for any model; when the checkpoint's run
    directory is still there, the message names the settings it was trained with.
    """
    saved = {uncompiled(name): tuple(tensor.shape) for name, tensor in checkpoint["state_dict"].items()}
    built = {uncompiled(name): tuple(tensor.shape) for name, tensor in model.state_dict().items()}
    if shape := next(((n, saved[n], built[n]) for n in built if n in saved and saved[n] != built[n]), None):
        name, trained, this = shape
        problem = f"its {name} has shape {list(trained)}, this run's model has {list(this)}"
    elif missing := [name for name in built if name not in saved]:
        problem = (
            f"it has no {missing[0]}"
            + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
            + f", which this run's {type(model).__name__} has"
        )
    elif extra := [name for name in saved if name not in built]:
        problem = (
            f"it holds {extra[0]}"
            + (f" (and {len(extra) - 1} more)" if len(extra) > 1 else "")
            + f", which this run's {type(model).__name__} does not have"
        )
    else:
        return
    settings = _differing_settings(trained_with(path), cfg, choices or {})
    hint = f": it was trained with {' '.join(settings)}" if settings else ": pass the model and data settings it was trained with"
    raise ConfigError("ckpt_path", path, problem + hint)


# What an optimizer's saved param group holds besides its settings: the parameters, and the
# initial_lr a learning-rate scheduler adds.
NOT_SETTINGS = {"params", "initial_lr"}


def check_optimizer_fits(checkpoint: dict[str, Any], path: Any, optimizer_config: DictConfig, choice: str | None) -> None:
    """The saved optimizer state is one the configured optimizer can load: the same settings, hence the same class."""
    saved = checkpoint.get("optimizer_states") or []
    if not saved:
        return
    optimizer = instantiate(optimizer_config)([torch.nn.Parameter(torch.zeros(1))])
    configured = f"optimizer={choice} ({optimizer_config._target_})" if choice else str(optimizer_config._target_)
    settings = set(saved[0]["param_groups"][0]) - NOT_SETTINGS
    expected = set(optimizer.param_groups[0]) - NOT_SETTINGS
    if settings != expected:
        trained = _choice(trained_with(path), "optimizer") or f"an optimizer with settings {', '.join(sorted(settings))}"
        raise ConfigError(
            "ckpt_path",
            path,
            f"it was trained with {trained}, this run configures {configured}: "
            "resume with the optimizer it was trained with, or train anew without ckpt_path",
        )


def check_scheduler_fits(checkpoint: dict[str, Any], path: Any, scheduler: Any) -> None:
    saved, configured = len(checkpoint.get("lr_schedulers") or []), 1 if scheduler else 0
    if saved != configured:
        state = f"the state of {saved} learning-rate scheduler(s)" if saved else "no learning-rate scheduler"
        wanted = "scheduler=null" if not saved else "the scheduler= it was trained with"
        raise ConfigError("ckpt_path", path, f"it holds {state}, this run configures {configured}: pass {wanted}")


def check_resume(cfg: DictConfig, model: torch.nn.Module, ignored: Mapping[str, str], choices: Mapping[str, str]) -> None:
    """``ckpt_path`` loads and fits this run's model, and its optimizer and scheduler state fit the groups the model takes."""
    path = cfg.ckpt_path
    checkpoint = load_checkpoint(path, lambda: configured_classes(cfg), trusted=cfg.get("trust_checkpoint", False))
    check_state_fits(checkpoint, path, model, cfg, choices)
    if "optimizer" not in ignored and cfg.get("optimizer") is not None:
        check_optimizer_fits(checkpoint, path, cfg.optimizer, choices.get("optimizer"))
    if "scheduler" not in ignored:
        check_scheduler_fits(checkpoint, path, cfg.get("scheduler"))
