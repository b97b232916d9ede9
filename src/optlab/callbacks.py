"""Lightning callbacks of the template."""

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
    """On Ctrl+C (SIGINT) or SIGTERM, finish the current batch, then save ``checkpoints/last.ckpt``.

    ``ckpt_path=.../last.ckpt`` then resumes from where the run stopped, not from the end
    of the last finished epoch. The save waits for the batch to end so that the weights,
    optimizer state and loop counters agree (a KeyboardInterrupt can land mid-step); a
    second Ctrl+C interrupts at once. Other exceptions (a crash, a diverged run) save
    nothing: their state is not worth resuming from, and the previous ``last.ckpt`` stays.
    """

    def __init__(self) -> None:
        self.stop_requested = False
        self._previous_handler: Any = None

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.world_size == 1 and threading.current_thread() is threading.main_thread():
            self._previous_handler = signal.signal(signal.SIGINT, self._request_stop)

    def _request_stop(self, signum: int, frame: Any) -> None:
        self.stop_requested = True
        signal.signal(signal.SIGINT, self._previous_handler)  # a second Ctrl+C is not delayed
        log.info("Ctrl+C: stopping after this batch and saving last.ckpt (press again to stop at once)")

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.stop_requested:
            self._save(trainer)
            raise KeyboardInterrupt

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        # Lightning raises SIGTERMException only between batches, so the state is consistent.
        if isinstance(exception, SIGTERMException) and trainer.world_size == 1:
            self._save(trainer)

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self._previous_handler is not None and not self.stop_requested:
            signal.signal(signal.SIGINT, self._previous_handler)
        self._previous_handler = None

    def _save(self, trainer: L.Trainer) -> None:
        checkpoint = next((cb for cb in trainer.checkpoint_callbacks if isinstance(cb, lightning_callbacks.ModelCheckpoint)), None)
        if checkpoint is None or checkpoint.dirpath is None:
            return
        path = Path(checkpoint.dirpath) / f"{checkpoint.CHECKPOINT_NAME_LAST}{checkpoint.FILE_EXTENSION}"
        trainer.save_checkpoint(path)
        log.info("interrupted at epoch %d, step %d: saved %s", trainer.current_epoch, trainer.global_step, path)
