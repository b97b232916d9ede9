"""How sure a comparison over seeds is: mean, spread, a 95 % confidence interval, Welch's test.

SGD and RMSprop at the notebook's rates are chaotic: one seed is not a result. Every figure
the report gives for a configuration is over its seeds (jobs that differ only by ``seed``,
and the replicas of a run), and every difference between two configurations comes with
the p-value of Welch's t-test (unequal variances), computed by scipy.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from scipy import stats

CONFIDENCE = 0.95
SIGNIFICANCE = 0.05  # a difference with p below it is reported as significant


@dataclass(frozen=True)
class Summary:
    """A metric over seeds: the mean, the sample standard deviation and the mean's 95 % interval."""

    n: int
    mean: float
    std: float | None  # None with a single seed
    low: float | None
    high: float | None


def summarise(values: Sequence[float]) -> Summary | None:
    """Student's t interval of the mean: ``mean ± t(0.975, n-1) · std / √n``."""
    if not values:
        return None
    n, mean = len(values), statistics.fmean(values)
    if n == 1:
        return Summary(1, mean, None, None, None)
    std = statistics.stdev(values)
    if std == 0:
        return Summary(n, mean, 0.0, mean, mean)
    low, high = stats.t.interval(CONFIDENCE, n - 1, loc=mean, scale=std / math.sqrt(n))
    return Summary(n, mean, std, float(low), float(high))


@dataclass(frozen=True)
class Difference:
    """Welch's t-test of two configurations' values."""

    p_value: float | None  # None when either side has fewer than two seeds or no spread at all
    n: tuple[int, int]

    @property
    def significant(self) -> bool | None:
        return None if self.p_value is None else self.p_value < SIGNIFICANCE


def welch(a: Sequence[float], b: Sequence[float]) -> Difference:
    n = (len(a), len(b))
    if min(n) < 2 or (statistics.pvariance(a) == 0 and statistics.pvariance(b) == 0):
        return Difference(None, n)
    result = stats.ttest_ind(a, b, equal_var=False)
    p_value = float(result.pvalue)
    return Difference(None if math.isnan(p_value) else p_value, n)


def interval_bands(curves: Sequence[Sequence[float]]) -> tuple[list[float], list[float], list[float]]:
    """Per epoch, over seeds: the mean and its 95 % interval (the mean itself where one seed)."""
    means, lows, highs = [], [], []
    for values in zip(*curves):
        summary = summarise(list(values))
        assert summary is not None
        means.append(summary.mean)
        lows.append(summary.mean if summary.low is None else summary.low)
        highs.append(summary.mean if summary.high is None else summary.high)
    return means, lows, highs
