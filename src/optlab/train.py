"""The training task: compose objects from the config, fit, test, return the chosen metric."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import replace
from pathlib import Path

import lightning as L
from lightning.pytorch import Callback
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import Logger
from lightning.pytorch.utilities import rank_zero_only
from lightning.pytorch.utilities.exceptions import MisconfigurationException, SIGTERMException
from lightning.pytorch.utilities.model_helpers import is_overridden
from omegaconf import DictConfig

from optlab.building import build, build_group, build_trainer
from optlab.callbacks import missing_monitor, require_logged
from optlab.checkpoints import (check_optimizer_fits, check_scheduler_fits, check_state_fits, configured_classes,
                                load_checkpoint, trusted_globals)
from optlab.cli import command_line_overrides, hydra_choices, override_group
from optlab.config_tree import print_config_tree, save_config_tree
from optlab.console import closing_block, outcome_rows, quiet_lightning, run_header
from optlab.errors import ConfigError, Interrupted, NumericalError, OutputDirInUse, UserError
from optlab.loggers import MetricHistory, ReplicaRouter
from optlab.model_building import BuiltModel, build_model
from optlab.replicas import (replica_dirs, replica_hparams, replica_run_loggers, replica_summary, split_replica_metrics,
                             write_replica_records)
from optlab.results import RunResult, earlier_run_file, in_use_message, read_history, write_result
from optlab.tb_hparams import run_hparams, write_hparams_session
from optlab.threads import set_threads

log = logging.getLogger(__name__)


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


def refuse_ignored_overrides(built: BuiltModel) -> None:
    """``optimizer=sgd`` on the command line for a model that never receives it: one line, not a silently equal run."""
    for key, value in command_line_overrides():
        if (group := override_group(key)) in built.ignored:
            raise ConfigError(key, value, f"the model never receives {group}=: {built.ignored[group]}; remove it, "
                              "or set the model's own settings (model.<key>=...)")


def check_resume(cfg: DictConfig, path: str, built: BuiltModel) -> None:
    """The checkpoint loads and fits this run's model, and its optimizer and scheduler state fit the configured ones."""
    checkpoint = load_checkpoint(path, lambda: configured_classes(cfg), trusted=cfg.get("trust_checkpoint", False))
    check_state_fits(checkpoint, path, built.model, cfg, hydra_choices())
    if "optimizer" not in built.ignored and cfg.get("optimizer") is not None:
        check_optimizer_fits(checkpoint, path, cfg.optimizer, hydra_choices().get("optimizer"))
    if "scheduler" not in built.ignored:
        check_scheduler_fits(checkpoint, path, cfg.get("scheduler"))


def diverged(trainer: L.Trainer) -> NumericalError:
    optimizer = trainer.optimizers[0]
    lr = optimizer.param_groups[0]["lr"]
    return NumericalError(
        f"training diverged at epoch {trainer.current_epoch}, step {trainer.global_step}: the model's outputs "
        f"became NaN. Likely cause: a learning rate too large for {type(optimizer).__name__} (optimizer.lr={lr:g}); "
        "lower optimizer.lr, or clip gradients with trainer.gradient_clip_val=1.0"
    )


def validates(model: L.LightningModule, datamodule: L.LightningDataModule) -> bool:
    """Whether Lightning has a validation loop to run: a ``validation_step`` and a ``val_dataloader``."""
    return is_overridden("validation_step", model) and is_overridden("val_dataloader", datamodule)


def best_checkpoint_file(trainer: L.Trainer, metric: str, output_dir: Path) -> str | None:
    """The checkpoint that keeps the best ``metric`` (``checkpoints/best.ckpt``), if a callback keeps one."""
    for callback in trainer.checkpoint_callbacks:
        if isinstance(callback, ModelCheckpoint) and callback.monitor == metric and callback.best_model_path:
            path = Path(callback.best_model_path)
            return str(path.relative_to(output_dir)) if path.is_relative_to(output_dir) else str(path)
    return None


