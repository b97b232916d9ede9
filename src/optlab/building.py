"""Objects built from config nodes, with the user's mistakes turned into one-line errors naming the key."""

from __future__ import annotations

import difflib
import importlib
import inspect
import re
import types
import typing
from collections.abc import Mapping
from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf

from optlab.errors import ConfigError, InvalidArgument, UserError


def accepted_arguments(target: type) -> list[str]:
    parameters = inspect.signature(target).parameters.values()
    return [p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self"]


def unknown_argument(error: TypeError, node: DictConfig, key: str, given: Any = ()) -> ConfigError | None:
    """``TypeError: ... unexpected keyword argument 'lrr'`` as a ConfigError listing what the class takes."""
    if "unexpected keyword argument" not in str(error):
        return None
    name = str(error).rsplit("'", 2)[-2]
    target = node._target_
    accepted = ", ".join(a for a in accepted_arguments(locate(target)) if a not in given)
    return ConfigError(f"{key}.{name}", node.get(name), f"{target} accepts: {accepted}")


def locate(path: str) -> Any:
    """The object a dotted ``_target_`` names; an ImportError that says which part is missing.

    Hydra's own lookup reports ``pkg.mod.Clas`` as "No module named 'pkg.mod.Clas'"; this
    says that ``pkg.mod`` has no ``Clas``, and which of its names come closest.
    """
    parts = path.split(".")
    for end in range(len(parts), 0, -1):
        module_name = ".".join(parts[:end])
        try:
            found: Any = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name is not None and module_name.startswith(error.name) and end > 1:
                continue  # not a module: the rest of the path may be attributes of a shorter one
            raise ImportError(" ".join(str(error).split())) from None
        for depth, attribute in enumerate(parts[end:], start=end):
            if not hasattr(found, attribute):
                owner = ".".join(parts[:depth])
                close = difflib.get_close_matches(attribute, [n for n in dir(found) if not n.startswith("_")], n=1)
                hint = f" (did you mean {owner}.{close[0]}?)" if close else ""
                raise ImportError(f"{owner} has no {attribute}{hint}")
            found = getattr(found, attribute)
        return found
    raise ImportError(f"cannot import {path}")


def target_class(node: DictConfig, key: str) -> type:
    """The class a config node's ``_target_`` names, or one line saying which part cannot be found."""
    target = node.get("_target_")
    try:
        return locate(str(target))
    except ImportError as error:
        raise ConfigError(f"{key}._target_", target, str(error)) from None


def _simple_types(annotation: Any) -> set[type] | None:
    """The types an annotation allows when they are all plain ones (``bool``, ``float | None``); else None."""
    members = (
        typing.get_args(annotation)
        if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union
        else (annotation,)
    )
    plain = {bool, int, float, str, type(None)}
    allowed = {member for member in members if member in plain}
    if not allowed or any(member not in plain and getattr(member, "__name__", "") != "Tensor" for member in members):
        return None
    return allowed


def _fits(value: Any, allowed: set[type]) -> bool:
    if value is None:
        return type(None) in allowed
    if isinstance(value, bool):
        return bool in allowed
    if isinstance(value, int):
        return int in allowed or float in allowed
    return any(isinstance(value, kind) for kind in allowed if kind not in (bool, type(None)))


TYPE_WORDS = {bool: "true or false", int: "an integer", float: "a number", str: "a string", type(None): "null"}


def check_argument_types(target: Any, arguments: Mapping[str, Any], key: str) -> None:
    """Each configured argument against the plain type the class annotates (``nesterov: bool``).

    torch reads many flags only once training runs (``if nesterov:``, a fused kernel's
    argument), so ``+optimizer.nesterov=maybe`` would train with a string as a flag, or fail
    mid-run; here it is one line before anything is built.
    """
    try:
        hints = typing.get_type_hints(target.__init__ if inspect.isclass(target) else target)
    except Exception:  # noqa: BLE001  (annotations that do not evaluate: nothing to check against)
        return
    for name, value in arguments.items():
        allowed = _simple_types(hints.get(name)) if not str(name).startswith("_") and name in hints else None
        if allowed is not None and not _fits(value, allowed):
            kinds = allowed - {int} if float in allowed else allowed  # a number includes the integers
            shown = " or ".join(TYPE_WORDS[kind] for kind in sorted(kinds, key=lambda kind: (kind is type(None), kind.__name__)))
            raise ConfigError(f"{key}.{name}", value, f"{getattr(target, '__name__', target)} expects {shown}")


def check_targets(node: Any, key: str) -> None:
    """Every ``_target_`` in ``node`` (nested ones too, e.g. ``model.net``) names something that imports."""
    if isinstance(node, DictConfig):
        if "_target_" in node:
            target_class(node, key)
        for name, value in node.items_ex(resolve=False):
            check_targets(value, f"{key}.{name}")
    elif isinstance(node, ListConfig):
        for index, value in enumerate(node):
            check_targets(value, f"{key}[{index}]")


def build(node: DictConfig, key: str, **kwargs: Any) -> Any:
    """``instantiate(node, **kwargs)``; a class's complaint about its argument names the config key."""
    check_targets(node, key)
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
        if isinstance(cause, ValueError):  # a class refusing one of its arguments, in its own words
            raise UserError(f"{key} ({node.get('_target_')}): {' '.join(str(cause).split())}") from None
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


# What Lightning's complaints about the machine concern when they name no flag ("No supported gpu backend found!").
HARDWARE_FLAGS = ("accelerator", "devices", "strategy", "num_nodes", "precision")


def build_trainer(node: DictConfig, **kwargs: Any) -> Any:
    """The Trainer; a flag Lightning refuses (``trainer.devices=0``, a precision it does not know) is Lightning's own
    message on one line, under the key of the flag it names."""
    try:
        return instantiate(node, **kwargs)
    except InstantiationException as error:
        cause = error.__cause__
        if isinstance(cause, TypeError) and (unknown := unknown_argument(cause, node, "trainer", given=kwargs)):
            raise unknown from None
        if isinstance(cause, ValueError | TypeError) or type(cause).__name__ == "MisconfigurationException":
            message = " ".join(str(cause).split())
            named = [
                (found.start(), key)
                for key in node
                if not str(key).startswith("_")
                if (found := re.search(rf"(?<![\w.]){re.escape(str(key))}(?![\w])", message, re.IGNORECASE))
            ]
            if named:
                key = min(named)[1]
                raise ConfigError(f"trainer.{key}", OmegaConf.select(node, str(key)), message) from None
            hardware = ", ".join(f"{key}={node.get(key)}" for key in HARDWARE_FLAGS if key in node)
            raise UserError(f"trainer ({hardware}): {message}") from None
        raise
