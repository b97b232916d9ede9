"""``callbacks.progress_bar``: Lightning's tqdm bar, and above it one row per epoch of what the model logged."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import TQDMProgressBar
from lightning.pytorch.callbacks.progress.tqdm_progress import Tqdm

from optlab.history import shown_by_default
from optlab.replicas.records import is_replica_metric

log = logging.getLogger(__name__)


class EpochTable(TQDMProgressBar):
    """Lightning's tqdm progress bar, and above it one row per epoch of the metrics the run logged.

    The columns are ``columns`` or, by default, every training and validation metric the
    model logs, whatever their names (not Lightning's ``*_step`` halves, not running bests):
    validation's are the names that appear while validation runs. An epoch without
    validation shows ``-`` in those columns. Epochs are counted from 1, as the notebook
    counts them; the validation and test passes get no bars of their own. Rows go through
    logging, so the run's ``train.log`` has them too. A row is written when the next epoch
    starts (or training ends): a model's own ``on_train_epoch_end`` logs after every callback's.
    """

    def __init__(self, refresh_rate: int = 25, columns: Sequence[str] | None = None, **kwargs: Any) -> None:
        super().__init__(refresh_rate=refresh_rate, **kwargs)
        self.columns = list(columns) if columns else None
        self._pending_epoch: int | None = None
        self._validation: dict[str, float] = {}
        self._validation_names: set[str] = set()
        self._before_validation: set[str] = set()
        self._layout: list[tuple[str, int]] | None = None  # (metric, width), fixed by the first row

    def init_validation_tqdm(self) -> Tqdm:
        return Tqdm(disable=True)  # one held-out pass: the row below says what it gave

    def init_test_tqdm(self) -> Tqdm:
        return Tqdm(disable=True)

    def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, int | str | float | dict[str, float]]:
        metrics = super().get_metrics(trainer, pl_module)
        metrics.pop("v_num", None)  # the logger's run id (MLflow, W&B): the header names the run
        return metrics

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_validation_start(trainer, pl_module)
        self._before_validation = set(trainer.callback_metrics)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        self._validation_names |= set(trainer.callback_metrics) - self._before_validation
        if not trainer.sanity_checking:
            self._validation = {key: float(value) for key, value in trainer.callback_metrics.items()
                                if key in self._validation_names and value.numel() == 1 and not is_replica_metric(key)}

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        self._pending_epoch = trainer.current_epoch

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._write_row(trainer)
        super().on_train_epoch_start(trainer, pl_module)
        self.train_progress_bar.set_description(f"Epoch {self._epoch(trainer, trainer.current_epoch)}")

    @staticmethod
    def _epoch(trainer: L.Trainer, epoch: int) -> str:
        """Counted from 1, as the notebook counts them."""
        return f"{epoch + 1}/{trainer.max_epochs}" if trainer.max_epochs and trainer.max_epochs > 0 else str(epoch + 1)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._write_row(trainer)
        super().on_train_end(trainer, pl_module)

    def _values(self, trainer: L.Trainer) -> dict[str, float]:
        """This epoch's numbers: training metrics as they stand, validation as this epoch's pass left them."""
        values = {key: float(value) for key, value in trainer.callback_metrics.items()
                  if key not in self._validation_names and not is_replica_metric(key) and value.numel() == 1}
        return {**values, **self._validation}

    def _plan_layout(self, values: dict[str, float]) -> list[tuple[str, int]]:
        # A metric logged per step and per epoch is in Lightning's callback metrics three times: under
        # its own name, <name>_step and <name>_epoch. The table shows the epoch one, as the loggers do.
        names = self.columns or sorted(
            (key for key in values if key != "epoch" and shown_by_default(key) and f"{key}_epoch" not in values),
            key=lambda key: key in self._validation_names,
        )
        return [(name, max(len(name), 10)) for name in names]

    def _write_row(self, trainer: L.Trainer) -> None:
        if self._pending_epoch is None or not trainer.is_global_zero:
            return
        values = self._values(trainer)
        if self._layout is None:
            self._layout = self._plan_layout(values)
            log.info("%5s  %s", "epoch", "  ".join(f"{name:>{width}}" for name, width in self._layout))
        cells = [f"{values[name]:{width}.5g}" if name in values else f"{'-':>{width}}" for name, width in self._layout]
        log.info("%5s  %s", self._epoch(trainer, self._pending_epoch), "  ".join(cells))
        self._pending_epoch, self._validation = None, {}
