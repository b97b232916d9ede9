"""The template's Lightning callbacks: the epoch table under the progress bar, and a checkpoint when a signal stops the run."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch import Callback
from lightning.pytorch import callbacks as lightning_callbacks
from lightning.pytorch.callbacks import TQDMProgressBar
from lightning.pytorch.callbacks.progress.tqdm_progress import Tqdm
from lightning.pytorch.utilities.exceptions import SIGTERMException

from optlab.errors import Interrupted
from optlab.history import shown_by_default
from optlab.replicas.records import is_replica_metric

log = logging.getLogger(__name__)


def bar_has_a_terminal() -> bool:
    """Whether a progress bar would be seen: the console is a terminal, and no other job draws on it."""
    from optlab.threads import parallel_jobs

    return sys.stderr.isatty() and parallel_jobs() == 1


class EpochTable(TQDMProgressBar):
    """Lightning's tqdm progress bar, and above it one row per epoch of the metrics the run logged.

    The columns are ``columns`` or, by default, every training and validation metric the
    model logs, whatever their names (not Lightning's ``*_step`` halves, not running bests):
    validation's are the names that appear while validation runs. An epoch without
    validation shows ``-`` in those columns. Epochs are counted from 1, as the notebook
    counts them; the validation and test passes get no bars of their own. Rows go through
    logging, so the run's ``train.log`` has them too. With ``terminal_only`` the bar is drawn
    only on a terminal that no other job of a parallel sweep draws on: a log file, or jobs
    side by side, get the rows alone. A row is written when the next epoch
    starts (or training ends): a model's own ``on_train_epoch_end`` logs after every callback's.
    """

    # Lightning's, without the rate: on an 80-column terminal the bar itself keeps a readable width.
    BAR_FORMAT = "{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}{postfix}]"

    def __init__(
        self, refresh_rate: int = 25, columns: Sequence[str] | None = None, terminal_only: bool = True, **kwargs: Any
    ) -> None:
        if terminal_only and not bar_has_a_terminal():
            refresh_rate = 0  # a log file gets the rows without a bar's redraws between them
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
        """The bar's figures: the training metrics as they move. What the rows above it show (the epoch's means,
        validation) and the logger's run id (MLflow, W&B) are left out: on 80 columns the bar keeps its width."""
        metrics = super().get_metrics(trainer, pl_module)
        in_rows = self._validation_names | {name for name, _ in self._layout or ()}
        return {key: value for key, value in metrics.items() if key != "v_num" and key not in in_rows}

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_validation_start(trainer, pl_module)
        self._before_validation = set(trainer.callback_metrics)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        self._validation_names |= set(trainer.callback_metrics) - self._before_validation
        if not trainer.sanity_checking:
            self._validation = {
                key: float(value)
                for key, value in trainer.callback_metrics.items()
                if key in self._validation_names and value.numel() == 1 and not is_replica_metric(key)
            }

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
        values = {
            key: float(value)
            for key, value in trainer.callback_metrics.items()
            if key not in self._validation_names and not is_replica_metric(key) and value.numel() == 1
        }
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


class CheckpointOnInterrupt(Callback):
    """On Ctrl+C, a dropped terminal (SIGHUP), SIGTERM or SLURM's time-limit warning: finish the batch, save ``last.ckpt``.

    ``ckpt_path=.../last.ckpt`` then resumes from where the run stopped, not from the end
    of the last finished epoch; a job SLURM requeues does so by itself (``optlab.run_dir``).
    The save waits for the batch to end so that the weights, optimizer state and loop
    counters agree (a signal can land mid-step); a second signal stops the run at once.
    SIGTERM is Lightning's: it stops after the batch and raises, and this callback saves.
    SIGUSR2 is what submitit asks SLURM to send before a job's time limit: after the save,
    submitit's own handler requeues the job. Other exceptions (a crash, a diverged run) save
    nothing: their state is not worth resuming from, and the previous ``last.ckpt`` stays.
    Under DDP, Lightning stops every rank on SIGTERM and this callback saves nothing.
    """

    def __init__(self) -> None:
        self.stop_requested: int | None = None  # the signal that asked for a stop
        self._previous: dict[int, Any] = {}

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.world_size != 1 or threading.current_thread() is not threading.main_thread():
            return
        signals = [signal.SIGINT, signal.SIGHUP]
        if callable(signal.getsignal(signal.SIGUSR2)):  # submitit's time-limit handler is installed
            signals.append(signal.SIGUSR2)
        for signum in signals:
            self._previous[signum] = signal.signal(signum, self._request_stop)

    def _request_stop(self, signum: int, frame: Any) -> None:
        self.stop_requested = signum
        signal.signal(signum, self._previous[signum])  # a second one is not delayed
        log.info("%s: stopping after this batch and saving last.ckpt", signal.Signals(signum).name)

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self.stop_requested is None:
            return
        self._save(trainer)
        if self.stop_requested == signal.SIGUSR2:
            self._previous[signal.SIGUSR2](signal.SIGUSR2, None)  # submitit requeues the job and exits
        raise Interrupted(self.stop_requested)

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        # Lightning raises SIGTERMException only between batches, so the state is consistent.
        if isinstance(exception, SIGTERMException) and trainer.world_size == 1:
            self._save(trainer)

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        for signum, handler in self._previous.items():
            if signum != self.stop_requested:
                signal.signal(signum, handler)
        self._previous = {}

    def _save(self, trainer: L.Trainer) -> None:
        checkpoint = next(
            (cb for cb in trainer.checkpoint_callbacks if isinstance(cb, lightning_callbacks.ModelCheckpoint)), None
        )
        if checkpoint is None or checkpoint.dirpath is None:
            return
        path = Path(checkpoint.dirpath) / f"{checkpoint.CHECKPOINT_NAME_LAST}{checkpoint.FILE_EXTENSION}"
        trainer.save_checkpoint(path)
        log.info("interrupted at epoch %d, step %d: saved %s", trainer.current_epoch, trainer.global_step, path)
