"""The speed measures this template keeps, each a drop-in for a Lightning class.

Lightning does bookkeeping around every hook call, a hundred or so per training step. At
this model's size (a step is a couple of milliseconds on a CPU) some of it costs more than
it does. Each measure here replaces one piece through Lightning's public extension points
(a profiler passed to the Trainer, a callback subclass), changes no number a run produces,
and is named in the configs, so removing it is one override. ``make bench`` prints what
each one saves (``benchmarks/bench_train.py``, the ablation table).
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from functools import cached_property

from lightning.pytorch import callbacks
from lightning.pytorch.profilers import PassThroughProfiler

_NOTHING = nullcontext()


class NoProfiler(PassThroughProfiler):
    """Lightning's default ``PassThroughProfiler`` without its per-call generator.

    Lightning wraps every hook call in ``trainer.profiler.profile(name)``; the stock
    pass-through builds a ``@contextmanager`` generator each time. One shared
    ``nullcontext`` does the same nothing. ``trainer.profiler=simple`` still profiles.
    """

    def profile(self, action_name: str) -> AbstractContextManager[None]:  # type: ignore[override]
        return _NOTHING


class ModelCheckpoint(callbacks.ModelCheckpoint):
    """Lightning's ``ModelCheckpoint`` with its state key built once instead of at every hook call.

    Lightning formats each callback's ``state_key`` for every hook it calls; the stock
    checkpoint builds it from a ``repr`` of its settings, which do not change after
    ``__init__``. Same class name, so the key, and the checkpoints it writes, stay exactly
    Lightning's.
    """

    @cached_property
    def state_key(self) -> str:
        return super().state_key
