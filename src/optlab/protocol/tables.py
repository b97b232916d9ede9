"""The protocol's tables: ``protocol.md`` for a reader, ``protocol.csv`` with every configuration's numbers unrounded."""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path

from optlab.protocol.analysis import Seeds, TaskResult, score, share_within
from optlab.protocol.plan import Settings
from optlab.uncertainty import CONFIDENCE, RESAMPLES, SIGNIFICANCE


def number(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if math.isinf(value):
        return "diverged" if value > 0 else "-inf"
    return f"{value:.4g}"


def markdown(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *("| " + " | ".join(row) + " |" for row in rows)]


def configuration_row(result: TaskResult, seeds: Seeds) -> list[str]:
    summary = result.summary(seeds)
    timing = result.timing(seeds)
    trained = len(seeds.jobs) - seeds.diverged - seeds.not_trained
    interval = f"[{number(summary.low)}, {number(summary.high)}]" if summary and summary.low is not None else ""
    finals = [final for final in seeds.finals() if math.isfinite(final)]
    return [
        seeds.run.optimizer,
        seeds.run.settings,
        str(len(seeds.jobs)),
        str(seeds.diverged)
        + (f" (+{seeds.not_trained} not trained)" if seeds.not_trained else "")
        + (f"; {seeds.learned_nothing} learned nothing" if seeds.learned_nothing else ""),
        number(summary.mean) if summary else "",
        number(summary.std) if summary else "",
        interval,
        number(sum(finals) / len(finals)) if finals else "",
        ""
        if timing is None
        else f"{timing.reached}/{trained}"
        + (f", {number(timing.steps)} steps" if timing.steps else "")
        + (f", {number(timing.seconds)} s" if timing.seconds is not None else ""),
    ]


def task_section(result: TaskResult) -> list[str]:
    test = result.test_metric or "(no test metric)"
    lines = [
        f"## {result.task.name}",
        "",
        f"Tuned on the final `{result.metric}` ({'lower' if result.minimize else 'higher'}"
        f" is better); tested on `{test}` over the fresh seeds. Mean, std and interval are over the seeds that trained"
        " to the end (those that learned nothing included, and counted); the diverged ones are counted beside them.",
        "",
    ]
    header = [
        "optimizer",
        "settings",
        "seeds",
        "diverged",
        f"{test} mean",
        "std",
        f"{CONFIDENCE:.0%} CI",
        f"final {result.metric} mean",
        "reached the target",
    ]
    rows = [configuration_row(result, seeds) for seeds in [*result.confirmed, *result.defaults]]
    lines += markdown(header, rows)
    if result.target is not None:
        lines += [
            "",
            f"Target: `{result.metric}` {'<=' if result.minimize else '>='} {result.target:.4g} "
            "(seeds that reached it; median steps and seconds to it).",
        ]
    comparisons = result.comparisons()
    if comparisons:
        lines += [
            "",
            f"### Tuned optimizers, pair by pair ({test}, fresh seeds)",
            "",
            f"Welch's t-test, Holm's correction over all {len(comparisons)} pairs (* adjusted p < {SIGNIFICANCE}); "
            "Hedges' g of the first minus the second; P(first better): the chance that a seed of the first "
            "beats one of the second, ties half, a diverged seed the worst.",
            "",
        ]
        lines += markdown(
            ["first", "second", "Welch p", "Holm p", "Hedges' g", "P(first better)"],
            [
                [
                    c.first,
                    c.second,
                    number(c.p_value),
                    number(c.adjusted) + (" *" if c.significant else ""),
                    number(c.effect),
                    number(c.better),
                ]
                for c in comparisons
            ],
        )
    lines += ["", f"### Learning-rate sensitivity (final `{result.metric}`, tuning seeds)", ""]
    lines += markdown(
        ["optimizer", "learning rate", "score", "mean", "min", "max", "diverged"],
        [
            [s.run.optimizer, f"{s.run.lr:g}", number(score(s, result.minimize)), *sensitivity_cells(s), str(s.diverged)]
            for s in result.tuning
        ],
    )
    return lines


def sensitivity_cells(seeds: Seeds) -> list[str]:
    finals = [final for final in seeds.finals() if math.isfinite(final)]
    if not finals:
        return ["", "", ""]
    return [number(sum(finals) / len(finals)), number(min(finals)), number(max(finals))]


def write_markdown(path: Path, results: Sequence[TaskResult], settings: Settings, ratios: dict[str, list[float]]) -> None:
    rates = settings.learning_rates
    lines = [
        "# Optimizer protocol",
        "",
        f"Every optimizer ({', '.join(settings.optimizers)}) had the same budget: {len(rates)} learning rates from "
        f"{rates[0]:g} to {rates[-1]:g}, log-spaced, each on {settings.tuning_seeds} tuning seeds. The best, by the "
        "mean final validation value with a diverged seed scored as the worst, was trained again on "
        f"{settings.confirm_seeds} fresh seeds, none shared with tuning, beside each optimizer at torch's default "
        f"settings on the same seeds. Intervals: percentile bootstrap of the mean ({RESAMPLES} resamples).",
        "",
    ]
    for result in results:
        lines += [*task_section(result), ""]
    if len(results) > 1:
        lines += [
            "## Performance profile",
            "",
            "Each tuned optimizer's median test value (a diverged seed the worst) over the best optimizer's, per task "
            "(1: the best); the share of tasks within 1.1 and 2 of the best.",
            "",
        ]
        header = ["optimizer", *(result.task.name for result in results), "within 1.1", "within 2"]
        lines += markdown(
            header,
            [
                [optimizer, *(number(r) for r in values), f"{share_within(values, 1.1):.0%}", f"{share_within(values, 2.0):.0%}"]
                for optimizer, values in ratios.items()
            ],
        )
    path.write_text("\n".join(lines) + "\n")


def write_csv(path: Path, results: Sequence[TaskResult]) -> None:
    with path.open("w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(
            [
                "task",
                "stage",
                "optimizer",
                "lr",
                "seeds",
                "diverged",
                "not_trained",
                "did_not_learn",
                "score",
                "test_metric",
                "test_mean",
                "test_std",
                "ci_low",
                "ci_high",
            ]
        )
        for result in results:
            for seeds in [*result.tuning, *result.defaults, *result.confirmed]:
                summary = result.summary(seeds)
                writer.writerow(
                    [
                        result.task.name,
                        seeds.run.stage,
                        seeds.run.optimizer,
                        "" if seeds.run.lr is None else repr(seeds.run.lr),
                        len(seeds.jobs),
                        seeds.diverged,
                        seeds.not_trained,
                        seeds.learned_nothing,
                        repr(score(seeds, result.minimize)),
                        result.test_metric or "",
                        *(
                            ("",) * 4
                            if summary is None
                            else (
                                repr(summary.mean),
                                *("" if v is None else repr(v) for v in (summary.std, summary.low, summary.high)),
                            )
                        ),
                    ]
                )


def console_lines(results: Sequence[TaskResult]) -> list[str]:
    """The protocol's outcome in a few lines: per task, each optimizer's tuned learning rate and test value."""
    lines = []
    for result in results:
        lines.append(f"{result.task.name}: {result.test_metric or result.metric} on fresh seeds (mean, 95 % CI)")
        for seeds in [*result.confirmed, *result.defaults]:
            summary = result.summary(seeds)
            shown = (
                ""
                if summary is None
                else f"{summary.mean:.4g}" + (f" [{summary.low:.4g}, {summary.high:.4g}]" if summary.low is not None else "")
            )
            counted = [(seeds.diverged, "diverged"), (seeds.learned_nothing, "learned nothing")]
            failures = "".join(f", {count} of {len(seeds.jobs)} seeds {what}" for count, what in counted if count)
            lines.append(f"  {seeds.run.optimizer:<8} {seeds.run.settings:<16} {shown}{failures}")
        untuned = sorted({s.run.optimizer for s in result.tuning} - {s.run.optimizer for s in result.confirmed})
        lines += [f"  {optimizer:<8} diverged at every learning rate" for optimizer in untuned]
    return lines
