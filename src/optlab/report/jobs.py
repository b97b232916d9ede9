"""A sweep as found on disk: its jobs, what tells them apart, and how to rank them.

Read only from what each job wrote (``.hydra/overrides.yaml``, ``metrics.jsonl``,
``result.json``), so any sweep can be read back, whichever launcher and loggers ran it and
however its jobs ended. The tables (:mod:`optlab.report.tables`) and the plot (:mod:`optlab.report.plot`)
both start from here.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import ListConfig, OmegaConf

from optlab.errors import first_line
from optlab.history import History, read_history, shown_by_default
from optlab.replicas.records import REPLICA_FILE, REPLICA_PREFIX
from optlab.results import UnreadableFile, read_result
from optlab.run_dir import claim_state

SEED_KEY = "seed"
REPLICAS_KEY = "replicas"


@dataclass
class Job:
    """One job of a sweep as found on disk."""

    path: Path
    number: int
    overrides: dict[str, str]
    status: str
    error: str = ""
    history: History = field(default_factory=History)
    fit_seconds: float | None = None
    steps_per_second: float | None = None
    trained_epochs: int | None = None  # from result.json
    run_dir: Path | None = None  # where Hydra's .hydra/ is: the job's own directory, or a replica's run

    @property
    def scalars(self) -> dict[str, list[float]]:
        """Each logged metric's values in the order the run logged them."""
        return {tag: self.history.values(tag) for tag in self.history.tags}

    @property
    def name(self) -> str:
        """The job's directory below the sweep: ``0_optimizer-adam``, or a replica's ``0_optimizer-adam/replica_03``."""
        if self.run_dir is not None and self.run_dir != self.path:
            return f"{self.run_dir.name}/{self.path.name}"
        return self.path.name

    def final(self, tag: str) -> float | None:
        values = self.scalars.get(tag)
        return values[-1] if values else None

    def best(self, tag: str, mode: str = "min") -> float | None:
        values = self.scalars.get(tag)
        if not values:
            return None
        return min(values) if mode == "min" else max(values)

    @property
    def epochs(self) -> int | None:
        """Epochs trained: what the run recorded, or for a run that never finished, the epochs its training logged."""
        if self.trained_epochs is not None:
            return self.trained_epochs
        epochs = {record.get("epoch") for record in self.history.stage_records("train")} - {None}
        return len(epochs) or None


# The order stages are shown in: what the run is judged by first, what it trained on last.
STAGE_ORDER = ("validate", "test", "train")


def logged_tags(jobs: Sequence[Job]) -> list[str]:
    """Every tag any job logged, in the order first seen."""
    return list(dict.fromkeys(tag for job in jobs for tag in job.history.tags))


def stage_of(jobs: Sequence[Job], tag: str) -> str | None:
    return next((stage for job in jobs if (stage := job.history.stage_of(tag)) is not None), None)


def default_metrics(jobs: Sequence[Job], first: str) -> list[str]:
    """Every metric the jobs logged, ``first`` (``optimized_metric``) first, then by stage (validation, test, training)."""
    tags = [tag for tag in logged_tags(jobs) if shown_by_default(tag) and tag != first]
    rank = {stage: index for index, stage in enumerate(STAGE_ORDER)}
    ordered = sorted(tags, key=lambda tag: rank.get(stage_of(jobs, tag) or "", len(rank)))
    return ([first] if first in logged_tags(jobs) else []) + ordered


Column = Callable[[Job], float | None]


def metric_columns(jobs: Sequence[Job], settings: ReportSettings) -> dict[str, Column]:
    """Column name -> how to read it from a job: the final value of each metric the sweep logged
    (or ``report.metrics``), the best of ``optimized_metric``, then epochs and timings.
    The same columns feed the CSV, the Markdown tables and the statistics of seed groups."""
    metrics = list(settings.metrics or default_metrics(jobs, settings.metric))
    columns: dict[str, Column] = {tag: (lambda job, tag=tag: job.final(tag)) for tag in metrics}
    mode = "min" if settings.direction == "minimize" else "max"
    columns[f"best {settings.metric}"] = lambda job: job.best(settings.metric, mode)
    columns["epochs"] = lambda job: job.epochs or None
    columns["fit_seconds"] = lambda job: job.fit_seconds
    columns["steps_per_second"] = lambda job: job.steps_per_second
    return columns


