"""Hydra callback that keeps a sweep's report current: after each job and at the sweep's end.

Rebuilding after every job (not only at the end) is what makes the report appear for
sweeps with a failed job: Hydra skips ``on_multirun_end`` when a job raised. With a
parallel launcher several jobs may finish at once, so rebuilds take a lock on the sweep
directory; the last one reads every job's files.
"""

from __future__ import annotations

import fcntl
import logging
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig

log = logging.getLogger(__name__)


def rebuild_report(sweep_dir: Path) -> None:
    from optlab.report import build_report

    try:
        with (sweep_dir / ".report.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            build_report(sweep_dir)
    except Exception as error:  # a report must never turn a finished job into a failed one
        log.warning("could not write the sweep report in %s: %s", sweep_dir, error)


class SweepReport(Callback):
    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
            rebuild_report(Path(config.hydra.sweep.dir))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        rebuild_report(sweep_dir)
        log.info("sweep report: %s (summary.md, summary.csv)", sweep_dir / "comparison.png")
