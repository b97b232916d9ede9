"""The model a run trains or scores, built from config the same way by ``train.py`` and ``eval.py``.

The ``model:`` config node gives the class and its own settings. For each ``__init__``
parameter that node leaves out, the task adds:

- ``optimizer`` / ``scheduler``: the factories built from ``optimizer=`` / ``scheduler=``
  (Hydra ``_partial_`` nodes, called in ``configure_optimizers``), ``None`` for
  ``scheduler=null``, as a lightning-hydra-template module expects;
- any other parameter that the data module has as an attribute of the same name, read right
  after the data module is built (``input_size``, ``num_classes``, ...): sizes the data knows
  are never repeated in a model config.

A model that declares neither gets nothing: a module written from Lightning's docs with its
own ``configure_optimizers`` runs as it is, and a sweep over ``optimizer=`` is refused for it
(``ignored_groups``). This is LightningCLI's ``link_arguments`` and nn-template's metadata,
read from the model's signature instead of written out per project. With ``replicas=K`` the
model is built K times, each right after ``torch.manual_seed(seed + k)``, and trained as one.
"""

from __future__ import annotations

import inspect
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from lightning.pytorch.utilities.model_helpers import is_overridden
from omegaconf import DictConfig

from optlab.building import build, check_argument_types, target_class
from optlab.errors import ConfigError
from optlab.hydra_context import command_line_overrides, override_group
from optlab.replicas.records import replica_seeds

FACTORIES = ("optimizer", "scheduler")


def declared_parameters(model_class: type) -> dict[str, inspect.Parameter]:
    """The model's named ``__init__`` parameters (``*args`` and ``**kwargs`` give nothing to link)."""
    named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return {name: p for name, p in inspect.signature(model_class).parameters.items() if p.kind in named}


def _framework_attributes() -> set[str]:
    """What every LightningDataModule has (``trainer``, ``hparams``, ...): not the data's metadata."""
    return set(dir(L.LightningDataModule())) | {"name"}


def data_arguments(model_class: type, datamodule: Any) -> dict[str, Any]:
    """Every parameter of the model that the data module has as an attribute of the same name."""
    framework = _framework_attributes()
    return {
        name: getattr(datamodule, name)
        for name in declared_parameters(model_class)
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
                f"model.{name}",
                None,
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


@dataclass
class BuiltModel:
    """The module Lightning trains, and what a report of it needs to say."""

    model: L.LightningModule  # the model, or its replicas trained as one
    models: list[L.LightningModule]  # each replica (the model itself with one)
    seeds: list[int]
    ignored: dict[str, str]  # factory groups the model does not take, with why
    from_data: dict[str, Any] = field(default_factory=dict)  # what the data module handed it (input_size=64)

    @property
    def replicas(self) -> int:
        return len(self.models)

    def missing_loop(self, stage: str, datamodule: L.LightningDataModule) -> str | None:
        """Why Lightning has no ``stage`` loop ("validation", "test") to run for this model, or None.

        A loop needs the model's ``<stage>_step`` and the data's loader: ``trainer.fit`` skips a
        validation without them, ``trainer.test`` refuses to run. Asked of the user's own model,
        not of the replicas' wrapper, which has every step.
        """
        loader = "val_dataloader" if stage == "validation" else f"{stage}_dataloader"
        if not is_overridden(f"{stage}_step", self.models[0]):
            return f"{type(self.models[0]).__name__} has no {stage}_step"
        if not is_overridden(loader, datamodule):
            return f"{type(datamodule).__name__} has no {loader}"
        return None


def factories(cfg: DictConfig, ignored: dict[str, str]) -> dict[str, Any]:
    """The ``optimizer=`` and ``scheduler=`` factories for a model that takes them (``None`` for ``scheduler=null``)."""
    built = {}
    for group in FACTORIES:
        if group in ignored:
            continue
        node = cfg.get(group)
        if node is not None:
            check_argument_types(target_class(node, group), {k: v for k, v in node.items() if not k.startswith("_")}, group)
        built[group] = instantiate(node) if node is not None else None
    return built


def build_model(cfg: DictConfig, datamodule: L.LightningDataModule) -> BuiltModel:
    """The model from ``cfg.model`` with what it declares and the config leaves out; ``replicas=K``: K seeds as one."""
    model_class = target_class(cfg.model, "model")
    ignored = ignored_groups(model_class, cfg.model)
    given = factories(cfg, ignored)
    linked = linked_arguments(model_class, datamodule, configured=cfg.model.keys(), factories=given)
    replicas = cfg.get("replicas", 1)
    if replicas > 1:  # several seeds trained together: imported by the runs that ask for it
        from optlab.replicas.checks import check_replicable
        from optlab.replicas.module import Replicas

        check_replicable(replicas, model_class, given, ignored, cfg.trainer)
    seeds = replica_seeds(cfg.seed, replicas)
    models = []
    for seed in seeds:
        # The notebook calls torch.manual_seed(2020) right before it creates the layers.
        torch.manual_seed(seed)
        models.append(build(cfg.model, "model", **linked, _convert_="all"))
    model = models[0] if replicas == 1 else Replicas(models, seeds, **given)
    from_data = {name: value for name, value in data_arguments(model_class, datamodule).items() if name in linked}
    return BuiltModel(model, models, seeds, ignored, from_data)


def refuse_ignored_overrides(built: BuiltModel) -> None:
    """``optimizer=sgd`` on the command line for a model that never receives it: one line, not a silently equal run."""
    for key, value in command_line_overrides():
        if (group := override_group(key)) in built.ignored:
            raise ConfigError(
                key,
                value,
                f"the model never receives {group}=: {built.ignored[group]}; remove it, "
                "or set the model's own settings (model.<key>=...)",
            )
