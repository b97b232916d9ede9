"""The evaluation task: score a saved checkpoint on the held-out rows of the configured data."""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
from hydra.utils import get_class
from omegaconf import DictConfig

from optlab.building import build, build_group, build_trainer
from optlab.checkpoints import check_input_fits, load_checkpoint
from optlab.console import closing_block, quiet_lightning
from optlab.results import RunResult

log = logging.getLogger(__name__)


def evaluate(cfg: DictConfig) -> RunResult:
    """Test the checkpoint's weights on the held-out rows (checked by ``optlab.validation.validate_evaluation``)."""
    quiet_lightning()
    datamodule: L.LightningDataModule = build(cfg.data, "data")
    model_class = get_class(cfg.model._target_)
    # weights_only: the checkpoint's hyper-parameters rebuild the network; nothing pickled runs.
    model = model_class.load_from_checkpoint(cfg.ckpt_path, map_location="cpu", weights_only=True)
    check_input_fits(load_checkpoint(cfg.ckpt_path), cfg.ckpt_path, datamodule.n_features)
    trainer: L.Trainer = build_trainer(cfg.trainer, logger=build_group(cfg.get("logger"), "logger"))
    metrics = {name: float(value) for name, value in trainer.test(model, datamodule=datamodule, verbose=False)[0].items()}
    if trainer.is_global_zero:
        log.info("checkpoint %s\n%s", cfg.ckpt_path, closing_block(metrics, Path(cfg.paths.output_dir), cfg.get("logger")))
    return RunResult(status="ok", metrics=metrics)
