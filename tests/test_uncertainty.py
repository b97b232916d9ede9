"""The comparison statistics, each against an independent implementation: scipy, statsmodels, counting by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import special, stats
from statsmodels.stats.multitest import multipletests

from optlab.uncertainty import (
    RANDOM_STATE,
    RESAMPLES,
    compare_all,
    hedges_g,
    holm,
    interval_bands,
    probability_better,
    summarise,
    welch_p,
)


@pytest.mark.parametrize("p_values", [[0.01, 0.04, 0.03, 0.2], [0.001], [0.5, 0.5, 0.01, 0.04, 0.049, 0.9]])
def test_holm_matches_statsmodels(p_values: list[float]) -> None:
    expected = multipletests(p_values, alpha=0.05, method="holm")[1]
    assert holm(p_values) == pytest.approx(list(expected), rel=1e-12)


def test_welch_p_matches_scipy_and_needs_two_seeds_a_side() -> None:
    a, b = [0.31, 0.35, 0.29, 0.4], [0.25, 0.27, 0.22]
    assert welch_p(a, b) == pytest.approx(stats.ttest_ind(a, b, equal_var=False).pvalue, rel=1e-12)
    assert welch_p([0.3], b) is None and welch_p([0.2, 0.2], [0.3, 0.3]) is None


def test_interval_is_scipys_percentile_bootstrap_and_stays_in_the_values_range() -> None:
    # The case of the old t-interval: three seeds of a loss gave [-0.237, 0.417].
    losses = [0.002, 0.01, 0.3]
    summary = summarise(losses)
    assert summary is not None
    oracle = stats.bootstrap(
        (np.array(losses),), np.mean, n_resamples=RESAMPLES, method="percentile", random_state=RANDOM_STATE
    ).confidence_interval
    assert (summary.low, summary.high) == pytest.approx((oracle.low, oracle.high), rel=1e-12)
    assert min(losses) <= summary.low < summary.mean < summary.high <= max(losses)
    assert summary.std == pytest.approx(np.std(losses, ddof=1), rel=1e-12)
    one = summarise([0.5])
    assert one is not None and one.std is None and one.low is None  # one seed: no spread, no interval


def test_bands_leave_out_what_is_not_finite_per_epoch() -> None:
    means, lows, highs = interval_bands([[1.0, 0.5, 0.2], [1.2, math.nan, math.inf], [0.8, 0.7, 0.4]])
    assert means[0] == pytest.approx(1.0) and means[1] == pytest.approx(0.6) and means[2] == pytest.approx(0.3)
    assert all(low <= mean <= high for low, mean, high in zip(lows, means, highs))
    assert all(math.isnan(value) for value in interval_bands([[math.nan], [math.nan]])[0])


def exact_hedges_g(a: list[float], b: list[float]) -> float:
    """Hedges (1981): Cohen's d with the pooled sd, times the exact gamma-function correction J(df)."""
    df = len(a) + len(b) - 2
    pooled = math.sqrt(((len(a) - 1) * np.var(a, ddof=1) + (len(b) - 1) * np.var(b, ddof=1)) / df)
    correction = math.exp(special.gammaln(df / 2) - special.gammaln((df - 1) / 2)) / math.sqrt(df / 2)
    return (np.mean(a) - np.mean(b)) / pooled * correction


def test_hedges_g_matches_the_exact_correction() -> None:
    a, b = [0.31, 0.35, 0.29, 0.4, 0.33], [0.25, 0.27, 0.22, 0.3]
    assert hedges_g(a, b) == pytest.approx(exact_hedges_g(a, b), rel=2e-3)  # the 1 - 3/(4 df - 1) approximation
    assert hedges_g(b, a) == pytest.approx(-hedges_g(a, b))


def test_probability_better_is_the_mann_whitney_u_with_diverged_seeds_the_worst() -> None:
    a = [0.2, 0.3, math.nan, 0.3]  # one seed diverged
    b = [0.25, 0.3, 0.1]
    # U counts the pairs in which the first sample is larger, ties half: for a loss, b's U is a's wins.
    scored = [math.inf if math.isnan(x) else x for x in a]
    u_b = stats.mannwhitneyu(b, scored, alternative="two-sided").statistic
    assert probability_better(a, b, minimize=True) == pytest.approx(u_b / (len(a) * len(b)), rel=1e-12)
    # For an accuracy the diverged seed is the lowest instead.
    accuracy = [-math.inf if math.isnan(x) else x for x in a]
    u_a = stats.mannwhitneyu(accuracy, b, alternative="two-sided").statistic
    assert probability_better(a, b, minimize=False) == pytest.approx(u_a / (len(a) * len(b)), rel=1e-12)


def test_compare_all_tests_every_pair_and_corrects_over_all_of_them() -> None:
    samples = {
        "adam": [0.10, 0.12, 0.11, 0.13],
        "sgd": [0.30, 0.40, math.nan, 0.50],
        "rmsprop": [0.11, 0.16, 0.12],
    }
    comparisons = compare_all(samples, minimize=True)
    assert [(c.first, c.second) for c in comparisons] == [("adam", "sgd"), ("adam", "rmsprop"), ("sgd", "rmsprop")]
    finite = {name: [v for v in values if math.isfinite(v)] for name, values in samples.items()}
    raw = [stats.ttest_ind(finite[c.first], finite[c.second], equal_var=False).pvalue for c in comparisons]
    adjusted = multipletests(raw, method="holm")[1]
    for comparison, p_value, holm_p in zip(comparisons, raw, adjusted):
        assert comparison.p_value == pytest.approx(p_value, rel=1e-12)
        assert comparison.adjusted == pytest.approx(holm_p, rel=1e-12)
    assert comparisons[0].better == 1.0  # every adam seed beats every sgd seed, the diverged one too
