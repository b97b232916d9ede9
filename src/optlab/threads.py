"""CPU threads per run, so parallel sweep jobs share the cores instead of fighting over them.

Three jobs that each keep torch's default of one thread per core, on a two-core machine,
ran 5x slower than the same jobs one after another; with one thread each they ran faster.
"""

from __future__ import annotations

import os

import torch
from hydra.core.hydra_config import HydraConfig
from hydra_plugins.optlab_launcher.parallel_launcher import CONCURRENT_JOBS_ENV


def parallel_jobs() -> int:
    """How many jobs the Hydra launcher runs at once (1 for a single run or the basic launcher)."""
    told = os.environ.get(CONCURRENT_JOBS_ENV, "")  # set by hydra/launcher=parallel in each job
    if told.isdigit():
        return max(1, int(told))
    if not HydraConfig.initialized():
        return 1
    n_jobs = HydraConfig.get().launcher.get("n_jobs")
    if not n_jobs:
        return 1
    cores = os.cpu_count() or 1
    return cores if n_jobs < 0 else min(n_jobs, cores)  # joblib: -1 means one job per core


def set_threads(num_threads: int | None) -> int:
    """Use ``num_threads`` if given, else the cores divided among the parallel jobs."""
    if num_threads is None:
        jobs = parallel_jobs()
        if jobs == 1:
            return torch.get_num_threads()
        num_threads = max(1, (os.cpu_count() or 1) // jobs)
    torch.set_num_threads(num_threads)
    return num_threads
