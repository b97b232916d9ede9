"""The notebook's ``make_blobs`` data."""

from __future__ import annotations

import math

import torch
from sklearn.datasets import make_blobs

from experiment.in_memory import InMemoryDataModule, Split, check_train_fraction
from optlab.errors import InvalidArgument, is_int, is_number, require_int


class BlobDataModule(InMemoryDataModule):
    """Binary blobs, split by row order: the first ``train_fraction`` trains, the rest is held out.

    Arguments keep ``make_blobs``'s names so a config reads like the notebook's call.
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
        val_fraction: float = 0.0,
    ) -> None:
        super().__init__(batch_size, eval_batch_size, shuffle, shuffle_seed, val_fraction)
        self.save_hyperparameters()
        self._check_arguments()

    def _check_arguments(self) -> None:
        """Every argument that can be wrong, checked before any data is made (keys as in the config)."""
        hp = self.hparams
        require_int("n_features", hp.n_features, minimum=1)
        require_int("n_samples", hp.n_samples, minimum=2)
        if not (is_int(hp.centers) and hp.centers == 2):
            raise InvalidArgument("centers", hp.centers, "expected 2: the model is a binary classifier")
        if not (is_number(hp.cluster_std) and math.isfinite(hp.cluster_std) and hp.cluster_std >= 0):
            raise InvalidArgument("cluster_std", hp.cluster_std, "expected a finite number >= 0")
        check_train_fraction(hp.train_fraction, hp.n_samples)

    def make_splits(self) -> dict[str, Split]:
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
