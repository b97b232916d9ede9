"""What the protocol's runs gave: each configuration's seeds, the tuned learning rates, the statistics, the profile.

A diverged seed is never dropped: selection scores it as the worst value, every table counts
it, and the probability of being better ranks it last. The means, spreads and intervals are over
the seeds that trained to the end, and say so beside them.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from optlab.history import test_counterpart
from optlab.protocol.plan import Run, Task
from optlab.report.jobs import Job
from optlab.uncertainty import Comparison, Summary, compare_all, summarise

TRAINED = ("ok", "did not learn")  # ran to the end: its numbers are results, however poor


@dataclass
class Seeds:
    """One configuration's seeds: the final validation metric, the test metric, and how each ended."""

    run: Run
    jobs: list[Job]
    metric: str
    test_metric: str | None

    @property
    def diverged(self) -> int:
        return sum(job.status == "diverged" for job in self.jobs)

    @property
    def learned_nothing(self) -> int:
        """Seeds that trained to the end without their metric ever moving (counted in the statistics, and said)."""
        return sum(job.status == "did not learn" for job in self.jobs)

    @property
    def not_trained(self) -> int:
        """Seeds that neither finished nor diverged (failed, killed, interrupted)."""
        return sum(job.status not in (*TRAINED, "diverged") for job in self.jobs)

    def finals(self) -> list[float]:
        """The final validation value of each seed; ``nan`` for one that did not train to the end."""
        return [value(job, self.metric) for job in self.jobs]

    def tests(self) -> list[float]:
        return [value(job, self.test_metric) if self.test_metric else math.nan for job in self.jobs]


def value(job: Job, metric: str) -> float:
    final = job.final(metric) if job.status in TRAINED else None
    return math.nan if final is None else final


def score(seeds: Seeds, minimize: bool) -> float:
    """What selects a learning rate: the mean final validation value, a diverged (or unfinished) seed as the worst."""
    finals = seeds.finals()
    if not finals or any(math.isnan(final) for final in finals):
        return math.inf if minimize else -math.inf
    return statistics.fmean(finals)


def best_learning_rate(tuning: Sequence[Seeds], minimize: bool) -> float | None:
    """The tuned learning rate: the best score (the lower learning rate on a tie); None if every one diverged."""
    finite = [seeds for seeds in tuning if math.isfinite(score(seeds, minimize))]
    if not finite:
        return None
    pick = min if minimize else max
    best = pick(finite, key=lambda seeds: (score(seeds, minimize), seeds.run.lr if minimize else -(seeds.run.lr or 0)))
    return best.run.lr


@dataclass
class Timing:
    """When the seeds of a configuration first reached the validation target."""

    reached: int  # seeds that reached it
    steps: float | None  # median over the seeds that reached it
    seconds: float | None


def time_to_target(seeds: Seeds, target: float, minimize: bool) -> Timing:
    steps, seconds = [], []
    for job in seeds.jobs:
        if job.status not in TRAINED:
            continue
        for record in job.history.stage_records("validate"):
            reached = record.get(seeds.metric)
            if isinstance(reached, float) and (reached <= target if minimize else reached >= target):
                steps.append(record["step"] + 1)
                seconds.append(record.get("time") or math.nan)
                break
    return Timing(
        len(steps),
        statistics.median(steps) if steps else None,
        statistics.median(seconds) if seconds and not any(math.isnan(s) for s in seconds) else None,
    )


@dataclass
class TaskResult:
    """Everything the report says about one task."""

    task: Task
    metric: str
    test_metric: str | None
    minimize: bool
    tuning: list[Seeds]
    defaults: list[Seeds]
    confirmed: list[Seeds]  # the tuned configuration of each optimizer that had one
    target: float | None

    def summary(self, seeds: Seeds) -> Summary | None:
        return summarise([test for test in seeds.tests() if math.isfinite(test)])

    def comparisons(self) -> list[Comparison]:
        """Every pair of tuned optimizers on the fresh seeds' test metric, Holm over all pairs."""
        return compare_all({seeds.run.optimizer: seeds.tests() for seeds in self.confirmed}, self.minimize)

    def timing(self, seeds: Seeds) -> Timing | None:
        return None if self.target is None else time_to_target(seeds, self.target, self.minimize)


def default_target(confirmed: Sequence[Seeds]) -> float | None:
    """The median final validation value over every confirmed seed that trained: half the runs reach it."""
    finals = [final for seeds in confirmed for final in seeds.finals() if math.isfinite(final)]
    return statistics.median(finals) if finals else None


def task_median(seeds: Seeds, minimize: bool) -> float:
    """A configuration's outcome on a task, for the profile: the median test value, a diverged seed the worst."""
    tests = [test if math.isfinite(test) else (math.inf if minimize else -math.inf) for test in seeds.tests()]
    return statistics.median(tests) if tests else math.nan


def performance_profile(results: Sequence[TaskResult]) -> dict[str, list[float]]:
    """Per optimizer, its ratio to the best optimizer on each task (1: the best; ``inf``: diverged or absent).

    Dolan and Moré's profile is the share of tasks with a ratio at most tau. For a metric to
    maximise the ratio is the best value over this one's, so that lower is better throughout.
    """
    optimizers = list(dict.fromkeys(seeds.run.optimizer for result in results for seeds in result.confirmed))
    ratios: dict[str, list[float]] = {optimizer: [] for optimizer in optimizers}
    for result in results:
        medians = {seeds.run.optimizer: task_median(seeds, result.minimize) for seeds in result.confirmed}
        finite = [value for value in medians.values() if math.isfinite(value)]
        best = (min if result.minimize else max)(finite) if finite else math.nan
        for optimizer in optimizers:
            value = medians.get(optimizer, math.nan)
            ratios[optimizer].append(ratio(value, best, result.minimize))
    return ratios


def ratio(value: float, best: float, minimize: bool) -> float:
    if not (math.isfinite(value) and math.isfinite(best)):
        return math.inf
    if value == best:
        return 1.0
    numerator, denominator = (value, best) if minimize else (best, value)
    return numerator / denominator if denominator > 0 else math.inf


def share_within(ratios: Sequence[float], tau: float) -> float:
    return sum(r <= tau for r in ratios) / len(ratios) if ratios else 0.0


def seeds_of(outcomes: Mapping[Run, list[Job]], run: Run, metric: str) -> Seeds:
    tested = {tag for job in outcomes[run] for tag in job.history.tags_of("test")}
    return Seeds(run, outcomes[run], metric, test_counterpart(metric, tested))
