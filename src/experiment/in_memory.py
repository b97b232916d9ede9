"""What every data module of the template shares: in-memory splits served as ready batches."""

from __future__ import annotations

import lightning as L
import torch
from torch import Tensor

from experiment.batches import TensorBatches
from optlab.errors import InvalidArgument, is_number, require_int

Split = tuple[Tensor, Tensor]  # features (n, n_features) float32, labels (n, 1) float32 in {0, 1}


class InMemoryDataModule(L.LightningDataModule):
    """A binary-classification data set small enough to keep whole on the device.

    Subclasses implement :meth:`make_splits`, returning ``{"train": ..., "held_out": ...}``.
    The held-out rows serve as both validation and test set, as in the notebook, which
    calls them "test(validation)". With ``val_fraction`` > 0 the last rows of the training
    split validate instead, and the held-out rows only test: what is chosen on validation
    (a learning rate, a checkpoint) is then never chosen on the test rows.
    """

    def __init__(
        self,
        batch_size: int = 16,
        eval_batch_size: int = 1000,
        shuffle: bool = False,
        shuffle_seed: int = 0,
        val_fraction: float = 0.0,
    ) -> None:
        super().__init__()
        require_int("batch_size", batch_size, minimum=1)
        require_int("eval_batch_size", eval_batch_size, minimum=1)
        if not isinstance(shuffle, bool):
            raise InvalidArgument("shuffle", shuffle, "expected true or false")
        if not (is_number(val_fraction) and 0 <= val_fraction < 1):
            raise InvalidArgument(
                "val_fraction", val_fraction, "expected a number from 0 (the held-out rows validate) to below 1"
            )
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.shuffle, self.shuffle_seed = shuffle, shuffle_seed
        self.val_fraction = val_fraction
        self._splits: dict[str, Split] = {}

    def make_splits(self) -> dict[str, Split]:
        raise NotImplementedError

    @property
    def splits(self) -> dict[str, Split]:
        if not self._splits:
            self._splits = self.make_splits()
            x, y = self._splits["train"]
            n_val = int(len(x) * self.val_fraction)
            if n_val:
                self._splits["train"], self._splits["val"] = (x[:-n_val], y[:-n_val]), (x[-n_val:], y[-n_val:])
        return self._splits

    @property
    def n_features(self) -> int:
        """Columns of the feature matrix."""
        return self.splits["train"][0].shape[1]

    @property
    def input_size(self) -> int:
        """The model's input width: the task hands it to a model that declares ``input_size``."""
        return self.n_features

    @property
    def n_train(self) -> int:
        """Rows in the training split."""
        return len(self.splits["train"][0])

    def setup(self, stage: str | None = None) -> None:
        _ = self.splits  # built once; fit, validate and test reuse the same tensors

    def _batches(self, split: str, batch_size: int, shuffle: bool, shard: bool) -> TensorBatches:
        x, y = self.splits[split]
        rank, world_size, device = 0, 1, torch.device("cpu")
        if self.trainer is not None:
            # Keep the whole (small) split on the accelerator: one copy per run instead
            # of a host-to-device transfer per step.
            device = self.trainer.strategy.root_device
            if shard:
                rank, world_size = self.trainer.global_rank, self.trainer.world_size
        return TensorBatches(
            x.to(device), y.to(device), batch_size, shuffle=shuffle, seed=self.shuffle_seed, rank=rank, world_size=world_size
        )

    def _held_out(self) -> TensorBatches:
        # Not sharded: every rank scores all held-out rows, so the metrics never depend
        # on how many devices ran.
        return self._batches("held_out", self.eval_batch_size, shuffle=False, shard=False)

    def train_dataloader(self) -> TensorBatches:
        return self._batches("train", self.batch_size, self.shuffle, shard=True)

    def val_dataloader(self) -> TensorBatches:
        if "val" in self.splits:
            return self._batches("val", self.eval_batch_size, shuffle=False, shard=False)
        return self._held_out()

    def test_dataloader(self) -> TensorBatches:
        return self._held_out()


def check_train_fraction(train_fraction: float, n_samples: int) -> None:
    if not (is_number(train_fraction) and 0 < train_fraction < 1):
        raise InvalidArgument("train_fraction", train_fraction, "expected a number strictly between 0 and 1")
    n_train = int(n_samples * train_fraction)
    if n_train < 1 or n_train >= n_samples:
        raise InvalidArgument(
            "n_samples",
            n_samples,
            f"too few rows to split with train_fraction={train_fraction}: need at least one training and one held-out row",
        )
