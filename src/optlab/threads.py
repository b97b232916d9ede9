"""CPU threads per run, so parallel sweep jobs share the cores instead of fighting over them.

Three jobs that each keep torch's default of one thread per core, on a two-core machine,
ran 5x slower than the same jobs one after another; with one thread each they ran faster.
A job also gets only the cores it may run on: the process's CPU affinity, which SLURM
(task/affinity) and ``taskset`` set, not every core of the machine.
"""

from __future__ import annotations

import os
from typing import Any

from optlab.errors import is_int

# Set by hydra/launcher=parallel in each job: how many jobs run at once.
CONCURRENT_JOBS_ENV = "OPTLAB_CONCURRENT_JOBS"


def available_cores() -> int:
    """Cores this process may run on: its CPU affinity where the system has one, SLURM's allotment, else all."""
    if hasattr(os, "sched_getaffinity"):
        cores = len(os.sched_getaffinity(0))
    else:
        cores = os.cpu_count() or 1
    allotted = os.environ.get("SLURM_CPUS_PER_TASK", "")
    if allotted.isdigit():
        cores = min(cores, int(allotted))
    return max(1, cores)


def parallel_jobs() -> int:
    """How many jobs the Hydra launcher runs at once on these cores (1 for a single run or the basic launcher)."""
    told = os.environ.get(CONCURRENT_JOBS_ENV, "")
    if told.isdigit():
        return max(1, int(told))
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return 1
    n_jobs = HydraConfig.get().launcher.get("n_jobs")
    if not n_jobs:
        return 1
    cores = available_cores()
    return cores if n_jobs < 0 else min(n_jobs, cores)  # joblib: -1 means one job per core


def set_threads(num_threads: int | None) -> int:
    """``num_threads`` if given, else ``OMP_NUM_THREADS`` if set, else this process's cores divided among the parallel jobs."""
    import torch  # here, not at the top: the launcher process reads the cores without importing torch

    if num_threads is None and os.environ.get("OMP_NUM_THREADS", "").isdigit():
        num_threads = max(1, int(os.environ["OMP_NUM_THREADS"]))
    if num_threads is None:
        num_threads = max(1, available_cores() // parallel_jobs())
    torch.set_num_threads(num_threads)
    return num_threads


# hydra/launcher=parallel: how many jobs run at once.
JOBS_PER_CORE = 2  # the most jobs at once per core with n_jobs=-1


def concurrent_jobs(n_jobs: int, n_sweep_jobs: int, cores: int) -> int:
    """Jobs to run at once: ``n_jobs``, or for -1 all of them up to two per core; never more than there are."""
    wanted = JOBS_PER_CORE * cores if n_jobs == -1 else n_jobs
    return max(1, min(wanted, n_sweep_jobs))


def n_jobs_problem(n_jobs: Any) -> str | None:
    """Why ``n_jobs`` is not a number of jobs to run at once, or None."""
    if not is_int(n_jobs) or n_jobs == 0 or n_jobs < -1:
        return f"hydra.launcher.n_jobs={n_jobs} is not valid: expected a positive number of jobs, or -1 for up to two per core"
    return None