def parse_override(text: str) -> tuple[str, str]:
    key, _, value = text.partition("=")
    return key.lstrip("+~"), value


def read_overrides(run_dir: Path) -> dict[str, str]:
    """The job's overrides, from the ``.hydra/overrides.yaml`` Hydra wrote; :class:`UnreadableFile` if it is damaged."""
    try:
        items = OmegaConf.load(run_dir / ".hydra" / "overrides.yaml")
    except Exception as error:  # noqa: BLE001  (yaml's parser errors, a directory, bytes that are not text)
        raise UnreadableFile(f".hydra/overrides.yaml cannot be read ({first_line(error)})") from None
    if not isinstance(items, ListConfig):
        raise UnreadableFile(".hydra/overrides.yaml holds no list of overrides")
    return dict(parse_override(str(item)) for item in items)


def read_job(job_dir: Path, run_dir: Path | None = None, overrides: dict[str, str] | None = None) -> Job:
    """A job from what it wrote in ``job_dir``; a replica's overrides and config are its run's (``run_dir``)."""
    run_dir = run_dir or job_dir
    damaged = None
    if overrides is None:
        try:
            overrides = read_overrides(run_dir)
        except UnreadableFile as error:
            overrides, damaged = {}, str(error)
    prefix = run_dir.name.split("_", 1)[0]
    job = Job(
        path=job_dir,
        number=int(prefix) if prefix.isdigit() else -1,
        overrides=overrides,
        status="unfinished",
        history=read_history(job_dir),
        run_dir=run_dir,
    )
    if damaged:
        job.status, job.error = "unreadable", damaged
        return job
    try:
        # A replica that wrote no record of its own ended with its run: a divergence, a signal, takes all of them.
        result = read_result(job_dir) or (read_result(run_dir) if run_dir != job_dir else None)
    except UnreadableFile as error:
        job.status, job.error = "unreadable", str(error)
        return job
    if result is None:
        state = claim_state(run_dir)
        job.status = {"running": "running", "gone": "killed"}.get(state or "", "unfinished")
        job.error = {
            "running": "no result.json yet: its process is still running",
            "gone": "no result.json, and its process is gone: killed (SIGKILL: the out-of-memory killer, kill -9)",
        }.get(state or "", "no result.json: killed, or still running elsewhere")
    else:
        job.status, job.error = result.status, result.error
        job.fit_seconds, job.steps_per_second = result.fit_seconds, result.steps_per_second
        job.trained_epochs = result.epochs
    if job.history.problems and job.status == "ok":  # its numbers are not all there: say so rather than rank them
        more = f" (and {len(job.history.problems) - 1} more)" if len(job.history.problems) > 1 else ""
        job.status, job.error = "unreadable", job.history.problems[0] + more
    return job


def read_run(run_dir: Path) -> list[Job]:
    """A run as jobs: itself, or with ``replicas=K`` one job per replica, told apart by its seed."""
    replica_dirs = sorted(path.parent for path in run_dir.glob(f"{REPLICA_PREFIX}*/{REPLICA_FILE}"))
    try:
        overrides = read_overrides(run_dir)
    except UnreadableFile:
        return [read_job(run_dir)]  # one job, reported unreadable with the file and why
    if not replica_dirs:
        return [read_job(run_dir, overrides=overrides)]
    jobs = []
    for replica_dir in replica_dirs:
        seed = json.loads((replica_dir / REPLICA_FILE).read_text())["seed"]
        jobs.append(read_job(replica_dir, run_dir, {**overrides, SEED_KEY: str(seed)}))
    return jobs


def find_jobs(sweep_dir: Path) -> list[Job]:
    """Every job the sweep defined: those below it (Hydra writes ``.hydra/overrides.yaml`` before a job runs) and
    those that never started (from its ``multirun.yaml``); a run directory given instead of a sweep is one job,
    or its replicas."""
    if (sweep_dir / ".hydra" / "overrides.yaml").is_file():
        return read_run(sweep_dir)
    run_dirs = sorted({path.parent.parent for path in sweep_dir.glob("*/.hydra/overrides.yaml")})
    jobs = [job for run_dir in run_dirs for job in read_run(run_dir)]
    started = {job.number for job in jobs}
    jobs += [
        Job(
            path=sweep_dir / f"{number}_never_started",
            number=number,
            overrides=overrides,
            status="never started",
            error="the sweep stopped before this job started",
        )
        for number, overrides in defined_jobs(sweep_dir)
        if number not in started
    ]
    return sorted(jobs, key=lambda job: (job.number, job.path.parent.name if job.run_dir != job.path else "", job.path.name))


