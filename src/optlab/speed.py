"""The speed measures this template keeps outside the idiomatic code.

Lightning wraps each of the hundred or so hook calls of a training step in its profiler. At
this model's size (a step is a couple of milliseconds on a CPU) the stock no-op profiler
costs more than it should. The measure goes in through a public extension point (the
Trainer's ``profiler`` argument, set in ``configs/trainer/default.yaml``), changes no number
a run produces, and is removed with one override (``trainer.profiler=null``). ``make bench``
prints what it saves next to the other measures (``benchmarks/bench_train.py``, the
ablation table); measures that saved under 2 % were removed.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

from lightning.pytorch.profilers import PassThroughProfiler
from torch import Tensor

_NOTHING = nullcontext()


class NoProfiler(PassThroughProfiler):
    """Lightning's default ``PassThroughProfiler`` without its per-call generator.

    Lightning wraps every hook call in ``trainer.profiler.profile(name)``; the stock
    pass-through builds a ``@contextmanager`` generator each time. One shared
    ``nullcontext`` does the same nothing. ``trainer.profiler=simple`` still profiles.
    """

    def profile(self, action_name: str) -> AbstractContextManager[None]:  # type: ignore[override]
        return _NOTHING


# Replicas (optlab.replicas) stack each weight matrix of K models into one [K, out, in]
# tensor, and vmap turns each nn.Linear into a batched matmul of the inputs with its
# transpose. Stored [K, in, out] and handed to the model as the transposed view, the
# matmuls of the forward and backward read and write the weights contiguously: on this
# model at K=10 the vectorised step's forward and backward took 7.4 ms instead of 11 on two
# cores. Element-wise optimizers do not care about the layout; checkpoints record it.


def stored_layout(stacked: Tensor, transposed: bool) -> Tensor:
    """A stacked parameter as it is kept: matrices ``[K, out, in]`` as ``[K, in, out]`` with ``transposed``."""
    return stacked.transpose(1, 2).contiguous() if transposed and stacked.dim() == 3 else stacked.clone()


def module_layout(stored: Tensor, transposed: bool) -> Tensor:
    """The stored parameter in the model's own layout (a view, no copy)."""
    return stored.transpose(1, 2) if transposed and stored.dim() == 3 else stored
