"""A test callback: sends a real signal to its own process at a chosen optimizer step.

Passed to ``train.py`` as ``+callbacks.signal._target_=signal_at_step.SignalAtStep``, so a
test interrupts a run at a known batch instead of sleeping and hoping.
"""

from __future__ import annotations

import os
import signal
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer


class SignalAtStep(Callback):
    def __init__(self, step: int, signum: str = "SIGTERM") -> None:
        self.step = step
        self.signum = signal.Signals[signum]
        self.sent = False

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        if not self.sent and trainer.global_step == self.step:
            self.sent = True
            os.kill(os.getpid(), self.signum)
