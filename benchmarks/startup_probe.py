"""A callback the benchmark adds to ``train.py`` to timestamp the first training step."""

import time

from lightning.pytorch import Callback


class FirstStepProbe(Callback):
    def __init__(self) -> None:
        self.seen = False

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:  # noqa: ANN001
        if not self.seen:
            self.seen = True
            print(f"FIRST_STEP_AT {time.time():.6f}", flush=True)
