"""Whether the run logged ``optimized_metric`` (and every metric a callback monitors): one line listing what it did log."""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from lightning.pytorch.utilities.model_helpers import is_overridden

from optlab.errors import ConfigError
from optlab.replicas.records import is_replica_metric


def not_logged(key: str, metric: str, logged: Any, datamodule: Any = None, when: str = "") -> ConfigError:
    """``optimized_metric`` (or a callback's monitor) names something the run has not logged: one line listing what it did."""
    names = sorted(name for name in logged if name != "epoch" and not is_replica_metric(name))
    hint = ""
    if datamodule is not None and not is_overridden("val_dataloader", datamodule):
        hint = f" ({type(datamodule).__name__} has no val_dataloader, so nothing is validated)"
    return ConfigError(key, metric, f"this run has not logged it{when}; it logged: {', '.join(names) or 'nothing'}{hint}; "
                                    "set optimized_metric to one of those")


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
        if isinstance(callback, ModelCheckpoint | EarlyStopping) and isinstance(monitor, str) \
                and monitor not in trainer.callback_metrics and monitor in str(error):
            key = "optimized_metric" if monitor == optimized_metric else f"{type(callback).__name__}.monitor"
            when = f" by the end of epoch {trainer.current_epoch + 1}, when {type(callback).__name__} looks for it"
            return not_logged(key, monitor, trainer.callback_metrics, datamodule, when)
    return None