def defined_jobs(sweep_dir: Path) -> list[tuple[int, dict[str, str]]]:
    """The jobs a sweep defined, numbered as its launcher numbers them, from the ``multirun.yaml`` Hydra writes first.

    Hydra's basic sweeper runs the product of its sweeps in order (its ``params`` first, then the
    command line's, a later value of a key replacing an earlier one); a search (Optuna) defines
    ``n_trials`` jobs whose overrides are chosen as it goes.
    """
    path = sweep_dir / "multirun.yaml"
    if not path.is_file():
        return []
    hydra = OmegaConf.load(path).hydra
    sweeper = hydra.get("sweeper") or {}
    if not str(sweeper.get("_target_", "")).endswith("BasicSweeper"):
        return [(number, {}) for number in range(int(sweeper.get("n_trials") or 0))]
    from hydra.core.override_parser.overrides_parser import OverridesParser

    lines = [f"{key}={value}" for key, value in (sweeper.get("params") or {}).items()] + list(hydra.overrides.task)
    parsed = {override.key_or_group: override for override in OverridesParser.create().parse_overrides(lines)}
    choices = [
        [f"{override.get_key_element()}={value}" for value in override.sweep_string_iterator()]
        if override.is_sweep_override()
        else [override.input_line]
        for override in parsed.values()
    ]
    return [(number, dict(parse_override(item) for item in job)) for number, job in enumerate(itertools.product(*choices))]


def varying_keys(jobs: Sequence[Job]) -> list[str]:
    """Override keys whose value differs between jobs: what tells the jobs apart."""
    keys = sorted({key for job in jobs for key in job.overrides})
    return [key for key in keys if len({job.overrides.get(key) for job in jobs}) > 1]


def label(job: Job, keys: Sequence[str]) -> str:
    """The job's values of ``keys``; with nothing varying (one job), all its overrides."""
    shown = [key for key in keys if key in job.overrides] or list(job.overrides)
    return ",".join(f"{key}={job.overrides[key]}" for key in shown) or job.name


@dataclass
class Group:
    """Jobs that differ only by seed."""

    label: str
    jobs: list[Job]

    def values(self, column: Column) -> list[float]:
        """The column's values over the group's finished jobs."""
        return [v for job in self.jobs if job.status == "ok" and (v := column(job)) is not None]


def group_by_seed(jobs: Sequence[Job]) -> list[Group]:
    """Configurations: jobs that differ only in their seed, or in how many seeds a run trained (``replicas``)."""
    keys = [key for key in varying_keys(jobs) if key not in (SEED_KEY, REPLICAS_KEY)]
    groups: dict[str, Group] = {}
    for job in jobs:
        name = label(job, keys) if keys else "all jobs"
        groups.setdefault(name, Group(name, [])).jobs.append(job)
    return list(groups.values())


@dataclass
class ReportSettings:
    """How a sweep is ranked and shown: ``optimized_metric``, ``optimized_direction`` and ``report`` in the jobs' config."""

    metric: str = ""  # optimized_metric; a sweep read without its configs ranks by nothing
    direction: str = "minimize"
    metrics: tuple[str, ...] = ()  # empty: every metric the jobs logged
    panels: tuple[str, ...] = ()  # empty: the training and validation metrics

    def key(self, value: float | None) -> float:
        """Sort key: best first, missing values last."""
        if value is None:
            return float("inf")
        return value if self.direction == "minimize" else -value


def read_settings(jobs: Sequence[Job]) -> ReportSettings:
    """The settings from the first job's own resolved config."""
    for job in jobs:
        config_file = (job.run_dir or job.path) / ".hydra" / "config.yaml"
        if config_file.is_file():
            config = OmegaConf.load(config_file)
            return ReportSettings(
                metric=str(config.get("optimized_metric", "")),
                direction=str(config.get("optimized_direction", "minimize")),
                metrics=tuple(OmegaConf.select(config, "report.metrics") or ()),
                panels=tuple(OmegaConf.select(config, "report.panels") or ()),
            )
    return ReportSettings()
