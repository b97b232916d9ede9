"""The training task: compose objects from the config, fit, test, return the chosen metric."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from lightning.pytorch import Callback
from lightning.pytorch.loggers import Logger
from omegaconf import DictConfig

from optlab import resolvers  # noqa: F401  (registers the resolvers the configs use)
from optlab.tb_hparams import HParamsSession, run_hparams

log = logging.getLogger(__name__)

METRIC_TAGS = ("train/loss_epoch", "val/loss", "val/acc", "test/loss", "test/acc")


def instantiate_group(group: DictConfig | None, key: str) -> list[Any]:
    """Build every entry of a dict-of-configs group (``callbacks``, ``logger``); ``null`` entries are off."""
    objects = []
    for name, node in (group or {}).items():
        if node is None:
            continue
        if "_target_" not in node:
            raise ValueError(f"{key}.{name} has no _target_: every {key} entry names the class to build")
        objects.append(instantiate(node))
    return objects


def optimizer_name(cfg: DictConfig) -> str:
    """The ``optimizer=`` choice when Hydra composed the config, else the torch class name."""
    if HydraConfig.initialized():
        choice = HydraConfig.get().runtime.choices.get("optimizer")
        if choice:
            return choice
    return cfg.optimizer._target_.rsplit(".", 1)[-1].lower()


def train(cfg: DictConfig) -> float:
    """Fit the model on the training rows, test it on the held-out rows, return ``cfg.optimized_metric``."""
    L.seed_everything(cfg.seed, workers=True)

    datamodule: L.LightningDataModule = instantiate(cfg.data)
    # The notebook calls torch.manual_seed(2020) right before it creates the layers.
    torch.manual_seed(cfg.seed)
    model: L.LightningModule = instantiate(
        cfg.model,
        input_size=datamodule.n_features,
        optimizer=instantiate(cfg.optimizer),
        _convert_="all",
    )

    callbacks: list[Callback] = instantiate_group(cfg.get("callbacks"), "callbacks")
    callbacks.append(HParamsSession(run_hparams(cfg, optimizer_name(cfg)), METRIC_TAGS))
    loggers: list[Logger] = instantiate_group(cfg.get("logger"), "logger")
    trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers)

    trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
    metrics = {name: float(value) for name, value in trainer.callback_metrics.items()}
    trainer.test(model, datamodule=datamodule, verbose=False)  # resets callback_metrics
    metrics.update({name: float(value) for name, value in trainer.callback_metrics.items()})
    log.info(
        "test accuracy %.4f, test loss %.6f, outputs in %s",
        metrics["test/acc"],
        metrics["test/loss"],
        Path(cfg.paths.output_dir).resolve(),
    )
    return metrics[cfg.optimized_metric]
