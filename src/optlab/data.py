"""The notebook's ``make_blobs`` data as a LightningDataModule."""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import torch
from sklearn.datasets import make_blobs
from torch import Tensor

from optlab.batches import TensorBatches
from optlab.errors import ConfigError
from optlab.validation import is_number, require_int


class BlobDataModule(L.LightningDataModule):
    """Binary blobs, split by row order: the first ``train_fraction`` trains, the rest is held out.

    The held-out rows serve as both validation and test set, as in the notebook, which
    calls them "test(validation)". Arguments keep ``make_blobs``'s names so a config reads
    like the notebook's call.
    """

    def __init__(
        self,
        n_samples: int = 5000,
        n_features: int = 64,
        centers: int = 2,
        cluster_std: float = 10.0,
        random_state: int = 2020,
        train_fraction: float = 0.8,
        batch_size: int = 16,
        eval_batch_size: int = 1000,
        shuffle: bool = False,
        shuffle_seed: int = 0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self._check_arguments()
        self._splits: dict[str, tuple[Tensor, Tensor]] = {}

    def _check_arguments(self) -> None:
        """Every argument that can be wrong, checked before any data is made (keys as in the config)."""
        hp = self.hparams
        for name in ("batch_size", "eval_batch_size", "n_features"):
            require_int(f"data.{name}", hp[name], minimum=1)
        require_int("data.n_samples", hp.n_samples, minimum=2)
        if hp.centers != 2 or isinstance(hp.centers, bool):
            raise ConfigError("data.centers", hp.centers, "expected 2: the model is a binary classifier")
        if not (is_number(hp.cluster_std) and math.isfinite(hp.cluster_std) and hp.cluster_std >= 0):
            raise ConfigError("data.cluster_std", hp.cluster_std, "expected a finite number >= 0")
        if not (is_number(hp.train_fraction) and 0 < hp.train_fraction < 1):
            raise ConfigError("data.train_fraction", hp.train_fraction, "expected a number strictly between 0 and 1")
        n_train = int(hp.n_samples * hp.train_fraction)
        if n_train < 1 or n_train >= hp.n_samples:
            raise ConfigError(
                "data.n_samples", hp.n_samples,
                f"too few rows to split with data.train_fraction={hp.train_fraction}: "
                "need at least one training and one held-out row",
            )
        if not isinstance(hp.shuffle, bool):
            raise ConfigError("data.shuffle", hp.shuffle, "expected true or false")

    @property
    def n_features(self) -> int:
        """Input width of the model: read from the data, not repeated in the model config."""
        return self.splits["train"][0].shape[1]

    @property
    def splits(self) -> dict[str, tuple[Tensor, Tensor]]:
        if not self._splits:
            self._splits = self._make_splits()
        return self._splits

    def _make_splits(self) -> dict[str, tuple[Tensor, Tensor]]:
        hp = self.hparams
        x, y = make_blobs(
            n_samples=hp.n_samples,
            centers=hp.centers,
            n_features=hp.n_features,
            cluster_std=hp.cluster_std,
            random_state=hp.random_state,
        )
        x = torch.from_numpy(x).float()
        y = torch.from_numpy(y.reshape(-1, 1)).float()
        n_train = int(hp.n_samples * hp.train_fraction)
        return {"train": (x[:n_train], y[:n_train]), "held_out": (x[n_train:], y[n_train:])}

    def setup(self, stage: str | None = None) -> None:
        self.splits  # build once; fit, validate and test reuse the same tensors

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
            x.to(device),
            y.to(device),
            batch_size,
            shuffle=shuffle,
            seed=self.hparams.shuffle_seed,
            rank=rank,
            world_size=world_size,
        )

    def transfer_batch_to_device(self, batch: Any, device: torch.device, dataloader_idx: int) -> Any:
        # Batches already sit on the device (see _batches); skip Lightning's generic walk
        # over the batch structure, which costs about as much as this model's forward pass.
        x, y = batch
        return x.to(device, non_blocking=True), y.to(device, non_blocking=True)

    def _held_out(self) -> TensorBatches:
        # Not sharded: every rank scores all held-out rows, so metrics need no gathering
        # and never depend on how many devices ran.
        return self._batches("held_out", self.hparams.eval_batch_size, shuffle=False, shard=False)

    def train_dataloader(self) -> TensorBatches:
        return self._batches("train", self.hparams.batch_size, self.hparams.shuffle, shard=True)

    def val_dataloader(self) -> TensorBatches:
        return self._held_out()

    def test_dataloader(self) -> TensorBatches:
        return self._held_out()
