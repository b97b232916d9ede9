"""Mini-batches sliced straight from in-memory tensors.

The notebook slices ``X_train[i:i + batch_size]``. A per-sample ``TensorDataset`` +
``DataLoader`` gives the same batches but pays a Python ``__getitem__`` per row and a
collate per batch, which at batch 16 costs more than the MLP itself. This iterable keeps
the notebook's slicing, adds optional seeded shuffling, and shards batches across
distributed ranks itself (Lightning only injects a ``DistributedSampler`` into real
``DataLoader`` objects).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from torch import Tensor


class TensorBatches:
    """Iterate ``(x, y)`` batches of ``batch_size`` rows in order, or in a seeded permutation."""

    def __init__(
        self,
        x: Tensor,
        y: Tensor,
        batch_size: int,
        shuffle: bool = False,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        batches_done: Callable[[], int] | None = None,
    ) -> None:
        if len(x) != len(y):
            raise ValueError(f"x has {len(x)} rows but y has {len(y)}")
        self.x, self.y = x, y
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.rank, self.world_size = rank, world_size
        self.epoch = 0
        # Lightning inspects ``sampler``/``batch_sampler`` as on a DataLoader and calls
        # ``sampler.set_epoch(epoch)`` each epoch (the restored epoch after a resume), so
        # a shuffled, resumed run sees exactly the order an uninterrupted one would.
        self.sampler = self
        self.batch_sampler = None
        # How many of this epoch's batches were already trained when iteration starts: 0,
        # except when a run resumes from a checkpoint saved mid-epoch (Ctrl+C, SIGTERM).
        self.batches_done = batches_done or (lambda: 0)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _batch_starts(self) -> range:
        # Every rank gets the same number of batches, as DistributedSampler guarantees,
        # so no rank waits forever in a collective at the end of an epoch.
        starts = range(0, len(self.x), self.batch_size)
        per_rank = len(starts) // self.world_size if self.world_size > 1 else len(starts)
        return starts[self.rank :: self.world_size][:per_rank]

    def __len__(self) -> int:
        return len(self._batch_starts())

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        x, y = self.x, self.y
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed + self.epoch)
            order = torch.randperm(len(x), generator=generator).to(x.device)
            x, y = x[order], y[order]
        for start in self._batch_starts()[self.batches_done() :]:
            yield x[start : start + self.batch_size], y[start : start + self.batch_size]
