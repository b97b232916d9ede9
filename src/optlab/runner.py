"""Running a task from the command line: the one path every run and sweep job ends through.

:func:`run_task` checks the config, runs the task, records the outcome in ``result.json``
and decides the exit status, for a single run and for a sweep job, whichever launcher runs
it. A :class:`~optlab.errors.UserError` (a bad config value, a checkpoint that does not
fit, a diverged run) ends a single run with its one-line message and exit status 1; in a
sweep the job is recorded as failed and the sweep goes on, lists it in its report and exits
non-zero at the end. ``HYDRA_FULL_ERROR=1`` shows the full traceback instead. Any other
exception is a bug: it is recorded too, and raised with its traceback.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from omegaconf import DictConfig

from optlab.errors import Interrupted, OutputDirInUse, UserError
from optlab.hydra_context import in_sweep, launched_rank
from optlab.results import RunResult, last_line, write_result

log = logging.getLogger(__name__)


Task = Callable[[DictConfig], RunResult]


def run_task(task: Task, cfg: DictConfig, checks: Callable[[DictConfig], None]) -> float:
    """Run ``task`` through :func:`execute`, returning its objective (what a sweeper optimises); a user error
    becomes one log line and the exit status."""
    try:
        result = execute(task, cfg, checks)
        return result.metrics.get(result.objective or "", float("nan"))
    except UserError as error:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        log.error("%s", error)
        if isinstance(error, Interrupted) and os.environ.get("SUBMITIT_EXECUTOR") == "slurm":
            # SLURM's SIGTERM: the job is requeued (its next attempt resumes from last.ckpt) or
            # cancelled. Exit without a result, so submitit does not take this attempt for the job's end.
            logging.shutdown()
            os._exit(128 + signal.SIGTERM)
        if in_sweep():
            return float("nan")  # the job's result.json says failed; the sweep ends non-zero
        sys.exit(1)


def execute(task: Task, cfg: DictConfig, checks: Callable[[DictConfig], None]) -> RunResult:
    """Check ``cfg``, run ``task`` and record its outcome; failures are recorded, then raised."""
    output_dir = Path(cfg.paths.output_dir)
    try:
        checks(cfg)
        result = task(cfg)
    except OutputDirInUse:  # that directory is another run's: nothing is written there
        raise
    except BaseException as error:  # a user error, a bug, or Ctrl+C outside training
        record(output_dir, RunResult(status="failed", error=last_line(error)))
        raise
    record(output_dir, result)
    return result


def record(output_dir: Path, result: RunResult) -> None:
    """``result.json``, written by rank 0 only: DDP's other ranks share its directory."""
    if launched_rank() == 0:
        write_result(output_dir, result)
