"""What the task hands a model besides its own config: the contract between data, optimizer and model.

A model's ``__init__`` gets, for each parameter the ``model:`` config does not set:

- ``optimizer`` / ``scheduler``: the factories built from ``optimizer=`` / ``scheduler=``
  (Hydra ``_partial_`` nodes, called in ``configure_optimizers``), when it declares them;
  ``None`` for ``scheduler=null``, as a lightning-hydra-template module expects;
- any other parameter that the data module has as an attribute of the same name, read right
  after the data module is built (``input_size``, ``num_classes``, ...): sizes the data knows
  are never repeated in a model config.

A model that declares neither gets nothing: a module written from Lightning's docs with its
own ``configure_optimizers`` runs as it is. This is LightningCLI's ``link_arguments`` and
nn-template's metadata, read from the model's signature instead of written out per project.
"""

from __future__ import annotations

import inspect
from collections.abc import Collection, Mapping
from typing import Any

from optlab.errors import ConfigError

FACTORIES = ("optimizer", "scheduler")


def declared_parameters(model_class: type) -> dict[str, inspect.Parameter]:
    """The model's named ``__init__`` parameters (``*args`` and ``**kwargs`` give nothing to link)."""
    named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return {name: p for name, p in inspect.signature(model_class).parameters.items() if p.kind in named}


def _framework_attributes() -> set[str]:
    """What every LightningDataModule has (``trainer``, ``hparams``, ...): not the data's metadata."""
    from lightning import LightningDataModule

    return set(dir(LightningDataModule())) | {"name"}


def data_arguments(model_class: type, datamodule: Any) -> dict[str, Any]:
    """Every parameter of the model that the data module has as an attribute of the same name."""
    framework = _framework_attributes()
    return {
        name: getattr(datamodule, name) for name in declared_parameters(model_class)
        if name not in FACTORIES and name not in framework and hasattr(datamodule, name)
    }


def linked_arguments(
    model_class: type, datamodule: Any, configured: Collection[str], factories: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The arguments the task adds to the ``model:`` config for ``model_class``.

    ``configured`` names what the config (or a checkpoint's hyper-parameters) already sets;
    those are never overridden. A required parameter that nothing provides is one line
    naming it and where it could come from.
    """
    factories = factories or {}
    from_data = data_arguments(model_class, datamodule)
    arguments: dict[str, Any] = {}
    for name, parameter in declared_parameters(model_class).items():
        if name in configured:
            continue
        if name in FACTORIES:
            if name in factories:
                arguments[name] = factories[name]
            continue
        if name in from_data:
            arguments[name] = from_data[name]
        elif parameter.default is inspect.Parameter.empty:
            raise ConfigError(
                f"model.{name}", None,
                f"{model_class.__name__} requires {name}, which neither the model config sets nor "
                f"{type(datamodule).__name__} has as an attribute: set model.{name}=..., or give the data module "
                f"an attribute {name}",
            )
    return arguments


def ignored_groups(model_class: type, model_config: Mapping[str, Any]) -> dict[str, str]:
    """The factory groups (``optimizer=``, ``scheduler=``) this model never receives, each with why.

    A model takes a group's factory only if its ``__init__`` declares the parameter and its
    own config does not set it (lightning-hydra-template's model YAMLs nest their own
    ``optimizer:``).
    """
    declared = declared_parameters(model_class)
    ignored = {}
    for group in FACTORIES:
        if group not in declared:
            ignored[group] = f"{model_class.__name__} takes no {group} argument (its configure_optimizers decides)"
        elif group in model_config:
            ignored[group] = f"the model config sets its own (model.{group})"
    return ignored
