"""The sweep report's tables: ``summary.csv``, ``summary.md``, ``groups.csv`` and the console's closing screen."""

from __future__ import annotations

import csv
import math
import statistics
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from optlab.console import look_commands, plural, relative
from optlab.report.jobs import (
    Column,
    Group,
    Job,
    ReportSettings,
    find_jobs,
    group_by_seed,
    label,
    metric_columns,
    read_settings,
    varying_keys,
)
from optlab.uncertainty import SIGNIFICANCE, Comparison, Summary, compare_all, summarise


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


def write_csv(jobs: Sequence[Job], columns: Mapping[str, Column], path: Path) -> None:
    with path.open("w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["job", "overrides", "status", *columns, "error"])
        for job in jobs:
            overrides = ",".join(f"{key}={value}" for key, value in job.overrides.items())
            values = [read(job) for read in columns.values()]
            writer.writerow([job.name, overrides, job.status, *("" if v is None else repr(v) for v in values), job.error])


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return lines


def text_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Columns padded to their widest cell, for the console."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows)]
    return ["  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip() for row in [header, *rows]]


# Columns the console table leaves to the files (summary.md, summary.csv).
FILE_ONLY_COLUMNS = ("epochs", "steps_per_second")
CONSOLE_WIDTH = 80  # the console's tables drop their last columns to fit; the files keep them all


def fit_to_width(header: Sequence[str], rows: Sequence[Sequence[str]], keep: int) -> tuple[list[str], list[list[str]]]:
    """The table without as many of its last columns (never the first ``keep``) as it takes to fit the console."""
    header, rows = list(header), [list(row) for row in rows]
    while len(header) > keep and max(len(line) for line in text_table(header, rows)) > CONSOLE_WIDTH:
        header, rows = header[:-1], [row[:-1] for row in rows]
    return header, rows


def console_columns(
    header: Sequence[str], rows: Sequence[Sequence[str]], names: Sequence[str]
) -> tuple[list[str], list[list[str]]]:
    """Only the columns at the first occurrence of each of ``names``, in that order."""
    indices = [list(header).index(name) for name in names if name in header]
    return [header[i] for i in indices], [[row[i] for i in indices] for row in rows]


@dataclass
class Tables:
    """A sweep's summary: one row per job, best first, and per configuration its statistics over seeds."""

    heading: str
    groups: tuple[list[str], list[list[str]]] | None
    jobs: tuple[list[str], list[list[str]]]


def interval(summary: Summary | None) -> str:
    if summary is None or summary.low is None or summary.high is None:
        return ""
    return f"[{format_number(summary.low)}, {format_number(summary.high)}]"


SIGNIFICANCE_NOTE = (
    f"seeds: the configuration's jobs and replicas; diverged: how many of them diverged (the means, spreads and "
    f"intervals are over the seeds that finished). Holm p: Welch's t-test of the final `{{metric}}` against the best "
    f"configuration's, Holm-corrected over every pair of configurations; * marks p < {SIGNIFICANCE}. P(better): the "
    "chance that one of its seeds beats one of the best's, a diverged seed the worst. CI: 95 % percentile bootstrap "
    "interval of the mean."
)


def pairwise(groups: Sequence[Group], final: Column, settings: ReportSettings) -> dict[tuple[str, str], Comparison]:
    """Every pair of configurations on the final ``optimized_metric``, a diverged seed ``nan`` (the worst)."""
    samples = {
        group.label: [
            final(job) if job.status == "ok" and final(job) is not None else math.nan
            for job in group.jobs
            if job.status in ("ok", "diverged", "did not learn")
        ]
        for group in groups
    }
    comparisons = compare_all(samples, settings.direction == "minimize")
    return {(c.first, c.second): c for c in comparisons} | {(c.second, c.first): flipped(c) for c in comparisons}


def flipped(comparison: Comparison) -> Comparison:
    better = None if comparison.better is None else 1 - comparison.better
    effect = None if comparison.effect is None else -comparison.effect
    return Comparison(comparison.second, comparison.first, comparison.p_value, comparison.adjusted, effect, better)


def against_best(comparison: Comparison | None) -> list[str]:
    if comparison is None:
        return ["", ""]
    adjusted = "n/a" if comparison.adjusted is None else f"{comparison.adjusted:.3g}" + (" *" if comparison.significant else "")
    return [adjusted, "" if comparison.better is None else f"{comparison.better:.2f}"]


def comparison_table(
    groups: Sequence[Group], settings: ReportSettings, columns: Mapping[str, Column], every_column: bool
) -> tuple[list[str], list[list[str]]]:
    """Per configuration, best first: its seeds and how many diverged, the final and best ``optimized_metric`` with
    their spread and interval, and how it compares with the best configuration (Holm over all pairs);
    with ``every_column``, the other columns' mean ± std too."""
    final = columns.get(settings.metric) or (lambda job: job.final(settings.metric))
    best = columns[f"best {settings.metric}"]
    finals = {group.label: group.values(final) for group in groups}
    ordered = sorted(groups, key=lambda group: settings.key(summarise(finals[group.label]).mean if finals[group.label] else None))
    pairs = pairwise(groups, final, settings)
    metric = settings.metric
    header = [
        "configuration",
        "seeds",
        "diverged",
        f"{metric} mean",
        "std",
        "95% CI",
        f"best {metric} mean",
        "std",
        "95% CI",
        "Holm p vs best",
        "P(better than best)",
    ]
    others = [name for name in columns if name not in (metric, f"best {metric}")] if every_column else []
    header += others
    rows = []
    for rank, group in enumerate(ordered):
        cells = [group.label, str(len(group.jobs)), str(sum(job.status == "diverged" for job in group.jobs))]
        for values in (finals[group.label], group.values(best)):
            summary = summarise(values)
            cells += [
                format_number(summary.mean) if summary else "",
                format_number(summary.std) if summary else "",
                interval(summary),
            ]
        cells += ["best", ""] if rank == 0 else against_best(pairs.get((group.label, ordered[0].label)))
        cells += [mean_std(group.values(columns[name])) for name in others]
        rows.append(cells)
    return header, rows


# How a job ended, in the order a reader wants to know: what finished, what went wrong, what never ran.
STATUS_ORDER = ("ok", "failed", "interrupted", "killed", "unreadable", "unfinished", "running", "never started")


def status_counts(jobs: Sequence[Job]) -> str:
    """``2 ok, 1 killed, 1 never started``: every status some job has, ok always."""
    counts = {status: sum(job.status == status for job in jobs) for status in STATUS_ORDER}
    counts |= {job.status: sum(other.status == job.status for other in jobs) for job in jobs if job.status not in counts}
    return ", ".join(f"{count} {status}" for status, count in counts.items() if count or status == "ok")


def closing_line(jobs: Sequence[Job], sweep_dir: Path) -> str:
    """The console's last line: what happened to the sweep, in one line."""
    return f"sweep {relative(sweep_dir)}: {plural(len(jobs), 'job')}, {status_counts(jobs)}"


def summary_tables(
    jobs: Sequence[Job],
    groups: Sequence[Group],
    settings: ReportSettings,
    columns: Mapping[str, Column],
    every_column: bool = True,
) -> Tables:
    def rank_value(job: Job) -> float | None:
        return job.final(settings.metric) if job.status == "ok" else None

    ordered = sorted(jobs, key=lambda job: (job.status != "ok", settings.key(rank_value(job))))
    keys = varying_keys([job for job in jobs if job.overrides])  # a search's never-started trials have none yet
    better = "lower" if settings.direction == "minimize" else "higher"
    replicas = [job for job in jobs if job.run_dir not in (None, job.path)]  # seeds a run trained together
    counted = plural(len(jobs), "job")
    if replicas:
        some = "" if len(replicas) == len(jobs) else f"{len(replicas)} of them "
        counted += f" ({some}replicas of {plural(len({job.run_dir for job in replicas}), 'run')})"
    heading = f"{counted}, {status_counts(jobs)}. Best first by `{settings.metric}` ({better} is better)."
    group_table = comparison_table(groups, settings, columns, every_column) if any(len(g.jobs) > 1 for g in groups) else None
    job_table = (
        ["job", "overrides", "status", *columns, "error"],
        [
            [str(job.number), label(job, keys), job.status]
            + [format_number(read(job)) for read in columns.values()]
            + [job.error]
            for job in ordered
        ],
    )
    return Tables(heading, group_table, job_table)


def write_markdown(sweep_dir: Path, tables: Tables, metric: str, path: Path) -> None:
    lines = [f"# Sweep {sweep_dir.name}", "", tables.heading, ""]
    if tables.groups:
        lines += [
            "## Over seeds, per configuration",
            "",
            SIGNIFICANCE_NOTE.format(metric=metric),
            "",
            *markdown_table(*tables.groups),
            "",
        ]
    lines += ["## Jobs", "", *markdown_table(*tables.jobs)]
    path.write_text("\n".join(lines) + "\n")


def write_groups_csv(groups: Sequence[Group], columns: Mapping[str, Column], settings: ReportSettings, path: Path) -> None:
    """Every column's statistics per configuration, unrounded: mean, std, 95 % interval, and p against the best."""
    final = columns.get(settings.metric) or (lambda job: job.final(settings.metric))
    finals = {group.label: group.values(final) for group in groups}
    best = min(
        (group for group in groups if finals[group.label]),
        default=None,
        key=lambda group: settings.key(statistics.fmean(finals[group.label])),
    )
    pairs = pairwise(groups, final, settings)
    with path.open("w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(
            [
                "configuration",
                "column",
                "n",
                "diverged",
                "mean",
                "std",
                "ci95_low",
                "ci95_high",
                "p_vs_best",
                "holm_p_vs_best",
                "p_better_than_best",
            ]
        )
        for group in groups:
            diverged = sum(job.status == "diverged" for job in group.jobs)
            for name, read in columns.items():
                summary = summarise(group.values(read))
                if summary is None:
                    continue
                against = pairs.get((group.label, best.label)) if name == settings.metric and best is not None else None
                writer.writerow(
                    [
                        group.label,
                        name,
                        summary.n,
                        diverged,
                        repr(summary.mean),
                        *("" if v is None else repr(v) for v in (summary.std, summary.low, summary.high)),
                        *(
                            "" if v is None else repr(v)
                            for v in ((against.p_value, against.adjusted, against.better) if against else (None,) * 3)
                        ),
                    ]
                )


def console_summary(jobs: Sequence[Job], sweep_dir: Path, loggers: Mapping[str, Any] | None) -> str:
    """The sweep's table as the console shows it when the sweep ends, then where to look further."""
    settings = read_settings(jobs)
    columns = {name: read for name, read in metric_columns(jobs, settings).items() if name not in FILE_ONLY_COLUMNS}
    tables = summary_tables(jobs, group_by_seed(jobs), settings, columns, every_column=False)
    lines = ["", f"sweep {relative(sweep_dir)}: {tables.heading.replace('`', '')}"]
    if tables.groups:
        group_header, group_rows = tables.groups
        chosen = ["configuration", "seeds", "diverged", f"{settings.metric} mean", "95% CI", "Holm p vs best"]
        lines += [
            "",
            "over seeds, per configuration:",
            *text_table(*fit_to_width(*console_columns(group_header, group_rows, [*chosen, "P(better than best)"]), 4)),
            *textwrap.wrap(SIGNIFICANCE_NOTE.format(metric=settings.metric).replace("`", ""), CONSOLE_WIDTH),
            "",
            "jobs:",
        ]
    header, rows = tables.jobs
    if not any(row[-1] for row in rows):  # no job failed: no error column
        header, rows = header[:-1], [row[:-1] for row in rows]
    lines += [*text_table(*fit_to_width(header, rows, keep=4)), ""]
    lines += [
        f"plot      {relative(sweep_dir / 'comparison.png')}",
        f"table     {relative(sweep_dir / 'summary.md')} (all columns: summary.csv, statistics: groups.csv)",
    ]
    lines += [f"look      {command}" for command in look_commands(loggers, sweep_dir, sweep=True)]
    return "\n".join(lines)


def build_report(sweep_dir: Path) -> list[Job]:
    """Write comparison.png, summary.csv, summary.md and groups.csv into ``sweep_dir``; return the jobs found."""
    from optlab.report.plot import plot_comparison, plot_panels
    from optlab.report.tensorboard import write_sweep_layout

    sweep_dir = Path(sweep_dir)
    jobs = find_jobs(sweep_dir)
    if not jobs:
        raise FileNotFoundError(f"no job directories (*/.hydra/overrides.yaml) under {sweep_dir}")
    groups, settings = group_by_seed(jobs), read_settings(jobs)
    columns = metric_columns(jobs, settings)
    write_csv(jobs, columns, sweep_dir / "summary.csv")
    write_markdown(sweep_dir, summary_tables(jobs, groups, settings, columns), settings.metric, sweep_dir / "summary.md")
    write_groups_csv(groups, columns, settings, sweep_dir / "groups.csv")
    write_sweep_layout(sweep_dir, jobs, settings.metric)  # what TensorBoard opens on
    plot_comparison(
        groups, plot_panels(jobs, settings), sweep_dir / "comparison.png", title=f"Sweep {sweep_dir.name}", metric=settings.metric
    )
    return jobs
