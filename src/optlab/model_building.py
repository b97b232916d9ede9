"""The model a run trains or scores, built from config the same way by ``train.py`` and ``eval.py``.

The ``model:`` config node gives the class and its own settings; the task adds what the
model declares and the config leaves out (``optimizer_arguments``): the ``optimizer=`` and
``scheduler=`` factories, and sizes the data module knows. With ``replicas=K`` the model is
built K times, each right after ``torch.manual_seed(seed + k)``, and trained as one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from optlab.building import build, check_argument_types, target_class
from optlab.model_arguments import FACTORIES, data_arguments, ignored_groups, linked_arguments
from optlab.replicas import Replicas, check_replicable, replica_seeds


@dataclass
class BuiltModel:
    """The module Lightning trains, and what a report of it needs to say."""

    model: L.LightningModule      # the model, or its replicas trained as one
    models: list[L.LightningModule]  # each replica (the model itself with one)
    seeds: list[int]
    ignored: dict[str, str]       # factory groups the model does not take, with why
    from_data: dict[str, Any] = field(default_factory=dict)  # what the data module handed it (input_size=64)

    @property
    def replicas(self) -> int:
        return len(self.models)


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
