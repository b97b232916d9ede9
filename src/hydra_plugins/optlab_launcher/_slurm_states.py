"""A SLURM job's state for submitit, with or without SLURM's accounting.

submitit asks ``sacct`` (SLURM's accounting database, slurmdbd) for the state of its jobs
and treats a job it cannot find as not finished. On a cluster without accounting, as many
small ones are (a lab's few nodes, a cloud image), ``sacct`` answers "Slurm accounting
storage is disabled" for every job: a job that dies where it cannot write its result (killed
outright, out of memory, a lost node) stays UNKNOWN and the sweep waits for it forever.

``SlurmStateJob`` asks ``sacct`` as submitit does, and ``squeue`` for the jobs it says
nothing about. slurmctld keeps a finished job, with its end state (COMPLETED, FAILED,
CANCELLED, OUT_OF_MEMORY, ...), for ``MinJobAge`` seconds (300 by default) after it ended;
a job that it no longer knows at all has ended before that (``ENDED``). Where the cluster
keeps accounting, ``sacct`` answers and nothing changes. The state is asked at most every
30 s once jobs run (submitit: up to every 10 minutes), for all of a sweep's jobs at once.

Kept out of ``slurm_launcher``: Hydra's plugin scan re-executes every module under
``hydra_plugins`` whose name does not start with ``_``, which would make a second watcher.
"""

from __future__ import annotations

import logging
import subprocess
import time
from typing import Any

from submitit.slurm.slurm import SlurmInfoWatcher, SlurmJob

log = logging.getLogger(__name__)

ENDED = "ENDED"  # no longer known to slurmctld: finished more than MinJobAge ago
# States in which a job may still run or run again. submitit's list, plus those it does not
# name (it would take a suspended or configuring job as finished).
NOT_FINISHED = {
    "READY",
    "PENDING",
    "RUNNING",
    "UNKNOWN",
    "REQUEUED",
    "COMPLETING",
    "PREEMPTED",
    "CONFIGURING",
    "REQUEUE_FED",
    "REQUEUE_HOLD",
    "RESIZING",
    "RESV_DEL_HOLD",
    "SIGNALING",
    "SPECIAL_EXIT",
    "STAGE_OUT",
    "STOPPED",
    "SUSPENDED",
}
QUERY_TIMEOUT_S = 60


def _run(command: list[str]) -> subprocess.CompletedProcess[str] | None:
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=QUERY_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        log.warning("%s: %s; the jobs' states may lag", command[0], error)
        return None


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "no output")


class SlurmStateWatcher(SlurmInfoWatcher):
    """submitit's SLURM watcher, with ``squeue`` where ``sacct`` knows nothing of a job."""

    def __init__(self, delay_s: int = 30) -> None:
        super().__init__(delay_s=delay_s)
        self.accounting: bool | None = None  # None until sacct has answered once

    def is_done(self, job_id: str, mode: str = "standard") -> bool:
        return self.get_state(job_id, mode=mode).split()[0].upper() not in NOT_FINISHED  # "CANCELLED by 0"

    def update(self) -> None:
        """The state of every job still running: one ``sacct`` call, one ``squeue`` call for the jobs it left out."""
        running = self._registered - self._finished
        if not running:
            return
        self._num_calls += 1
        answered = self._ask_sacct() if self.accounting is not False else set()
        if running - answered:
            self._ask_squeue(running - answered)
        self._last_status_check = time.time()
        for job in running:
            if self.is_done(job, mode="cache"):
                self._finished.add(job)

    def _ask_sacct(self) -> set[str]:
        """Ask sacct about the running jobs; the jobs it answered for."""
        command = self._make_command()
        done = _run(command) if command else None
        if done is None:
            return set()
        if done.returncode == 0:
            self.accounting = True
            info = self.read_info(done.stdout)
            self._info_dict.update(info)
            return set(info)
        if "accounting storage is disabled" in done.stderr.lower():
            self.accounting = False
            log.info("SLURM keeps no accounting here (sacct: %s): job states come from squeue", _first_line(done.stderr))
        else:
            log.warning("sacct failed (%s); asking squeue", _first_line(done.stderr))
        return set()

    def _ask_squeue(self, jobs: set[str]) -> None:
        array_ids = sorted({job.split("_")[0] for job in jobs})
        done = _run(["squeue", "--noheader", "--states=all", "--format=%i|%T", f"--jobs={','.join(array_ids)}"])
        if done is None:
            return
        if done.returncode != 0 and "invalid job id" not in done.stderr.lower():  # that one: none of them is known
            log.warning("squeue failed (%s); the jobs' states may lag", _first_line(done.stderr))
            return
        info: dict[str, dict[str, Any]] = self.read_info("JobID|State\n" + (done.stdout if done.returncode == 0 else ""))
        for job in jobs:
            self._info_dict[job] = info.get(job) or {"JobID": job, "State": ENDED}


class SlurmStateJob(SlurmJob):
    """A submitted SLURM job whose state comes from ``SlurmStateWatcher``: re-attach a submitted
    job with ``SlurmStateJob(folder=executor.folder, job_id=job.job_id, tasks=range(job.num_tasks))``."""

    watcher = SlurmStateWatcher()
