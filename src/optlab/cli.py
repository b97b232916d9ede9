"""Running a task from the command line: user errors as one line, not a traceback.

A :class:`~optlab.errors.UserError` (bad config value, diverged training, unsafe
checkpoint) ends a single run with its message and exit status 1. Inside a sweep the job
is recorded as failed and the sweep goes on; the sweep report lists it and the sweep
exits non-zero at the end. ``HYDRA_FULL_ERROR=1`` shows the full traceback instead.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from optlab.errors import UserError

log = logging.getLogger(__name__)


def in_sweep() -> bool:
    """Whether this process runs a job of a Hydra multirun (-m) sweep."""
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def run_task(task: Callable[[DictConfig], float], cfg: DictConfig) -> float:
    try:
        return task(cfg)
    except UserError as error:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        log.error("%s", error)
        if in_sweep():
            return float("nan")  # the job's result.json says failed; the sweep ends non-zero
        sys.exit(1)
