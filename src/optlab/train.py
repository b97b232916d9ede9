"""The training task: build the data, the model, the loggers, the callbacks and the Trainer; fit; test; the outcome."""

from __future__ import annotations

import logging
import math
import signal
import time
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch import Callback
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from lightning.pytorch.utilities.exceptions import MisconfigurationException, SIGTERMException
from lightning.pytorch.utilities.model_helpers import is_overridden
from omegaconf import DictConfig

from optlab.building import build, build_group, build_trainer
from optlab.console import (
    closing_block,
    label_parallel_job,
    outcome_rows,
    profile_rows,
    quiet_lightning,
    run_header,
    save_config_tree,
)
from optlab.errors import ConfigError, Interrupted, NumericalError, UserError
from optlab.history import History, read_history
from optlab.hydra_context import hydra_choices, resume_command
from optlab.model_building import build_model, refuse_ignored_overrides
from optlab.replicas.records import is_replica_metric
from optlab.results import RunResult
from optlab.run_dir import claim_run_dir, resume_from
from optlab.run_records import RunRecords, run_hparams
from optlab.threads import set_threads

log = logging.getLogger(__name__)


def train(cfg: DictConfig) -> RunResult:
    """Fit the model on the training data and test it; ``optimized_metric`` is the outcome's objective.

    ``optlab.runner.run_task`` checked the config first and records what this returns (or raises) in ``result.json``.
    """
    run_dir = Path(cfg.paths.output_dir)
    claim_run_dir(run_dir)  # ours already when Hydra's CheckLogDir claimed it before writing .hydra/
    quiet_lightning()
    label_parallel_job()  # jobs of a parallel sweep print side by side: each line says whose it is
    save_config_tree(cfg, run_dir)
    threads = set_threads(cfg.get("num_threads"))
    L.seed_everything(cfg.seed, workers=True, verbose=False)

    datamodule: L.LightningDataModule = build(cfg.data, "data")
    built = build_model(cfg, datamodule)  # with replicas=K: K seeds of the model, trained as one
    refuse_ignored_overrides(built)
    if cfg.get("ckpt_path"):  # the checkpoint's code, only for the runs that resume
        from optlab.checkpoints import check_resume

        check_resume(cfg, built.model, built.ignored, hydra_choices())

    records = RunRecords(run_dir, built.seeds)  # metrics.jsonl, HParams; each replica's own run directory
    loggers = records.loggers(build_group(cfg.get("logger"), "logger"))
    callbacks: list[Callback] = [*build_group(cfg.get("callbacks"), "callbacks"), *records.callbacks]
    trainer: L.Trainer = build_trainer(cfg.trainer, callbacks=callbacks, logger=loggers)
    records.log_hyperparams(trainer, run_hparams(cfg, hydra_choices(), built.ignored))
    if trainer.is_global_zero:
        log.info("%s", run_header(cfg, hydra_choices(), datamodule, built, trainer, threads, run_dir))

    fit_seconds = fit(trainer, built.model, datamodule, cfg, run_dir)
    profiled = profile_rows(trainer.profiler, fit_seconds, run_dir)  # before the test adds its own timings
    if not records.history.logged("validate") and not built.missing_loop("validation", datamodule):
        trainer.validate(built.model, datamodule=datamodule, verbose=False)  # resumed with nothing left to train
    metrics = logged_metrics(trainer)
    untested = built.missing_loop("test", datamodule)  # training without a test works, as in Lightning
    tested = trainer.test(built.model, datamodule=datamodule, verbose=False) if not untested else []
    result = RunResult(
        status="ok",
        metrics=metrics | logged_metrics(trainer),
        fit_seconds=fit_seconds,
        steps=trainer.global_step,
        epochs=trainer.current_epoch,
        objective=cfg.optimized_metric,
    )
    result, each_replica = records.finish(
        result,
        write=trainer.is_global_zero,
        judge=lambda record: no_result(read_history(record), cfg.optimized_metric, trainer),
    )
    require_logged(cfg.optimized_metric, result.metrics, datamodule)
    if trainer.is_global_zero:
        test = f"none: {untested}" if untested else tested[0] if tested else {}
        rows = outcome_rows(test, run_dir, cfg, best_checkpoint(trainer, cfg.optimized_metric, run_dir), each_replica)
        log.info("%s", closing_block([*rows, *profiled], run_dir, cfg.get("logger")))
    return result


