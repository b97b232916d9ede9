"""How sure a comparison over seeds is: mean, spread, a 95 % interval, and tests that hold up.

SGD and RMSprop at the notebook's rates are chaotic: one seed is not a result. Every figure
the report gives for a configuration is over its seeds (jobs that differ only by ``seed``,
and the replicas of a run):

- the interval is a percentile bootstrap of the mean (scipy's, a fixed random state), so it
  stays within the values' own range: never a negative bound for a loss, never above 1 for
  an accuracy, and on a log axis it is the interval it is labelled as;
- differences are Welch's t-test (unequal variances), for every pair of configurations, with
  Holm's step-down correction over all the pairs, an effect size (Hedges' g) and the
  probability that one configuration's seed beats the other's (ties half), which counts a
  diverged seed as the worst outcome rather than dropping it.
"""

from __future__ import annotations

import math
import statistics
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
SIGNIFICANCE = 0.05  # a difference with an adjusted p below it is reported as significant
RESAMPLES = 10_000
RANDOM_STATE = 0  # the same interval for the same values, every time


@dataclass(frozen=True)
class Summary:
    """A metric over seeds: the mean, the sample standard deviation and the mean's 95 % interval."""

    n: int
    mean: float
    std: float | None  # None with a single seed
    low: float | None
    high: float | None


def bootstrap_interval(values: Sequence[float]) -> tuple[float, float]:
    """The percentile bootstrap 95 % interval of the mean: within ``[min(values), max(values)]``."""
    if min(values) == max(values):
        return values[0], values[0]
    result = stats.bootstrap(
        (np.asarray(values, dtype=float),),
        np.mean,
        confidence_level=CONFIDENCE,
        n_resamples=RESAMPLES,
        method="percentile",
        random_state=RANDOM_STATE,
    )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def summarise(values: Sequence[float]) -> Summary | None:
    """Mean, std and interval of finite ``values`` (the caller decides what a diverged seed counts as)."""
    if not values:
        return None
    n, mean = len(values), statistics.fmean(values)
    if n == 1:
        return Summary(1, mean, None, None, None)
    low, high = bootstrap_interval(values)
    return Summary(n, mean, statistics.stdev(values), low, high)


def welch_p(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Welch's t-test of two samples; None when either has fewer than two values or neither varies."""
    if min(len(a), len(b)) < 2 or (statistics.pvariance(a) == 0 and statistics.pvariance(b) == 0):
        return None
    with warnings.catch_warnings():  # nearly equal seeds: scipy warns of precision loss, and its p is still right
        warnings.simplefilter("ignore", RuntimeWarning)
        p_value = float(stats.ttest_ind(a, b, equal_var=False).pvalue)
    return None if math.isnan(p_value) else p_value


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment: the k-th smallest p times (m - k + 1), kept monotone and at most 1."""
    order = sorted(range(len(p_values)), key=lambda index: p_values[index])
    adjusted = [0.0] * len(p_values)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted


def hedges_g(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Standardised difference of means ``(mean(a) - mean(b)) / pooled sd``, with Hedges' small-sample factor."""
    n_a, n_b = len(a), len(b)
    if min(n_a, n_b) < 2:
        return None
    pooled = math.sqrt(((n_a - 1) * statistics.variance(a) + (n_b - 1) * statistics.variance(b)) / (n_a + n_b - 2))
    if pooled == 0:
        return None
    return (statistics.fmean(a) - statistics.fmean(b)) / pooled * (1 - 3 / (4 * (n_a + n_b) - 9))


def probability_better(a: Sequence[float], b: Sequence[float], minimize: bool) -> float | None:
    """P(a seed of ``a`` beats a seed of ``b``), ties counting half; a diverged seed (``inf``/``nan``) is the worst."""
    if not a or not b:
        return None
    worst = math.inf if minimize else -math.inf

    def score(value: float) -> float:
        return worst if math.isnan(value) else value

    wins = sum(
        1.0 if (score(x) < score(y) if minimize else score(x) > score(y)) else 0.5 if score(x) == score(y) else 0.0
        for x in a
        for y in b
    )
    return wins / (len(a) * len(b))


@dataclass(frozen=True)
class Comparison:
    """Two configurations compared over their seeds."""

    first: str
    second: str
    p_value: float | None  # Welch's, over the seeds that finished
    adjusted: float | None  # Holm's, over every pair compared
    effect: float | None  # Hedges' g of first minus second
    better: float | None  # P(a seed of first beats one of second), diverged seeds counted as the worst

    @property
    def significant(self) -> bool | None:
        return None if self.adjusted is None else self.adjusted < SIGNIFICANCE


def compare_all(samples: dict[str, Sequence[float]], minimize: bool) -> list[Comparison]:
    """Every pair of configurations; Holm's correction over all of them. ``samples`` may hold ``nan`` for diverged seeds:
    the tests and effect sizes leave them out, the probability of being better counts them as the worst."""
    pairs = list(combinations(samples, 2))
    finite = {name: [value for value in values if math.isfinite(value)] for name, values in samples.items()}
    p_values = [welch_p(finite[first], finite[second]) for first, second in pairs]
    tested = [p for p in p_values if p is not None]
    adjusted = iter(holm(tested))
    return [
        Comparison(
            first,
            second,
            p_value,
            next(adjusted) if p_value is not None else None,
            hedges_g(finite[first], finite[second]),
            probability_better(samples[first], samples[second], minimize),
        )
        for (first, second), p_value in zip(pairs, p_values)
    ]


def interval_bands(curves: Sequence[Sequence[float]]) -> tuple[list[float], list[float], list[float]]:
    """Per epoch, over the seeds whose value there is finite: the mean and its 95 % interval (the mean itself
    where one seed; NaN where none). A picture draws diverged seeds' count beside the curve."""
    means, lows, highs = [], [], []
    for values in zip(*curves):
        summary = summarise([value for value in values if math.isfinite(value)])
        mean = math.nan if summary is None else summary.mean
        means.append(mean)
        lows.append(mean if summary is None or summary.low is None else summary.low)
        highs.append(mean if summary is None or summary.high is None else summary.high)
    return means, lows, highs
