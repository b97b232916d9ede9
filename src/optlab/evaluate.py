"""The evaluation task: score a saved checkpoint on the test data of the configured data module."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning as L
from omegaconf import DictConfig

from optlab.building import build, build_group, build_trainer, target_class
from optlab.checkpoints import check_state_fits, load_checkpoint
from optlab.cli import hydra_choices
from optlab.console import closing_block, quiet_lightning
from optlab.model_arguments import data_arguments, linked_arguments
from optlab.replicas import Replicas, is_replicas_checkpoint, rebuild_replicas, replica_summary, split_replica_metrics
from optlab.results import RunResult

log = logging.getLogger(__name__)


def load_model(cfg: DictConfig, datamodule: L.LightningDataModule) -> L.LightningModule:
    """The checkpoint's model, rebuilt from its hyper-parameters with the sizes this run's data has.

    Sizes come from the data as in training, so a checkpoint trained on other data is one
    line naming the tensor that does not fit, not a matrix-shape error in the middle of the test.
    """
    model_class = target_class(cfg.model, "model")
    checkpoint = load_checkpoint(cfg.ckpt_path)
    if is_replicas_checkpoint(checkpoint):
        return load_replicas(cfg, datamodule, model_class, checkpoint)
    # What the checkpoint's hyper-parameters lack, and every size the data knows (it may differ from the checkpoint's).
    linked = {**linked_arguments(model_class, datamodule, configured=checkpoint["hyper_parameters"].keys()),
              **data_arguments(model_class, datamodule)}
    try:
        # weights_only: the checkpoint's hyper-parameters rebuild the network; nothing pickled runs.
        return model_class.load_from_checkpoint(cfg.ckpt_path, map_location="cpu", weights_only=True, **linked)
    except RuntimeError as error:
        if "state_dict" not in str(error):  # torch's "Error(s) in loading state_dict": a mismatch
            raise
        rebuilt = model_class(**{**checkpoint["hyper_parameters"], **linked})
        check_state_fits(checkpoint, cfg.ckpt_path, rebuilt, cfg, hydra_choices())
        raise


def load_replicas(cfg: DictConfig, datamodule: L.LightningDataModule, model_class: type,
                  checkpoint: dict[str, Any]) -> Replicas:
    """A ``replicas=K`` checkpoint: every replica rebuilt from the hyper-parameters it was trained with, then loaded."""
    def build_model(hyper_parameters: Mapping[str, Any]) -> L.LightningModule:
        linked = {**linked_arguments(model_class, datamodule, configured=hyper_parameters.keys()),
                  **data_arguments(model_class, datamodule)}
        return model_class(**{**hyper_parameters, **linked})

    model = rebuild_replicas(checkpoint, build_model)
    check_state_fits(checkpoint, cfg.ckpt_path, model, cfg, hydra_choices())
    model.load_state_dict(checkpoint["state_dict"])
    return model


def evaluate(cfg: DictConfig) -> RunResult:
    """Test the checkpoint's weights (checked by ``optlab.validation.validate_evaluation``)."""
    quiet_lightning()
    datamodule: L.LightningDataModule = build(cfg.data, "data")
    model = load_model(cfg, datamodule)
    trainer: L.Trainer = build_trainer(cfg.trainer, logger=build_group(cfg.get("logger"), "logger"))
    metrics = {name: float(value) for name, value in trainer.test(model, datamodule=datamodule, verbose=False)[0].items()}
    # A replicas checkpoint: the loggers get each replica's test metrics as replica_NN/<name>, the table their mean.
    metrics, each_replica = split_replica_metrics(metrics, len(getattr(model, "seeds", ())))
    if trainer.is_global_zero:
        spread = replica_summary(next(iter(sorted(metrics)), ""), each_replica, where="each logged as replica_NN/<name>")
        log.info("checkpoint %s\n%s", cfg.ckpt_path, closing_block(metrics, Path(cfg.paths.output_dir), cfg.get("logger"), spread))
    return RunResult(status="ok", metrics=metrics)
