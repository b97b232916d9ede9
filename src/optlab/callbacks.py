"""Lightning callbacks of the template."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch import Callback
from lightning.pytorch.callbacks import ModelCheckpoint, RichProgressBar
from lightning.pytorch.utilities.exceptions import SIGTERMException

log = logging.getLogger(__name__)


class ThrottledRichProgressBar(RichProgressBar):
    """Lightning's rich progress bar, updated at most ``refresh_rate`` times per second.

    The stock bar does its bookkeeping (metrics, task update) on every batch; at this
    model's few hundred steps per second that costs more than it shows. Here a batch that
    comes sooner than 1 / refresh_rate after the last update is skipped.
    """

    def __init__(self, refresh_rate: int = 4, **kwargs: Any) -> None:
        super().__init__(refresh_rate=refresh_rate, **kwargs)
        self._next_update = 0.0

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        now = time.monotonic()
        if now < self._next_update and batch_idx + 1 < self.total_train_batches:
            return
        self._next_update = now + 1.0 / max(self.refresh_rate, 1)
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)


class CheckpointOnInterrupt(Callback):
    """On Ctrl+C (SIGINT) or SIGTERM, save the current state as ``checkpoints/last.ckpt``.

    ``ckpt_path=.../last.ckpt`` then resumes from where the run stopped, not from the end
    of the last finished epoch. Other exceptions (a crash, a diverged run) save nothing:
    their state is not worth resuming from, and the previous ``last.ckpt`` stays intact.
    """

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if not isinstance(exception, KeyboardInterrupt | SIGTERMException) or trainer.world_size > 1:
            return  # under DDP the other ranks may not reach a save's barrier
        checkpoint = next((cb for cb in trainer.checkpoint_callbacks if isinstance(cb, ModelCheckpoint)), None)
        if checkpoint is None or checkpoint.dirpath is None:
            return
        path = Path(checkpoint.dirpath) / f"{checkpoint.CHECKPOINT_NAME_LAST}{checkpoint.FILE_EXTENSION}"
        trainer.save_checkpoint(path)
        log.info("interrupted at epoch %d, step %d: saved %s", trainer.current_epoch, trainer.global_step, path)
