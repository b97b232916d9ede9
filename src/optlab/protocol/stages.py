"""Running the protocol's configurations through the configured launcher, and reading back what each seed gave.

A job that a stopped run of the protocol already finished is not trained again: its directory
(found by its overrides) is read instead. A job that never finished is launched again, under a
new number; its old directory stays as it is. A configuration trained as replicas whose job
diverged (one replica's NaN stops them all) is trained again one job per seed, so that each
seed's own outcome is known.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path

from omegaconf import OmegaConf

from optlab.protocol.plan import Run, Task, jobs_of
from optlab.report.jobs import Job, parse_override, read_run
from optlab.results import UnreadableFile, read_result

log = logging.getLogger(__name__)

# How a job that ran to its end can end: training it again would end the same way.
FINAL = ("ok", "diverged", "did not learn", "failed")
Launch = Callable[[list[list[str]], int], object]  # the launcher's ``launch(batch, initial_job_idx)``


def job_key(overrides: Sequence[str]) -> tuple[str, ...]:
    return tuple(sorted(overrides))


class Stages:
    """The protocol's jobs on disk: launch what is missing, reuse what is done."""

    def __init__(
        self,
        sweep_dir: Path,
        launch: Launch,
        defaults: Mapping[str, Sequence[str]],
        common: Sequence[str],
        as_replicas: Collection[tuple[Task, str]],
    ) -> None:
        """``as_replicas``: the (task, optimizer) pairs whose seeds train together; the others' seeds one job each."""
        self.sweep_dir, self.launch, self.defaults = sweep_dir, launch, defaults
        self.common, self.as_replicas = list(common), set(as_replicas)
        self.done: dict[tuple[str, ...], Path] = {}
        self.next_number = 0
        self._index()

    def _index(self) -> None:
        """The jobs already in the sweep directory: the newest finished one for each set of overrides."""
        for overrides_file in sorted(self.sweep_dir.glob("*/.hydra/overrides.yaml")):
            job_dir = overrides_file.parent.parent
            number = job_dir.name.split("_", 1)[0]
            if number.isdigit():
                self.next_number = max(self.next_number, int(number) + 1)
            try:
                result = read_result(job_dir)
            except UnreadableFile:
                continue
            if result is not None and result.status in FINAL:
                self.done[job_key(OmegaConf.load(overrides_file))] = job_dir

    def train(self, runs: Sequence[Run]) -> dict[Run, list[Job]]:
        """Each run's seeds as jobs read back (replicas expanded), training what is not on disk yet."""
        planned = {run: jobs_of(run, self.defaults, (run.task, run.optimizer) in self.as_replicas) for run in runs}
        self._launch([job for jobs in planned.values() for job in jobs])
        outcomes = {run: self._read(jobs) for run, jobs in planned.items()}
        retry = {
            run: jobs_of(run, self.defaults, as_replicas=False)
            for run, seeds in outcomes.items()
            if len(planned[run]) == 1 and run.seeds > 1 and any(job.status == "diverged" for job in seeds)
        }
        if retry:
            log.info("%d configurations diverged as replicas: training their seeds one job each", len(retry))
            self._launch([job for jobs in retry.values() for job in jobs])
            outcomes |= {run: self._read(jobs) for run, jobs in retry.items()}
        return outcomes

    def _launch(self, jobs: list[list[str]]) -> None:
        wanted = {job_key([*self.common, *job]): [*self.common, *job] for job in jobs}  # a job planned twice trains once
        missing = [job for key, job in wanted.items() if key not in self.done]
        if len(missing) < len(wanted):
            log.info("%d of %d jobs finished in an earlier attempt: reused", len(wanted) - len(missing), len(wanted))
        if not missing:
            return
        first = self.next_number
        self.next_number += len(missing)
        self.launch(missing, first)
        for number, job in enumerate(missing, start=first):
            job_dir = next(iter(self.sweep_dir.glob(f"{number}_*")), None)
            if job_dir is not None:
                self.done[job_key(job)] = job_dir

    def _read(self, jobs: list[list[str]]) -> list[Job]:
        """Every seed of the jobs; a job with no directory (the launcher could not start it) is one failed seed."""
        seeds: list[Job] = []
        for job in jobs:
            job_dir = self.done.get(job_key([*self.common, *job]))
            if job_dir is None:
                overrides = dict(parse_override(item) for item in job)
                seeds.append(
                    Job(
                        path=self.sweep_dir / "not_started",
                        number=-1,
                        overrides=overrides,
                        status="failed",
                        error="the launcher started no job",
                    )
                )
                continue
            seeds += read_run(job_dir)
        return seeds
