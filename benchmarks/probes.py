"""Callbacks the benchmark adds to the configured ones: first-step timestamp, epoch timer."""

import time

from lightning.pytorch import Callback


class FirstStepProbe(Callback):
    def __init__(self) -> None:
        self.seen = False

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:  # noqa: ANN001
        if not self.seen:
            self.seen = True
            print(f"FIRST_STEP_AT {time.time():.6f}", flush=True)


class EpochTimer(Callback):
    """Wall time of each training epoch, its validation and checkpointing included."""

    last: "EpochTimer | None" = None  # the benchmark reads the timer that the config built

    def __init__(self) -> None:
        self.started: float | None = None
        self.epoch_seconds: list[float] = []
        EpochTimer.last = self

    def on_train_epoch_start(self, trainer, pl_module) -> None:  # noqa: ANN001
        now = time.perf_counter()
        if self.started is not None:
            self.epoch_seconds.append(now - self.started)
        self.started = now

    def on_fit_end(self, trainer, pl_module) -> None:  # noqa: ANN001
        # The last epoch ends when fit does: after its validation and checkpoint.
        if self.started is not None:
            self.epoch_seconds.append(time.perf_counter() - self.started)


from optlab.data import BlobDataModule  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402


class DataLoaderBlobs(BlobDataModule):
    """The same batches through a per-sample ``TensorDataset`` + ``DataLoader``: the ablation's baseline."""

    def train_dataloader(self) -> DataLoader:
        x, y = self.splits["train"]
        return DataLoader(TensorDataset(x, y), batch_size=self.batch_size, shuffle=False)

    def val_dataloader(self) -> DataLoader:
        x, y = self.splits["held_out"]
        return DataLoader(TensorDataset(x, y), batch_size=self.eval_batch_size)

    test_dataloader = val_dataloader
