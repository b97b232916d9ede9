"""Test callbacks that interrupt a run at a chosen optimizer step: a real signal, a SLURM requeue, a kill.

Passed to ``train.py`` as ``+callbacks.signal._target_=signal_at_step.SignalAtStep``, so a
test interrupts a run at a known batch instead of sleeping and hoping.
"""

from __future__ import annotations

import os
import signal
import subprocess
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


class SlurmEventAtStep(Callback):
    """At a chosen step, what befalls jobs on a cluster: ``requeue`` (as preemption does, first attempt only),
    ``kill`` (SIGKILL, as the out-of-memory killer does), or ``none``."""

    def __init__(self, kind: str, step: int) -> None:
        self.kind, self.step = kind, step

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        if trainer.global_step != self.step:
            return
        if self.kind == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        if self.kind == "requeue" and os.environ.get("SLURM_RESTART_COUNT", "0") in ("", "0"):
            subprocess.run(["scontrol", "requeue", os.environ["SLURM_JOB_ID"]], check=True)