def fit(trainer: L.Trainer, model: L.LightningModule, datamodule: L.LightningDataModule, cfg: DictConfig, run_dir: Path) -> float:
    """``trainer.fit``, resumed where the config or SLURM says; its seconds. Whatever stops it early is one line."""
    resume = resume_from(cfg, run_dir)
    allowed: AbstractContextManager[None] = nullcontext()
    if resume:  # weights_only: a checkpoint is tensors, plain data and the factories its config names, no other code
        from optlab.checkpoints import configured_classes, load_under_own_names, trusted_globals

        allowed = trusted_globals(configured_classes(cfg))
        load_under_own_names(model)
    started = time.perf_counter()
    try:
        with allowed:
            trainer.fit(model, datamodule=datamodule, ckpt_path=resume, weights_only=not cfg.get("trust_checkpoint", False))
    except SIGTERMException:
        raise stopped(trainer, run_dir, signal.SIGTERM) from None
    except Interrupted as error:  # Ctrl+C or SIGHUP, after CheckpointOnInterrupt saved last.ckpt
        raise stopped(trainer, run_dir, error.signum) from None
    except (MisconfigurationException, RuntimeError) as error:
        if missing := missing_monitor(trainer, error, cfg.optimized_metric, datamodule):  # a monitor the model never logs
            raise missing from None
        if isinstance(error, MisconfigurationException):  # what Lightning needs of a module it was not given
            raise UserError(f"model ({type(model).__name__}): {' '.join(str(error).split())}") from None
        if "between 0 and 1" not in str(error):  # BCELoss refuses probabilities outside [0, 1]: a sigmoid gone NaN
            raise
        raise diverged(trainer) from None
    return time.perf_counter() - started


def stopped(trainer: L.Trainer, run_dir: Path, signum: int) -> Interrupted:
    """Where a signal stopped training, and the command that resumes it (from ``last.ckpt``, when one is there)."""
    last = run_dir / "checkpoints" / "last.ckpt"
    resume = f"; resume with: {resume_command(last)}" if last.is_file() else ""
    return Interrupted(signum, f" at epoch {trainer.current_epoch}, step {trainer.global_step}{resume}")


def diverged(trainer: L.Trainer) -> NumericalError:
    optimizer = trainer.optimizers[0]
    lr = optimizer.param_groups[0]["lr"]
    return NumericalError(
        f"training diverged at epoch {trainer.current_epoch}, step {trainer.global_step}: the model's outputs "
        f"became NaN. Likely cause: a learning rate too large for {type(optimizer).__name__} (optimizer.lr={lr:g}); "
        "lower optimizer.lr, or clip gradients with trainer.gradient_clip_val=1.0"
    )