def train(cfg: DictConfig) -> RunResult:
    """Fit the model on the training data, test it on the test data; the run's outcome.

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
    built = build_model(cfg, datamodule)
    refuse_ignored_overrides(built)
    model, replicas = built.model, built.replicas
    resume = resume_from(cfg, output_dir)
    if cfg.get("ckpt_path"):
        check_resume(cfg, cfg.ckpt_path, built)

    # MetricHistory records every metric for result.json and the sweep report, whatever the configured loggers.
    history = MetricHistory(output_dir)
    loggers: list[Logger] = [*build_group(cfg.get("logger"), "logger"), history]
    replica_loggers = [replica_run_loggers(directory, loggers) for directory in replica_dirs(output_dir, replicas)]
    replica_histories = [logger for group in replica_loggers for logger in group if isinstance(logger, MetricHistory)]
    callbacks: list[Callback] = [*build_group(cfg.get("callbacks"), "callbacks"), history, *replica_histories]
    routed = loggers if replicas == 1 else [ReplicaRouter(loggers, replica_loggers)]
    trainer: L.Trainer = build_trainer(cfg.trainer, callbacks=callbacks, logger=routed)
    # Lightning logs the model's and data module's hyper-parameters itself; these add the
    # optimizer's, which the model only holds as a factory.
    hparams = run_hparams(cfg, hydra_choices(), built.ignored)
    sessions = [(trainer.loggers, hparams)]  # debug=fast_dev_run: Lightning put a logger that writes nothing in
    if replicas > 1 and trainer.loggers == routed:
        sessions = [(loggers, hparams), *replica_hparams(replica_loggers, hparams, built.seeds)]
    for run_loggers, run_params in sessions:
        for logger in run_loggers:
            logger.log_hyperparams(run_params)
        write_hparams_session(run_loggers, run_params)
    if replicas > 1:
        write_replica_records(output_dir, built.seeds)
    if trainer.is_global_zero:
        log.info("%s", run_header(cfg, hydra_choices(), datamodule, built, trainer, threads, output_dir))

    started = time.perf_counter()
    try:
        # weights_only: a checkpoint is tensors, plain data and the factories the config names; other pickled code is refused.
        with trusted_globals(configured_classes(cfg)):
            trainer.fit(model, datamodule=datamodule, ckpt_path=resume, weights_only=not cfg.get("trust_checkpoint", False))
    except SIGTERMException:
        raise Interrupted(
            f"stopped by SIGTERM at epoch {trainer.current_epoch}, step {trainer.global_step}; "
            f"resume with ckpt_path={output_dir / 'checkpoints' / 'last.ckpt'}"
        ) from None
    except (MisconfigurationException, RuntimeError) as error:
        if missing := missing_monitor(trainer, error, cfg.optimized_metric, datamodule):  # a callback's monitor the model never logs
            raise missing from None
        if isinstance(error, MisconfigurationException):  # what Lightning needs of a module it was not given
            raise UserError(f"model ({type(model).__name__}): {' '.join(str(error).split())}") from None
        # BCELoss refuses probabilities outside [0, 1]: after a divergence the sigmoid gives NaN.
        if "between 0 and 1" not in str(error):
            raise
        raise diverged(trainer) from None
    fit_seconds = time.perf_counter() - started
    if not history.logged("validate") and validates(model, datamodule):
        # Nothing was left to train (a resumed run already at max_epochs): score it anyway.
        trainer.validate(model, datamodule=datamodule, verbose=False)
    metrics = {name: float(value) for name, value in trainer.callback_metrics.items()}
    test = trainer.test(model, datamodule=datamodule, verbose=False)  # resets callback_metrics
    metrics.update({name: float(value) for name, value in trainer.callback_metrics.items()})
    metrics, each_replica = split_replica_metrics(metrics, replicas)
    require_logged(cfg.optimized_metric, metrics, datamodule)
    if trainer.is_global_zero:
        test_metrics, _ = split_replica_metrics(test[0] if test else {}, replicas)
        rows = outcome_rows(test_metrics, read_history(output_dir), cfg.optimized_metric, cfg.optimized_direction,
                            best_checkpoint_file(trainer, cfg.optimized_metric, output_dir))
        rows.append(("replicas", replica_summary(cfg.optimized_metric, each_replica)))
        log.info("%s", closing_block(rows, output_dir, cfg.get("logger")))
    result = RunResult(status="ok", metrics=metrics, fit_seconds=fit_seconds, steps=trainer.global_step,
                       epochs=trainer.current_epoch, objective=cfg.optimized_metric)
    if replicas > 1 and trainer.is_global_zero:
        for directory, replica_metrics in zip(replica_dirs(output_dir, replicas), each_replica, strict=True):
            write_result(directory, replace(result, metrics=replica_metrics))
    return result
