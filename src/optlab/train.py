"""The training task: compose objects from the config, fit, test, return the chosen metric."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from lightning.pytorch import Callback
from lightning.pytorch.loggers import Logger
from lightning.pytorch.utilities import rank_zero_only
from lightning.pytorch.utilities.exceptions import MisconfigurationException, SIGTERMException
from omegaconf import DictConfig

from optlab.cli import hydra_choices
from optlab.config_tree import print_config_tree, save_config_tree
from optlab.console import closing_block, quiet_lightning, run_header
from optlab.errors import Interrupted, NumericalError, OutputDirInUse, UserError
from optlab.loggers import MetricHistory, ReplicaRouter
from optlab.replicas import (Replicas, check_replicable, replica_dirs, replica_hparams, replica_run_loggers, replica_seeds,
                             replica_summary, split_replica_metrics, write_replica_records)
from optlab.results import RunResult, earlier_run_file, in_use_message, write_result
from optlab.tb_hparams import run_hparams, write_hparams_session
from optlab.threads import set_threads
from optlab.building import build, build_group, build_trainer, target_class
from optlab.callbacks import RequireLoggedMetric, require_logged
from optlab.checkpoints import check_state_fits, load_checkpoint
from optlab.model_arguments import linked_arguments, unused_factories

log = logging.getLogger(__name__)


def optimizer_name(cfg: DictConfig) -> str:
    """The ``optimizer=`` choice when Hydra composed the config, else the torch class name."""
    return hydra_choices().get("optimizer") or cfg.optimizer._target_.rsplit(".", 1)[-1].lower()


def requeued() -> bool:
    """Whether SLURM restarted this job (``scontrol requeue``, preemption, its time limit)."""
    return os.environ.get("SLURM_RESTART_COUNT", "0") not in ("", "0")


def resume_from(cfg: DictConfig, output_dir: Path) -> str | None:
    """``ckpt_path``, or for a job SLURM requeued, the ``last.ckpt`` its earlier attempt saved in this directory."""
    if cfg.get("ckpt_path"):
        return str(cfg.ckpt_path)
    last = output_dir / "checkpoints" / "last.ckpt"
    if requeued() and last.is_file():
        log.info("requeued by SLURM (restart %s): resuming from %s", os.environ["SLURM_RESTART_COUNT"], last)
        return str(last)
    return None


def ensure_fresh_output_dir(output_dir: Path) -> None:
    """Refuse to add a second event file or overwrite checkpoints in an earlier run's directory."""
    if rank_zero_only.rank != 0 or requeued():  # DDP's extra ranks share rank 0's directory; a requeued job is its own
        return
    if earlier := earlier_run_file(output_dir):
        raise OutputDirInUse(in_use_message(output_dir, earlier))


def diverged(trainer: L.Trainer) -> NumericalError:
    optimizer = trainer.optimizers[0]
    lr = optimizer.param_groups[0]["lr"]
    return NumericalError(
        f"training diverged at epoch {trainer.current_epoch}, step {trainer.global_step}: the model's outputs "
        f"became NaN. Likely cause: a learning rate too large for {type(optimizer).__name__} (optimizer.lr={lr:g}); "
        "lower optimizer.lr, or clip gradients with trainer.gradient_clip_val=1.0"
    )


def build_model(cfg: DictConfig, seeds: list[int], linked: dict[str, Any],
                factories: dict[str, Any]) -> tuple[L.LightningModule, list[L.LightningModule]]:
    """The model; with several seeds, one model per seed (drawn right after ``torch.manual_seed(seed)``) trained as one."""
    models = []
    for seed in seeds:
        # The notebook calls torch.manual_seed(2020) right before it creates the layers.
        torch.manual_seed(seed)
        models.append(build(cfg.model, "model", **linked, _convert_="all"))
    return (models[0] if len(models) == 1 else Replicas(models, seeds, **factories)), models


