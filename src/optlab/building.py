"""Objects built from config nodes, with the user's mistakes turned into one-line errors naming the key."""

from __future__ import annotations

import inspect
from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf

from optlab.arguments import InvalidArgument
from optlab.errors import ConfigError, UserError


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


def target_class(node: DictConfig, key: str) -> type:
    """The class a config node's ``_target_`` names, or one line saying it cannot be imported."""
    try:
        return get_class(str(node._target_))
    except Exception as error:  # noqa: BLE001  (Hydra wraps import errors of any kind)
        cause = error.__cause__ or error
        reason = " ".join(str(cause).split()) if isinstance(cause, ImportError) else "expected an importable class"
        raise ConfigError(f"{key}._target_", node.get("_target_"), reason) from None


def build(node: DictConfig, key: str, **kwargs: Any) -> Any:
    """``instantiate(node, **kwargs)``; a class's complaint about its argument names the config key."""
    try:
        return instantiate(node, **kwargs)
    except InstantiationException as error:
        cause = error.__cause__
        if isinstance(cause, InvalidArgument):
            raise ConfigError(f"{key}.{cause.name}", cause.value, cause.accepted) from None
        if isinstance(cause, UserError):
            raise cause from None
        if isinstance(cause, TypeError) and (unknown := unknown_argument(cause, node, key, given=kwargs)):
            raise unknown from None
        if isinstance(cause, ModuleNotFoundError):  # an optional logger's package (mlflow, wandb) is missing
            message = " ".join(str(cause).split())
            raise UserError(f"{key}: {node.get('_target_')} needs a package that is not installed: {message}") from None
        if cause is None:  # the target itself could not be found or imported
            raise ConfigError(f"{key}._target_", node.get("_target_"), "expected an importable class") from None
        raise


def build_group(group: DictConfig | None, key: str) -> list[Any]:
    """Every entry of a dict-of-configs group (``callbacks``, ``logger``); ``null`` entries are off."""
    objects = []
    for name, node in (group or {}).items():
        if node is None:
            continue
        if not isinstance(node, DictConfig) or "_target_" not in node:
            shown = OmegaConf.to_container(node) if isinstance(node, DictConfig) else node
            raise ConfigError(f"{key}.{name}", shown, "expected a _target_ naming the class to build")
        objects.append(build(node, f"{key}.{name}"))
    return objects


def build_trainer(node: DictConfig, **kwargs: Any) -> Any:
    """The Trainer; a flag Lightning refuses (``trainer.devices=0``, a strategy it does not know) becomes one line."""
    try:
        return instantiate(node, **kwargs)
    except InstantiationException as error:
        cause = error.__cause__
        if isinstance(cause, TypeError) and (unknown := unknown_argument(cause, node, "trainer", given=kwargs)):
            raise unknown from None
        if isinstance(cause, ValueError | TypeError) or type(cause).__name__ == "MisconfigurationException":
            message = " ".join(str(cause).split())  # Lightning's message, on one line
            raise UserError(f"trainer: {message} (set with trainer.<flag>=...)") from None
        raise
