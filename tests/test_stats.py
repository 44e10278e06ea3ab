"""Tests for harness.evaluation.stats: correctness, accuracy, bootstrap intervals, paired tests."""

from __future__ import annotations

import dataclasses
import math
import subprocess
import sys
import warnings
from fractions import Fraction

import numpy as np
import pytest
from scipy import stats as scipy_stats

from harness.evaluation.stats import (
    Correlation,
    Interval,
    PairedComparison,
    SeedSummary,
    accuracy,
    bootstrap_ci,
    correlate,
    is_correct,
    paired_bootstrap,
    summarize_seeds,
)

NAN = float("nan")
INF = float("inf")


def _rate_array(n_correct: int, n: int) -> np.ndarray:
    """Bool array of length n with the first n_correct entries True."""
    arr = np.zeros(n, dtype=bool)
    arr[:n_correct] = True
    return arr


def _discordant(
    only_a: int, only_b: int, *, both: int = 0, neither: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Two systems' correctness with the given contingency-table cells."""
    a = np.array([True] * only_a + [False] * only_b + [True] * both + [False] * neither)
    b = np.array([False] * only_a + [True] * only_b + [True] * both + [False] * neither)
    return a, b


def _exact_mcnemar(only_a: int, only_b: int) -> float:
    """min(1, 2 * P(X <= min(only_a, only_b))), X ~ Binomial(only_a + only_b, 1/2), exactly."""
    m = only_a + only_b
    tail = Fraction(sum(math.comb(m, k) for k in range(min(only_a, only_b) + 1)), 2**m)
    return float(min(Fraction(1), 2 * tail))


# --------------------------------------------------------------------------- is_correct


@pytest.mark.parametrize(
    ("scores", "expected"),
    [
        pytest.param([0.5, 0.5], False, id="tie-is-wrong"),
        pytest.param([0.6, 0.5, 0.59], True, id="strictly-highest"),
        pytest.param([0.6, 0.5, 0.6], False, id="tie-with-later-negative"),
        pytest.param([0.4, 0.5], False, id="negative-higher"),
        pytest.param([NAN, 0.1], False, id="nan-positive"),
        pytest.param([0.9, NAN, 0.1], False, id="nan-negative"),
        pytest.param([INF, 1e308], True, id="inf-beats-finite"),
        pytest.param([INF, INF], False, id="inf-tie"),
        pytest.param([-1.0, -2.0, -3.0], True, id="negative-scores"),
        pytest.param(np.array([0.2, 0.1], dtype=np.float32), True, id="numpy-input"),
    ],
)
def test_is_correct(scores: list[float], expected: bool) -> None:
    assert is_correct(scores) is expected


@pytest.mark.parametrize(
    "scores",
    [
        pytest.param([], id="empty"),
        pytest.param([0.5], id="no-negatives"),
        pytest.param([[0.5, 0.4]], id="2d"),
    ],
)
def test_is_correct_rejects_malformed(scores: list[float]) -> None:
    with pytest.raises(ValueError):
        is_correct(scores)


# --------------------------------------------------------------------------- accuracy


@pytest.mark.parametrize(
    ("correct", "expected"),
    [
        pytest.param([True, False, True, True], 0.75, id="list-bool"),
        pytest.param([False, False, False], 0.0, id="all-wrong"),
        pytest.param(np.ones(7, dtype=bool), 1.0, id="all-right"),
        pytest.param([True], 1.0, id="single"),
        pytest.param(np.array([1, 0, 0, 0]), 0.25, id="int-01"),
        pytest.param(_rate_array(123, 400), 123 / 400, id="n400"),
    ],
)
def test_accuracy_known_values(correct: list[bool], expected: float) -> None:
    assert accuracy(correct) == pytest.approx(expected, abs=1e-15)


@pytest.mark.parametrize(
    "correct",
    [
        pytest.param([], id="empty"),
        pytest.param(np.zeros(0, dtype=bool), id="empty-array"),
        pytest.param([[True, False]], id="2d"),
        pytest.param([0, 2], id="not-01"),
        pytest.param(["yes", "no"], id="strings"),
    ],
)
def test_accuracy_rejects_invalid(correct: list[bool]) -> None:
    with pytest.raises(ValueError):
        accuracy(correct)


# --------------------------------------------------------------------------- bootstrap_ci


@pytest.mark.parametrize(
    ("n_correct", "n"),
    [
        pytest.param(7, 10, id="n10"),
        pytest.param(50, 100, id="n100-half"),
        pytest.param(3, 100, id="n100-low"),
        pytest.param(970, 1000, id="n1000-high"),
        pytest.param(0, 50, id="all-wrong"),
        pytest.param(50, 50, id="all-right"),
    ],
)
def test_bootstrap_ci_contains_point_estimate(n_correct: int, n: int) -> None:
    ci = bootstrap_ci(_rate_array(n_correct, n))
    assert isinstance(ci, Interval)
    assert ci.value == pytest.approx(n_correct / n)
    assert ci.low <= ci.value <= ci.high
    assert 0.0 <= ci.low and ci.high <= 1.0
    assert ci.level == 0.95


def test_bootstrap_ci_narrows_with_more_instances() -> None:
    small = bootstrap_ci(_rate_array(70, 100))
    large = bootstrap_ci(_rate_array(7000, 10000))
    assert small.value == large.value == pytest.approx(0.7)
    # Width scales like 1/sqrt(n): 100x the instances -> about 1/10 the width.
    assert (large.high - large.low) < (small.high - small.low) / 5


def test_bootstrap_ci_matches_normal_approximation() -> None:
    ci = bootstrap_ci(_rate_array(200, 400), level=0.95)
    half = 1.96 * math.sqrt(0.25 / 400)
    assert ci.value == 0.5
    assert ci.low == pytest.approx(0.5 - half, abs=0.01)
    assert ci.high == pytest.approx(0.5 + half, abs=0.01)


def test_bootstrap_ci_same_seed_is_identical() -> None:
    data = _rate_array(6000, 10000)
    assert bootstrap_ci(data, seed=7) == bootstrap_ci(data, seed=7)


def test_bootstrap_ci_different_seeds_differ() -> None:
    data = _rate_array(6000, 10000)
    intervals = {(ci.low, ci.high) for ci in (bootstrap_ci(data, seed=s) for s in range(5))}
    assert len(intervals) > 1


@pytest.mark.parametrize("value", [pytest.param(True, id="right"), pytest.param(False, id="wrong")])
def test_bootstrap_ci_single_instance_collapses(value: bool) -> None:
    ci = bootstrap_ci([value])
    assert ci.value == ci.low == ci.high == float(value)


def test_bootstrap_ci_wider_at_higher_level() -> None:
    data = _rate_array(300, 1000)
    narrow = bootstrap_ci(data, level=0.80)
    wide = bootstrap_ci(data, level=0.99)
    assert wide.low < narrow.low and narrow.high < wide.high
    assert (narrow.level, wide.level) == (0.80, 0.99)


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"level": 0.0}, id="level-0"),
        pytest.param({"level": 1.0}, id="level-1"),
        pytest.param({"level": 95.0}, id="level-percent"),
        pytest.param({"n_resamples": 0}, id="no-resamples"),
    ],
)
def test_bootstrap_ci_rejects_bad_options(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        bootstrap_ci([True, False], **kwargs)  # type: ignore[arg-type]


def test_bootstrap_ci_rejects_empty() -> None:
    with pytest.raises(ValueError):
        bootstrap_ci([])


def test_bootstrap_ci_matches_scipy_called_directly() -> None:
    data = _rate_array(37, 120)
    ours = bootstrap_ci(data, level=0.9, n_resamples=500, seed=4)
    direct = scipy_stats.bootstrap(
        (data.astype(float),), np.mean, n_resamples=500, vectorized=True, confidence_level=0.9,
        method="percentile", random_state=np.random.default_rng(4),
    ).confidence_interval
    assert (ours.low, ours.high) == pytest.approx((direct.low, direct.high), abs=1e-12), \
        "bootstrap_ci no longer matches scipy.stats.bootstrap(method='percentile')"


def test_bootstrap_ci_pinned() -> None:
    ci = bootstrap_ci(_rate_array(70, 100), seed=0)
    assert (ci.value, ci.low, ci.high) == pytest.approx((0.7, 0.61, 0.79)), "seed-0 interval drifted"


@pytest.mark.parametrize(
    ("n_correct", "n"),
    [
        pytest.param(0, 1, id="one-wrong"),
        pytest.param(1, 1, id="one-right"),
        pytest.param(0, 2, id="two-wrong"),
        pytest.param(40, 40, id="all-right"),
        pytest.param(0, 40, id="all-wrong"),
    ],
)
def test_bootstrap_ci_degenerate_collapses_without_warnings(n_correct: int, n: int) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ci = bootstrap_ci(_rate_array(n_correct, n))
    assert ci.value == ci.low == ci.high == n_correct / n


def test_bootstrap_ci_two_instances_has_no_nan() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ci = bootstrap_ci([True, False], n_resamples=200)
    assert (ci.low, ci.value, ci.high) == (0.0, 0.5, 1.0)


def test_interval_is_frozen() -> None:
    ci = bootstrap_ci([True, False])
    with pytest.raises(dataclasses.FrozenInstanceError):
        ci.low = 0.0  # type: ignore[misc]


# --------------------------------------------------------------------------- paired_bootstrap


def test_paired_identical_systems() -> None:
    a = _rate_array(63, 100)
    result = paired_bootstrap(a, a.copy())
    assert isinstance(result, PairedComparison)
    assert result.diff == 0.0
    assert result.low == result.high == 0.0
    assert result.p_value == 1.0
    assert result.mcnemar_p == 1.0
    assert (result.n, result.only_a, result.only_b) == (100, 0, 0)


def test_paired_clearly_better_system() -> None:
    a = _rate_array(90, 100)
    b = _rate_array(60, 100)  # every instance b gets right, a gets right too
    result = paired_bootstrap(a, b)
    assert result.diff == pytest.approx(0.30)
    assert (result.n, result.only_a, result.only_b) == (100, 30, 0)
    assert 0.0 < result.low <= result.diff <= result.high
    assert result.p_value < 0.001
    assert result.mcnemar_p < 0.001
    assert result.mcnemar_p == pytest.approx(2 * 0.5**30, rel=1e-9)


def test_paired_is_antisymmetric() -> None:
    a, b = _discordant(14, 9, both=50, neither=27)
    ab = paired_bootstrap(a, b, seed=3)
    ba = paired_bootstrap(b, a, seed=3)
    assert ba.diff == pytest.approx(-ab.diff)
    assert (ba.low, ba.high) == pytest.approx((-ab.high, -ab.low))
    assert ba.p_value == ab.p_value
    assert ba.mcnemar_p == ab.mcnemar_p
    assert (ba.only_a, ba.only_b) == (ab.only_b, ab.only_a)


def test_paired_same_seed_is_identical() -> None:
    a, b = _discordant(20, 12, both=100, neither=68)
    assert paired_bootstrap(a, b, seed=11) == paired_bootstrap(a, b, seed=11)


def test_paired_small_difference_not_significant() -> None:
    a, b = _discordant(11, 9, both=50, neither=30)
    result = paired_bootstrap(a, b)
    assert result.low < 0.0 < result.high
    assert result.p_value > 0.5
    assert result.mcnemar_p == pytest.approx(_exact_mcnemar(11, 9))


@pytest.mark.parametrize(
    ("len_a", "len_b"),
    [pytest.param(10, 9, id="b-shorter"), pytest.param(3, 4, id="a-shorter")],
)
def test_paired_mismatched_lengths_raise(len_a: int, len_b: int) -> None:
    with pytest.raises(ValueError, match="same instances"):
        paired_bootstrap(np.ones(len_a, dtype=bool), np.ones(len_b, dtype=bool))


def test_paired_rejects_bad_level() -> None:
    with pytest.raises(ValueError):
        paired_bootstrap([True], [False], level=1.5)


def test_mcnemar_pinned_value() -> None:
    a, b = _discordant(10, 2, both=30, neither=8)
    result = paired_bootstrap(a, b)
    assert (result.only_a, result.only_b) == (10, 2)
    # 2 * P(X <= 2), X ~ Binom(12, 1/2) = 2 * (1 + 12 + 66) / 4096 = 0.03857421875
    assert result.mcnemar_p == pytest.approx(0.03857421875, rel=1e-12)
    assert result.mcnemar_p == pytest.approx(0.03857, abs=1e-5)


@pytest.mark.parametrize(
    ("only_a", "only_b"),
    [
        pytest.param(0, 0, id="no-discordant"),
        pytest.param(1, 0, id="one-discordant"),
        pytest.param(2, 10, id="reversed"),
        pytest.param(5, 5, id="balanced"),
        pytest.param(0, 5, id="one-sided-5"),
        pytest.param(40, 60, id="m100"),
        pytest.param(300, 250, id="m550"),
        pytest.param(1, 29, id="one-sided-30"),
        pytest.param(1040, 960, id="m2000"),
        pytest.param(2600, 2400, id="m5000-significant"),
    ],
)
def test_mcnemar_matches_exact_binomial(only_a: int, only_b: int) -> None:
    a, b = _discordant(only_a, only_b, both=3, neither=2)
    assert paired_bootstrap(a, b, n_resamples=10).mcnemar_p == pytest.approx(
        _exact_mcnemar(only_a, only_b), rel=1e-9
    )


@pytest.mark.parametrize(
    ("only_a", "only_b"),
    [pytest.param(3, 9, id="m12"), pytest.param(77, 50, id="m127"), pytest.param(500, 500, id="tied")],
)
def test_mcnemar_matches_scipy_binomtest(only_a: int, only_b: int) -> None:
    a, b = _discordant(only_a, only_b, both=1)
    expected = scipy_stats.binomtest(min(only_a, only_b), only_a + only_b, 0.5).pvalue
    assert paired_bootstrap(a, b, n_resamples=10).mcnemar_p == pytest.approx(expected, rel=1e-12)


# --------------------------------------------------------------------------- summarize_seeds


def test_summarize_seeds_pinned() -> None:
    summary = summarize_seeds([0.61, 0.62, 0.60])
    assert isinstance(summary, SeedSummary)
    assert summary.mean == pytest.approx(0.61)
    assert summary.range == pytest.approx(0.02)
    assert summary.std == pytest.approx(0.01)
    assert (summary.min, summary.max, summary.n) == (0.60, 0.62, 3)


def test_summarize_seeds_single_value() -> None:
    summary = summarize_seeds([0.7])
    assert (summary.mean, summary.std, summary.min, summary.max, summary.range, summary.n) == (
        0.7,
        0.0,
        0.7,
        0.7,
        0.0,
        1,
    )


@pytest.mark.parametrize(
    "values",
    [
        pytest.param([], id="empty"),
        pytest.param([0.5, NAN], id="nan"),
        pytest.param([INF], id="inf"),
    ],
)
def test_summarize_seeds_rejects_invalid(values: list[float]) -> None:
    with pytest.raises(ValueError):
        summarize_seeds(values)


def test_summarize_seeds_matches_scipy_describe() -> None:
    values = [0.612, 0.598, 0.634, 0.605, 0.621]
    summary, described = summarize_seeds(values), scipy_stats.describe(values)
    assert summary.mean == pytest.approx(described.mean)
    assert summary.std == pytest.approx(math.sqrt(described.variance)), "std must be ddof=1"
    assert (summary.min, summary.max) == described.minmax
    assert summary.n == described.nobs


# --------------------------------------------------------------------------- correlate

FOUR_X = [55.37, 53.62, 55.31, 56.81]
FOUR_Y = [70.59, 65.13, 68.70, 77.94]
SIX_X = [44.60, 53.05, 53.62, 55.31, 55.99, 56.81]
SIX_Y = [54.67, 71.15, 71.15, 74.46, 75.51, 76.17]


def test_correlate_four_points_pinned() -> None:
    c = correlate(FOUR_X, FOUR_Y)
    assert isinstance(c, Correlation) and c.n == 4
    assert round(c.pearson_r, 4) == 0.9587, "Pearson r of the 4-point fact drifted"
    assert round(c.pearson_p, 4) == 0.0413, "Pearson p of the 4-point fact drifted"
    assert c.spearman_rho == pytest.approx(1.0) and c.kendall_tau == pytest.approx(1.0)
    # All 4! orderings equally likely: P(tau = 1 or -1) = 2 / 24.
    assert c.kendall_p == pytest.approx(2 / 24)


def test_correlate_six_points_pinned() -> None:
    c = correlate(SIX_X, SIX_Y)
    assert round(c.pearson_r, 4) == 0.9974
    assert c.pearson_p == pytest.approx(1.0e-5, rel=0.05), "expected p of about 1.0e-5"


def _pearson_by_hand(x: list[float], y: list[float]) -> float:
    mx, my = sum(x) / len(x), sum(y) / len(y)
    sxy = sum((a - mx) * (b - my) for a, b in zip(x, y))
    return sxy / math.sqrt(sum((a - mx) ** 2 for a in x) * sum((b - my) ** 2 for b in y))


@pytest.mark.parametrize(
    ("x", "y"),
    [
        pytest.param(FOUR_X, FOUR_Y, id="four"),
        pytest.param(SIX_X, SIX_Y, id="six-with-tie"),
        pytest.param([1.0, 2.0, 3.0, 4.0, 5.0], [2.0, 1.0, 4.0, 3.0, 5.0], id="shuffled"),
        pytest.param([3.0, 1.0, 2.0], [-1.0, 0.5, 0.0], id="negative-n3"),
    ],
)
def test_correlate_matches_independent_computations(x: list[float], y: list[float]) -> None:
    c = correlate(x, y)
    assert c.pearson_r == pytest.approx(_pearson_by_hand(x, y), rel=1e-12)
    assert (c.spearman_rho, c.spearman_p) == pytest.approx(tuple(scipy_stats.spearmanr(x, y)))
    assert (c.kendall_tau, c.kendall_p) == pytest.approx(tuple(scipy_stats.kendalltau(x, y)))


def test_correlate_interval_contains_r_and_is_seeded() -> None:
    c = correlate(SIX_X, SIX_Y, n_boot=500, seed=3)
    assert -1.0 <= c.r_ci_low <= c.pearson_r <= c.r_ci_high <= 1.0
    assert correlate(SIX_X, SIX_Y, n_boot=500, seed=3) == c, "same seed must give the same interval"
    others = {(correlate(SIX_X, SIX_Y, n_boot=500, seed=s).r_ci_low) for s in range(4)}
    assert len(others) > 1, "the seed is not used"


def test_correlate_interval_narrows_with_more_points() -> None:
    rng = np.random.default_rng(0)
    x_small, x_large = rng.normal(size=10), rng.normal(size=400)
    small = correlate(x_small, x_small + rng.normal(size=10))
    large = correlate(x_large, x_large + rng.normal(size=400))
    assert (large.r_ci_high - large.r_ci_low) < (small.r_ci_high - small.r_ci_low) / 2


def test_correlate_tiny_sample_has_no_warnings_or_nan() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # degenerate resamples are dropped, not warned about
        c = correlate([1.0, 2.0, 3.0], [1.0, 3.0, 2.0], n_boot=300)
    assert not math.isnan(c.r_ci_low) and not math.isnan(c.r_ci_high)


@pytest.mark.parametrize(
    ("x", "y", "kwargs", "match"),
    [
        pytest.param([1.0, 2.0], [1.0, 2.0], {}, "at least 3 points", id="n2"),
        pytest.param([1.0, 2.0, 3.0], [1.0, 2.0], {}, "equal length", id="lengths"),
        pytest.param([1.0, 1.0, 1.0], [1.0, 2.0, 3.0], {}, "x is constant", id="constant-x"),
        pytest.param([1.0, 2.0, 3.0], [4.0, 4.0, 4.0], {}, "y is constant", id="constant-y"),
        pytest.param([1.0, NAN, 3.0], [1.0, 2.0, 3.0], {}, "non-finite", id="nan"),
        pytest.param([1.0, 2.0, 3.0], [1.0, 2.0, 3.5], {"n_boot": 0}, "n_boot must be >= 1", id="n-boot"),
        pytest.param([1.0, 2.0, 3.0], [1.0, 2.0, 3.5], {"level": 1.0}, "level", id="level"),
    ],
)
def test_correlate_rejects_invalid(x: list[float], y: list[float], kwargs: dict[str, float], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        correlate(x, y, **kwargs)  # type: ignore[arg-type]


def test_import_stays_cheap() -> None:
    code = "import sys, harness.evaluation.stats; print(sorted(m for m in ('scipy', 'torch') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]", "import harness.evaluation.stats must not import scipy or torch"
