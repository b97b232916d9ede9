"""Lightning callbacks of the template."""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
from lightning.pytorch import Callback
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities.exceptions import SIGTERMException

log = logging.getLogger(__name__)


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
