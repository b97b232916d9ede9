"""The sweep report: ``comparison.png``, ``summary.csv`` and ``summary.md`` in a sweep directory.

Everything is read back from what the jobs wrote (``.hydra/overrides.yaml``,
``metrics.jsonl``, ``result.json``), so a report can be rebuilt for any sweep, whichever
launcher and loggers ran it and however its jobs ended::

    python -m optlab.report logs/multiruns/<date>_<time>
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
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
    return ",".join(f"{key}={job.overrides[key]}" for key in keys if key in job.overrides) or job.path.name


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


def format_number(value: float | None) -> str:
    if value is None:
        return ""
    if float(value).is_integer() and abs(value) < 1e6:
        return str(int(value))
    return f"{value:.4g}"


def mean_std(values: Sequence[float]) -> str:
    if not values:
        return ""
    if len(values) == 1:
        return format_number(values[0])
    return f"{format_number(statistics.fmean(values))} ± {format_number(statistics.stdev(values))}"


def write_csv(jobs: Sequence[Job], path: Path) -> None:
    with path.open("w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["job", "overrides", "status", *METRIC_COLUMNS, "error"])
        for job in jobs:
            overrides = ",".join(f"{key}={value}" for key, value in job.overrides.items())
            values = [METRIC_COLUMNS[column](job) for column in METRIC_COLUMNS]
            writer.writerow([job.path.name, overrides, job.status, *("" if v is None else repr(v) for v in values), job.error])


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return lines


def text_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Columns padded to their widest cell, for the console."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows)]
    return ["  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip() for row in [header, *rows]]


# The columns the console table keeps (the files have them all).
CONSOLE_COLUMNS = ("final_train_loss", "best_val_loss", "final_val_acc", "test_acc", "fit_seconds")


@dataclass
class Tables:
    """A sweep's summary: one row per job, best first, and mean ± std per seed group when seeds repeat."""

    heading: str
    groups: tuple[list[str], list[list[str]]] | None
    jobs: tuple[list[str], list[list[str]]]


def summary_tables(jobs: Sequence[Job], groups: Sequence[Group], ranking: Ranking, columns: Sequence[str]) -> Tables:
    def rank_value(job: Job) -> float | None:
        return job.final(ranking.metric) if job.status == "ok" else None

    ordered = sorted(jobs, key=lambda job: (job.status != "ok", ranking.key(rank_value(job))))
    keys = varying_keys(jobs)
    failed = sum(job.status != "ok" for job in jobs)
    better = "lower" if ranking.direction == "minimize" else "higher"
    heading = f"{len(jobs)} jobs, {len(jobs) - failed} ok, {failed} failed. Best first by `{ranking.metric}` ({better} is better)."
    group_table = None
    if any(len(group.jobs) > 1 for group in groups):
        group_metric = {
            group.label: statistics.fmean(vals) if (vals := [v for j in group.jobs if (v := rank_value(j)) is not None]) else None
            for group in groups
        }
        ordered_groups = sorted(groups, key=lambda group: ranking.key(group_metric[group.label]))
        group_table = (
            ["configuration", "seeds ok", *columns],
            [[group.label, str(len(group.values("epochs")))] + [mean_std(group.values(column)) for column in columns]
             for group in ordered_groups],
        )
    job_table = (
        ["job", "overrides", "status", *columns, "error"],
        [[str(job.number), label(job, keys), job.status] + [format_number(METRIC_COLUMNS[column](job)) for column in columns]
         + [job.error] for job in ordered],
    )
    return Tables(heading, group_table, job_table)


def write_markdown(sweep_dir: Path, tables: Tables, path: Path) -> None:
    lines = [f"# Sweep {sweep_dir.name}", "", tables.heading, ""]
    if tables.groups:
        lines += ["## Mean ± std over seeds", "", *markdown_table(*tables.groups), ""]
    lines += ["## Jobs", "", *markdown_table(*tables.jobs)]
    path.write_text("\n".join(lines) + "\n")


def console_summary(jobs: Sequence[Job], sweep_dir: Path) -> str:
    """The sweep's table as the console shows it when the sweep ends, then where to look further."""
    from optlab.console import relative, tensorboard_command

    tables = summary_tables(jobs, group_by_seed(jobs), sweep_ranking(jobs), CONSOLE_COLUMNS)
    lines = ["", f"sweep {relative(sweep_dir)}: {tables.heading.replace('`', '')}"]
    if tables.groups:
        lines += ["", "mean ± std over seeds:", *text_table(*tables.groups), "", "jobs:"]
    header, rows = tables.jobs
    if not any(row[-1] for row in rows):  # no job failed: no error column
        header, rows = header[:-1], [row[:-1] for row in rows]
    lines += [*text_table(header, rows), ""]
    lines += [f"plot      {relative(sweep_dir / 'comparison.png')}",
              f"table     {relative(sweep_dir / 'summary.md')} (all columns: summary.csv)",
              f"look      {tensorboard_command(sweep_dir)}"]
    return "\n".join(lines)


def build_report(sweep_dir: Path) -> list[Job]:
    """Write comparison.png, summary.csv and summary.md into ``sweep_dir``; return the jobs found."""
    from optlab.plot import plot_comparison

    sweep_dir = Path(sweep_dir)
    jobs = find_jobs(sweep_dir)
    if not jobs:
        raise FileNotFoundError(f"no job directories (*/.hydra/overrides.yaml) under {sweep_dir}")
    groups = group_by_seed(jobs)
    write_csv(jobs, sweep_dir / "summary.csv")
    write_markdown(sweep_dir, summary_tables(jobs, groups, sweep_ranking(jobs), list(METRIC_COLUMNS)), sweep_dir / "summary.md")
    plot_comparison(groups, sweep_dir / "comparison.png", title=f"Sweep {sweep_dir.name}")
    return jobs


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Rebuild the report of a sweep directory.")
    parser.add_argument("sweep_dirs", nargs="+", type=Path, help="e.g. logs/multiruns/<date>_<time>")
    args = parser.parse_args(argv)
    for sweep_dir in args.sweep_dirs:
        if not sweep_dir.is_dir():
            print(f"error: sweep_dir {sweep_dir} is not a directory", file=sys.stderr)
            return 2
        try:
            jobs = build_report(sweep_dir)
        except FileNotFoundError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        print(f"{sweep_dir}: {len(jobs)} jobs -> comparison.png, summary.csv, summary.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