def no_result(history: History, metric: str, trainer: L.Trainer) -> tuple[str, str] | None:
    """Why a run that trained to the end is no result, as ``(status, reason)``: it diverged (``metric`` ended
    not finite: a loss without a guard, such as MSE, runs on with NaN), or it learned nothing.

    Learned nothing: ``metric`` never moved, nor did the training metrics. The notebook's sigmoid
    saturates at a learning rate too large for SGD (``optimizer.lr=0.05``): BCE's clamp holds the
    loss, and the accuracy stays at chance, from the first epoch to the last; the epoch's training
    loss ends within a percent of where it began. (A run that is perfect from its first epoch on
    keeps its validation metric too, but its training loss still falls.)
    """
    records = [record for record in history.stage_records("validate") if isinstance(record.get(metric), float)]
    values = [record[metric] for record in records]
    lr = trainer.optimizers[0].param_groups[0]["lr"] if trainer.optimizers else None
    if values and not math.isfinite(values[-1]):
        epoch = next(record.get("epoch") for record in records if not math.isfinite(record[metric]))
        return "diverged", (
            f"training diverged: {metric} became {values[-1]} at epoch {int(epoch or 0) + 1}"
            + (f"; lower optimizer.lr (now {lr:g})" if lr is not None else "")
        )
    training = [history.values(tag) for tag in history.tags_of("train") if history.per_epoch(tag)]
    if len(values) < 2 or not unchanged(values) or not all(barely_moved(series) for series in training):
        return None
    hint = f"; a learning rate too large saturates a model: try a lower optimizer.lr (now {lr:g})" if lr is not None else ""
    return (
        "did not learn",
        f"learned nothing: {metric} stayed at {values[0]:.6g} in every one of its {len(values)} validations{hint}",
    )


def unchanged(series: list[float]) -> bool:
    return all(math.isclose(value, series[0], rel_tol=1e-7, abs_tol=1e-12) for value in series)


def barely_moved(series: list[float]) -> bool:
    return math.isclose(series[-1], series[0], rel_tol=0.01, abs_tol=1e-12)


def logged_metrics(trainer: L.Trainer) -> dict[str, float]:
    """What the model logged, as numbers (the test resets them, so they are read before and after it)."""
    return {name: float(value) for name, value in trainer.callback_metrics.items()}


def best_checkpoint(trainer: L.Trainer, metric: str, run_dir: Path) -> str | None:
    """The checkpoint that keeps the best ``metric`` (``checkpoints/best.ckpt``), if a callback keeps one."""
    for callback in trainer.checkpoint_callbacks:
        if isinstance(callback, ModelCheckpoint) and callback.monitor == metric and callback.best_model_path:
            path = Path(callback.best_model_path)
            return str(path.relative_to(run_dir)) if path.is_relative_to(run_dir) else str(path)
    return None


def not_logged(key: str, metric: str, logged: Any, datamodule: Any = None, when: str = "") -> ConfigError:
    """``optimized_metric`` (or a callback's monitor) names something the run has not logged: one line listing what it did."""
    names = sorted(name for name in logged if name != "epoch" and not is_replica_metric(name))
    hint = ""
    if datamodule is not None and not is_overridden("val_dataloader", datamodule):
        hint = f" ({type(datamodule).__name__} has no val_dataloader, so nothing is validated)"
    return ConfigError(
        key,
        metric,
        f"this run has not logged it{when}; it logged: {', '.join(names) or 'nothing'}{hint}; "
        "set optimized_metric to one of those",
    )


def require_logged(metric: str, logged: Any, datamodule: Any = None) -> None:
    """``optimized_metric`` names something the run logged, or one line listing what it did log."""
    if metric not in logged:
        raise not_logged("optimized_metric", metric, logged, datamodule)


def missing_monitor(trainer: L.Trainer, error: BaseException, optimized_metric: str, datamodule: Any) -> ConfigError | None:
    """The error Lightning raised is a callback's (checkpoint, early stopping) about a metric it monitors and nobody logged.

    Lightning refuses that once an epoch ends; the callbacks' monitors come from
    ``optimized_metric`` (``configs/callbacks/``), so the key to set is usually that one.
    """
    for callback in trainer.callbacks:
        monitor = getattr(callback, "monitor", None)
        if (
            isinstance(callback, ModelCheckpoint | EarlyStopping)
            and isinstance(monitor, str)
            and monitor not in trainer.callback_metrics
            and monitor in str(error)
        ):
            key = "optimized_metric" if monitor == optimized_metric else f"{type(callback).__name__}.monitor"
            when = f" by the end of epoch {trainer.current_epoch + 1}, when {type(callback).__name__} looks for it"
            return not_logged(key, monitor, trainer.callback_metrics, datamodule, when)
    return None
