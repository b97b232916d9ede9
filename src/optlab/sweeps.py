"""A sweep as found on disk: its jobs, what tells them apart, and how to rank them.

Read only from what each job wrote (``.hydra/overrides.yaml``, ``metrics.jsonl``,
``result.json``), so any sweep can be read back, whichever launcher and loggers ran it and
however its jobs ended. The report (:mod:`optlab.report`) and the plot (:mod:`optlab.plot`)
both start from here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import OmegaConf

from optlab.results import read_history, read_result

SEED_KEY = "seed"


@dataclass
class Job:
    """One job of a sweep as found on disk."""

    path: Path
    number: int
    overrides: dict[str, str]
    status: str
    error: str = ""
    scalars: dict[str, list[float]] = field(default_factory=dict)
    fit_seconds: float | None = None
    steps_per_second: float | None = None

    def final(self, tag: str) -> float | None:
        values = self.scalars.get(tag)
        return values[-1] if values else None

    def best(self, tag: str, mode: str = "min") -> float | None:
        values = self.scalars.get(tag)
        if not values:
            return None
        return min(values) if mode == "min" else max(values)

    @property
    def epochs(self) -> int:
        return len(self.scalars.get("train/loss_epoch", []))


# Column name -> how to read it from a job. The same columns feed the CSV, the Markdown
# tables and the mean ± std of seed groups.
METRIC_COLUMNS: dict[str, Callable[[Job], float | None]] = {
    "final_train_loss": lambda job: job.final("train/loss_epoch"),
    "best_val_loss": lambda job: job.best("val/loss"),
    "final_val_acc": lambda job: job.final("val/acc"),
    "test_acc": lambda job: job.final("test/acc"),
    "test_loss": lambda job: job.final("test/loss"),
    "epochs": lambda job: job.epochs or None,
    "fit_seconds": lambda job: job.fit_seconds,
    "steps_per_second": lambda job: job.steps_per_second,
}


def read_scalars(run_dir: Path) -> dict[str, list[float]]:
    """Each tag's values in the order the run logged them (its ``metrics.jsonl``, whatever its loggers)."""
    return {tag: [value for _, value in points] for tag, points in read_history(run_dir).items()}


def parse_override(text: str) -> tuple[str, str]:
    key, _, value = text.partition("=")
    return key.lstrip("+~"), value


def read_job(job_dir: Path) -> Job:
    overrides = dict(parse_override(item) for item in OmegaConf.load(job_dir / ".hydra" / "overrides.yaml"))
    number = int(job_dir.name.split("_", 1)[0]) if job_dir.name.split("_", 1)[0].isdigit() else -1
    result = read_result(job_dir)
    job = Job(path=job_dir, number=number, overrides=overrides, status="failed", scalars=read_scalars(job_dir))
    if result is None:
        job.error = "no result.json: the job was stopped before it finished"
    else:
        job.status, job.error = result.status, result.error
        job.fit_seconds, job.steps_per_second = result.fit_seconds, result.steps_per_second
    return job


def find_jobs(sweep_dir: Path) -> list[Job]:
    """Every job directory below the sweep (Hydra writes ``.hydra/overrides.yaml`` before a job runs)."""
    job_dirs = sorted({path.parent.parent for path in sweep_dir.glob("*/.hydra/overrides.yaml")})
    return sorted((read_job(job_dir) for job_dir in job_dirs), key=lambda job: (job.number, job.path.name))


def varying_keys(jobs: Sequence[Job]) -> list[str]:
    """Override keys whose value differs between jobs: what tells the jobs apart."""
    keys = sorted({key for job in jobs for key in job.overrides})
    return [key for key in keys if len({job.overrides.get(key) for job in jobs}) > 1]


def label(job: Job, keys: Sequence[str]) -> str:
    """The job's values of ``keys``; with nothing varying (one job), all its overrides."""
    shown = [key for key in keys if key in job.overrides] or list(job.overrides)
    return ",".join(f"{key}={job.overrides[key]}" for key in shown) or job.path.name


@dataclass
class Group:
    """Jobs that differ only by seed."""

    label: str
    jobs: list[Job]

    def values(self, column: str) -> list[float]:
        return [v for job in self.jobs if job.status == "ok" and (v := METRIC_COLUMNS[column](job)) is not None]


def group_by_seed(jobs: Sequence[Job]) -> list[Group]:
    keys = [key for key in varying_keys(jobs) if key != SEED_KEY]
    groups: dict[str, Group] = {}
    for job in jobs:
        name = label(job, keys) if keys else "all jobs"
        groups.setdefault(name, Group(name, [])).jobs.append(job)
    return list(groups.values())


@dataclass
class Ranking:
    metric: str = "val/loss"
    direction: str = "minimize"

    def key(self, value: float | None) -> float:
        if value is None:
            return float("inf")
        return value if self.direction == "minimize" else -value


def sweep_ranking(jobs: Sequence[Job]) -> Ranking:
    """``optimized_metric`` and ``optimized_direction`` from the jobs' own resolved config."""
    for job in jobs:
        config_file = job.path / ".hydra" / "config.yaml"
        if config_file.is_file():
            config = OmegaConf.load(config_file)
            return Ranking(
                metric=str(config.get("optimized_metric", "val/loss")),
                direction=str(config.get("optimized_direction", "minimize")),
            )
    return Ranking()
