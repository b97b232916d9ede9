"""Mini-batches sliced straight from in-memory tensors, resumable mid-epoch.

The notebook slices ``X_train[i:i + batch_size]``; this iterable keeps that slicing, so the
batches are the notebook's exactly, adds optional seeded shuffling, and shards batches
across distributed ranks itself (Lightning only injects a ``DistributedSampler`` into real
``DataLoader`` objects). It is not there for speed: ``make bench`` measured a
``DataLoader`` over the same rows no slower at this size.

It is *stateful* in Lightning's sense: ``state_dict`` / ``load_state_dict`` record which
epoch it is in and how many batches of it were served. Lightning stores that state in
every checkpoint and restores it on resume, so a run stopped mid-epoch continues with the
next unseen batch, exactly as if it had never stopped.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor


class TensorBatches:
    """Iterate ``(x, y)`` batches of ``batch_size`` rows in order, or in a seeded permutation per epoch."""

    def __init__(
        self,
        x: Tensor,
        y: Tensor,
        batch_size: int,
        shuffle: bool = False,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if len(x) != len(y):
            raise ValueError(f"x has {len(x)} rows but y has {len(y)}")
        self.x, self.y = x, y
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.rank, self.world_size = rank, world_size
        self.epoch = 0  # the current pass over the data, counted from 0
        self.served = 0  # batches of the current pass handed out so far
        self._started = False
        self._resume = False  # load_state_dict was called: the next pass continues the saved one

    def _batch_starts(self) -> range:
        # Every rank gets the same number of batches, as DistributedSampler guarantees,
        # so no rank waits forever in a collective at the end of an epoch.
        starts = range(0, len(self.x), self.batch_size)
        per_rank = len(starts) // self.world_size
        return starts[self.rank :: self.world_size][:per_rank]

    def __len__(self) -> int:
        return len(self._batch_starts())

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        # A generator: nothing changes until the first batch is asked for, so an ``iter()``
        # that only checks the object is iterable (Lightning does one) starts no epoch.
        if self._resume:
            self._resume = False
            if self.served >= len(self):  # saved at the end of a pass: go on with the next one
                self.epoch, self.served = self.epoch + 1, 0
        else:
            self.epoch, self.served = (self.epoch + 1 if self._started else 0), 0
        self._started = True
        x, y = self.x, self.y
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed + self.epoch)
            order = torch.randperm(len(x), generator=generator).to(x.device)
            x, y = x[order], y[order]
        for start in self._batch_starts()[self.served :]:
            self.served += 1
            yield x[start : start + self.batch_size], y[start : start + self.batch_size]

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "served": self.served}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch, self.served = int(state["epoch"]), int(state["served"])
        self._started = self._resume = True
