"""``hydra/launcher=slurm``: Hydra's submitit SLURM launcher that sees a sweep through to its end.

Hydra's launcher collects the jobs' results in order and stops at the first job that
produced none (killed outright, out of memory, a lost node), so the sweep ends in a
traceback, without its report, while later jobs may still run. This one waits for every
job: a job without a result is logged in one line with what SLURM said, and the sweep goes
on to its report, which lists that job as failed (it wrote no ``result.json``), and exits
non-zero. A request the cluster cannot meet (more CPUs, memory or GPUs than it has) is
refused by ``sbatch`` at submission: that is one line and exit status 1, not a hang.

A job's state comes from SLURM's accounting (``sacct``) where the cluster keeps it, and
from ``squeue`` where it does not (``_slurm_states``): either way a job killed outright is
reported failed within a minute, and the sweep does not wait for it forever.
"""

from __future__ import annotations

import logging
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from omegaconf import OmegaConf

from hydra_plugins.hydra_submitit_launcher import submitit_launcher
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
from hydra_plugins.optlab_launcher._slurm_states import SlurmStateJob
from optlab.results import RESULT_FILE, RunResult, write_result

log = logging.getLogger(__name__)


def last_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__


class SlurmLauncher(submitit_launcher.SlurmLauncher):
    def _executor(self) -> Any:
        import submitit

        params = dict(self.params)
        executor = submitit.AutoExecutor(
            cluster="slurm", folder=params.pop("submitit_folder"), slurm_max_num_timeout=params.pop("max_num_timeout", 0)
        )
        shared = set(OmegaConf.structured(BaseQueueConf).keys())  # submitit's own names; the rest are sbatch's
        executor.update_parameters(**{key if key in shared else f"slurm_{key}": value for key, value in params.items()})
        return executor

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        assert self.config is not None
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        log.info("Submitting %d jobs to SLURM; sweep output dir: %s", len(job_overrides), sweep_dir)
        arguments = []
        for number, overrides in enumerate(job_overrides, start=initial_job_idx):
            log.info("\t#%d : %s", number, " ".join(filter_overrides(overrides)))
            arguments.append((list(overrides), "hydra.sweep.dir", number, f"job_id_for_{number}", Singleton.get_state()))
        try:
            executor = self._executor()
            submitted = executor.map_array(self, *zip(*arguments))
        except Exception as error:  # noqa: BLE001  (sbatch refused the request: say why, in one line)
            log.error(
                "SLURM refused the jobs: %s (see hydra.launcher.cpus_per_task, mem_gb, gpus_per_node, partition)",
                last_line(error),
            )
            sys.exit(1)
        # The same jobs, their states asked of sacct or, without accounting, of squeue.
        jobs = [SlurmStateJob(folder=executor.folder, job_id=job.job_id, tasks=range(job.num_tasks)) for job in submitted]
        log.info("SLURM jobs: %s", " ".join(str(job.job_id) for job in jobs))
        return [self._outcome(job, number, overrides) for job, (overrides, _, number, _, _) in zip(jobs, arguments)]

    def _outcome(self, job: Any, number: int, overrides: list[str]) -> JobReturn:
        try:
            return job.results()[0]
        except Exception as error:  # noqa: BLE001  (no result came back: the job died where it could not report)
            log.error(
                "SLURM job %s (#%d: %s) ended without a result (SLURM: %s): %s",
                job.job_id,
                number,
                " ".join(overrides),
                job.state,
                last_line(error),
            )
            # Recorded, not raised: its result.json says what SLURM saw, the report lists it and the sweep exits 1.
            self._record_death(number, f"ended without a result (SLURM: {job.state})")
            result = JobReturn(overrides=overrides, status=JobStatus.COMPLETED)
            result.return_value = math.nan
            return result

    def _record_death(self, number: int, message: str) -> None:
        """``result.json`` for a job that started and could not write one (killed outright, out of memory, a lost node)."""
        assert self.config is not None
        job_dirs = list(Path(str(self.config.hydra.sweep.dir)).glob(f"{number}_*"))
        if len(job_dirs) == 1 and not (job_dirs[0] / RESULT_FILE).is_file():
            write_result(job_dirs[0], RunResult(status="killed", error=message))
