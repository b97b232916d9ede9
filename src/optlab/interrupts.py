"""``callbacks.checkpoint_on_interrupt``: a run stopped by a signal saves ``last.ckpt`` first, to resume from."""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch import Callback
from lightning.pytorch import callbacks as lightning_callbacks
from lightning.pytorch.utilities.exceptions import SIGTERMException

log = logging.getLogger(__name__)


class CheckpointOnInterrupt(Callback):
    """On Ctrl+C, SIGTERM or SLURM's time-limit warning, finish the current batch, then save ``checkpoints/last.ckpt``.

    ``ckpt_path=.../last.ckpt`` then resumes from where the run stopped, not from the end
    of the last finished epoch; a job SLURM requeues does so by itself (see ``optlab.train``).
    The save waits for the batch to end so that the weights, optimizer state and loop
    counters agree (a signal can land mid-step); a second Ctrl+C interrupts at once.
    SIGTERM is Lightning's: it stops after the batch and raises, and this callback saves.
    SIGUSR2 is what submitit asks SLURM to send before a job's time limit: after the save,
    submitit's own handler requeues the job. Other exceptions (a crash, a diverged run) save
    nothing: their state is not worth resuming from, and the previous ``last.ckpt`` stays.
    """

    def __init__(self) -> None:
        self.stop_requested: int | None = None  # the signal that asked for a stop
        self._previous: dict[int, Any] = {}

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.world_size != 1 or threading.current_thread() is not threading.main_thread():
            return
        signals = [signal.SIGINT]
        if callable(signal.getsignal(signal.SIGUSR2)):  # submitit's time-limit handler is installed
            signals.append(signal.SIGUSR2)
        for signum in signals:
            self._previous[signum] = signal.signal(signum, self._request_stop)

    def _request_stop(self, signum: int, frame: Any) -> None:
        self.stop_requested = signum
        signal.signal(signum, self._previous[signum])  # a second Ctrl+C is not delayed
        log.info("%s: stopping after this batch and saving last.ckpt", signal.Signals(signum).name)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.stop_requested is None:
            return
        self._save(trainer)
        if self.stop_requested == signal.SIGUSR2:
            self._previous[signal.SIGUSR2](signal.SIGUSR2, None)  # submitit requeues the job and exits
        raise KeyboardInterrupt

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
        checkpoint = next((cb for cb in trainer.checkpoint_callbacks if isinstance(cb, lightning_callbacks.ModelCheckpoint)), None)
        if checkpoint is None or checkpoint.dirpath is None:
            return
        path = Path(checkpoint.dirpath) / f"{checkpoint.CHECKPOINT_NAME_LAST}{checkpoint.FILE_EXTENSION}"
        trainer.save_checkpoint(path)
        log.info("interrupted at epoch %d, step %d: saved %s", trainer.current_epoch, trainer.global_step, path)
