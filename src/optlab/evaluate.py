"""The evaluation task: score a saved checkpoint on the held-out rows of the configured data."""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf

from optlab.errors import ConfigError
from optlab.results import RunResult, write_result
from optlab.train import instantiate_group
from optlab.validation import build, check_accelerator, check_ckpt_path

log = logging.getLogger(__name__)


def evaluate(cfg: DictConfig) -> float:
    """Test the checkpoint's weights; log and return test accuracy."""
    if OmegaConf.is_missing(cfg, "ckpt_path") or cfg.ckpt_path is None:
        raise ConfigError("ckpt_path", None, "required: python eval.py ckpt_path=logs/runs/<run>/checkpoints/last.ckpt")
    check_ckpt_path(cfg.ckpt_path)
    check_accelerator(cfg.trainer.get("accelerator", "auto"))
    datamodule: L.LightningDataModule = build(cfg.data, "data")
    model_class = get_class(cfg.model._target_)
    # weights_only: the checkpoint's hyper-parameters rebuild the network; nothing pickled runs.
    model = model_class.load_from_checkpoint(cfg.ckpt_path, map_location="cpu", weights_only=True)
    if model.hparams.input_size != datamodule.n_features:
        raise ConfigError(
            "data", OmegaConf.select(cfg, "data._target_"),
            f"the checkpoint's model takes {model.hparams.input_size} features but this data has "
            f"{datamodule.n_features}: pass the data= choice the run was trained with",
        )
    loggers = instantiate_group(cfg.get("logger"), "logger")
    trainer: L.Trainer = instantiate(cfg.trainer, logger=loggers)
    metrics = {name: float(value) for name, value in trainer.test(model, datamodule=datamodule, verbose=False)[0].items()}
    output_dir = Path(cfg.paths.output_dir)
    if trainer.is_global_zero:
        write_result(output_dir, RunResult(status="ok", metrics=metrics))
        log.info(
            "test accuracy %.4f, test loss %.6f for %s (outputs in %s)",
            metrics["test/acc"], metrics["test/loss"], cfg.ckpt_path, output_dir.resolve(),
        )
    return metrics["test/acc"]
