"""What the benchmark adds to the configured run: a first-step timestamp, the ablation's DataLoader baseline."""

import time

from lightning.pytorch import Callback
from torch.utils.data import DataLoader, TensorDataset

from experiment.blobs import BlobDataModule


class FirstStepProbe(Callback):
    def __init__(self) -> None:
        self.seen = False

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:  # noqa: ANN001
        if not self.seen:
            self.seen = True
            print(f"FIRST_STEP_AT {time.time():.6f}", flush=True)


class DataLoaderBlobs(BlobDataModule):
    """The same batches through a per-sample ``TensorDataset`` + ``DataLoader``: the ablation's baseline."""

    def train_dataloader(self) -> DataLoader:
        x, y = self.splits["train"]
        return DataLoader(TensorDataset(x, y), batch_size=self.batch_size, shuffle=False)

    def val_dataloader(self) -> DataLoader:
        x, y = self.splits["held_out"]
        return DataLoader(TensorDataset(x, y), batch_size=self.eval_batch_size)

    test_dataloader = val_dataloader