def train(cfg: DictConfig) -> RunResult:
    """Fit the model on the training rows, test it on the held-out rows; the run's outcome.

    The config was checked before this module was imported (``optlab.validation.validate``,
    through ``optlab.cli.run_task``, which also records the outcome in ``result.json``).
    """
    output_dir = Path(cfg.paths.output_dir)
    ensure_fresh_output_dir(output_dir)
    quiet_lightning()
    if rank_zero_only.rank == 0:
        output_dir.mkdir(parents=True, exist_ok=True)
        save_config_tree(cfg, output_dir)
        if cfg.get("print_config"):
            print_config_tree(cfg)
    threads = set_threads(cfg.get("num_threads"))
    L.seed_everything(cfg.seed, workers=True, verbose=False)

    datamodule: L.LightningDataModule = build(cfg.data, "data")
    factories = {
        "optimizer": instantiate(cfg.optimizer),
        "scheduler": instantiate(cfg.scheduler) if cfg.get("scheduler") else None,
    }
    model_class = target_class(cfg.model, "model")
    for name in unused_factories(model_class, factories):
        log.warning("%s takes no %s argument: its own configure_optimizers decides, and %s= is not used",
                    model_class.__name__, name, name)
    # Arguments the model declares and its config does not set: the factories, and sizes the data knows.
    linked = linked_arguments(model_class, datamodule, configured=cfg.model.keys(), factories=factories)
    replicas = cfg.get("replicas", 1)
    check_replicable(replicas, model_class, factories, cfg.trainer)
    seeds = replica_seeds(cfg.seed, replicas)
    model, models = build_model(cfg, seeds, linked, factories)
    if cfg.get("ckpt_path"):
        check_state_fits(load_checkpoint(cfg.ckpt_path), cfg.ckpt_path, model, cfg, hydra_choices())

    callbacks: list[Callback] = build_group(cfg.get("callbacks"), "callbacks")
    callbacks.append(RequireLoggedMetric(cfg.optimized_metric))
    # MetricHistory records every metric for result.json and the sweep report, whatever the configured loggers.
    loggers: list[Logger] = [*build_group(cfg.get("logger"), "logger"), MetricHistory(output_dir)]
    replica_loggers = [replica_run_loggers(directory, loggers) for directory in replica_dirs(output_dir, replicas)]
    routed = loggers if replicas == 1 else [ReplicaRouter(loggers, replica_loggers)]
    trainer: L.Trainer = build_trainer(cfg.trainer, callbacks=callbacks, logger=routed)
    # Lightning logs the model's and data module's hyper-parameters itself; these add the
    # optimizer's, which the model only holds as a factory.
    hparams = run_hparams(cfg, optimizer_name(cfg))
    sessions = [(trainer.loggers, hparams)]  # debug=fast_dev_run: Lightning put a logger that writes nothing in
    if replicas > 1 and trainer.loggers == routed:
        sessions = [(loggers, hparams), *replica_hparams(replica_loggers, hparams, seeds)]
    for run_loggers, run_params in sessions:
        for logger in run_loggers:
            logger.log_hyperparams(run_params)
        write_hparams_session(run_loggers, run_params)
    if replicas > 1:
        write_replica_records(output_dir, seeds)
    if trainer.is_global_zero:
        log.info("%s", run_header(cfg, hydra_choices(), datamodule, model, trainer, threads, output_dir,
                                      replicas=models if replicas > 1 else ()))

    started = time.perf_counter()
    try:
        # weights_only: a checkpoint is plain tensors and containers; pickled code is refused.
        trainer.fit(model, datamodule=datamodule, ckpt_path=resume_from(cfg, output_dir), weights_only=True)
    except SIGTERMException:
        raise Interrupted(
            f"stopped by SIGTERM at epoch {trainer.current_epoch}, step {trainer.global_step}; "
            f"resume with ckpt_path={output_dir / 'checkpoints' / 'last.ckpt'}"
        ) from None
    except MisconfigurationException as error:  # what Lightning needs of a module it was not given
        raise UserError(f"model ({type(model).__name__}): {' '.join(str(error).split())}") from None
    except RuntimeError as error:
        # BCELoss refuses probabilities outside [0, 1]: after a divergence the sigmoid gives NaN.
        if "between 0 and 1" not in str(error):
            raise
        raise diverged(trainer) from None
    fit_seconds = time.perf_counter() - started
    if not any(name.startswith("val/") for name in trainer.callback_metrics):
        # Nothing was left to train (a resumed run already at max_epochs): score it anyway.
        trainer.validate(model, datamodule=datamodule, verbose=False)
    metrics = {name: float(value) for name, value in trainer.callback_metrics.items()}
    trainer.test(model, datamodule=datamodule, verbose=False)  # resets callback_metrics
    metrics.update({name: float(value) for name, value in trainer.callback_metrics.items()})
    metrics, each_replica = split_replica_metrics(metrics, replicas)
    require_logged(cfg.optimized_metric, metrics)
    if trainer.is_global_zero:
        log.info("%s", closing_block(metrics, output_dir, cfg.get("logger"), replica_summary(cfg.optimized_metric, each_replica)))
    result = RunResult(status="ok", metrics=metrics, fit_seconds=fit_seconds, steps=trainer.global_step)
    if replicas > 1 and trainer.is_global_zero:
        for directory, replica_metrics in zip(replica_dirs(output_dir, replicas), each_replica, strict=True):
            write_result(directory, replace(result, metrics=replica_metrics))
    return result
