"""``trainer.profiler``'s default, ``NoProfiler``: a speed measure, kept here apart from the code it speeds up.

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

_NOTHING = nullcontext()


class NoProfiler(PassThroughProfiler):
    """Lightning's default ``PassThroughProfiler`` without its per-call generator.

    Lightning wraps every hook call in ``trainer.profiler.profile(name)``; the stock
    pass-through builds a ``@contextmanager`` generator each time. One shared
    ``nullcontext`` does the same nothing. ``trainer.profiler=simple`` still profiles.
    """

    def profile(self, action_name: str) -> AbstractContextManager[None]:  # type: ignore[override]
        return _NOTHING
