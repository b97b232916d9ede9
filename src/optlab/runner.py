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
import threading
from collections.abc import Callable
from pathlib import Path

from omegaconf import DictConfig

from optlab.errors import Interrupted, OutputDirInUse, UserError, machine_error, stop_now
from optlab.hydra_context import in_sweep, launched_rank
from optlab.results import RunResult, last_line, write_result

log = logging.getLogger(__name__)


Task = Callable[[DictConfig], RunResult]


def run_task(task: Task, cfg: DictConfig, checks: Callable[[DictConfig], None]) -> float:
    """Run ``task`` through :func:`execute`, returning its objective (what a sweeper optimises); a user error
    becomes one log line and the exit status."""
    try:
        result = execute(task, cfg, checks)
        if result.status != "ok" and not in_sweep():
            sys.exit(1)
        return result.metrics.get(result.objective or "", float("nan"))
    except UserError as error:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        log.error("%s", error)
        if isinstance(error, Interrupted):
            if os.environ.get("SUBMITIT_EXECUTOR") == "slurm":
                # SLURM's SIGTERM: the job is requeued (its next attempt resumes from last.ckpt) or cancelled.
                # Exit without a result, so submitit does not take this attempt for the job's end.
                logging.shutdown()
                os._exit(128 + signal.SIGTERM)
            raise SystemExit(error.exit_status) from None  # a stopped run stops its sweep too
        if in_sweep():
            return float("nan")  # the job's result.json says failed; the sweep ends non-zero
        sys.exit(1)


# Signals that stop a run, each as Ctrl+C does: SIGTERM is Lightning's to handle while it trains.
STOP_SIGNALS = (signal.SIGINT, signal.SIGHUP)


def execute(task: Task, cfg: DictConfig, checks: Callable[[DictConfig], None]) -> RunResult:
    """Check ``cfg``, run ``task`` and record its outcome; failures are recorded, then raised.

    Ctrl+C and a dropped terminal (SIGHUP) interrupt the task wherever it is; while it trains,
    the ``CheckpointOnInterrupt`` callback lets the batch finish and saves ``last.ckpt`` first.
    What the machine refuses (a full disk, memory) is one line naming the cause and the path.
    """
    output_dir = Path(cfg.paths.output_dir)
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = {signum: signal.signal(signum, stop_now) for signum in STOP_SIGNALS} if in_main_thread else {}
    try:
        checks(cfg)
        result = task(cfg)
    except OutputDirInUse:  # that directory is another run's: nothing is written there
        raise
    except UserError as error:
        record(output_dir, RunResult(status=error.status, error=str(error)))
        raise
    except KeyboardInterrupt as error:  # a SIGINT that arrived where no handler of ours was set
        interrupted = Interrupted(signal.SIGINT)
        record(output_dir, RunResult(status="interrupted", error=str(interrupted)))
        raise interrupted from error
    except BaseException as error:  # a bug, or what the machine refused
        if machine := machine_error(error):
            record(output_dir, RunResult(status="failed", error=str(machine)))
            raise machine from error
        record(output_dir, RunResult(status="failed", error=last_line(error)))
        raise
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    record(output_dir, result)
    if result.status != "ok":  # it finished, but is no result: say why, as for an error
        log.error("%s", result.error)
    return result


def record(output_dir: Path, result: RunResult) -> None:
    """``result.json``, written by rank 0 only (DDP's other ranks share its directory); a disk too full for it is one line."""
    if launched_rank() != 0:
        return
    try:
        write_result(output_dir, result)
    except OSError as error:
        log.warning("could not write %s: %s", output_dir / "result.json", error.strerror or error)
