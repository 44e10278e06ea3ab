"""Statistics for benchmark accuracy: correctness, bootstrap intervals, paired tests.

An *instance* is scored by an encoder as one positive statement plus one or more
negatives.  The instance is answered correctly when the positive scores strictly
highest (:func:`is_correct`), and a system's accuracy is the fraction of
instances it gets right (:func:`accuracy`).

Uncertainty is reported with a percentile bootstrap over instances
(:func:`bootstrap_ci`, on ``scipy.stats.bootstrap``).  Two systems evaluated on
the *same* instances are compared with :func:`paired_bootstrap`, which
resamples instances jointly (so the per-instance correlation between the
systems is kept; scipy has no such test) and also reports an exact McNemar test
on the discordant pairs (``scipy.stats.binomtest``).  :func:`summarize_seeds`
condenses repeated runs (for example training seeds) of one configuration, and
:func:`correlate` relates two per-system metrics (Pearson, Spearman, Kendall,
with a bootstrap interval on Pearson's r).

Every random quantity is drawn from ``numpy.random.default_rng(seed)``, so a
result is reproducible for a given seed.  Resampling is vectorised; the only
Python loop is over chunks of resamples, sized to bound memory use.  scipy is
imported inside the functions that need it, so ``import harness.evaluation.stats`` stays
cheap.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt

__all__ = [
    "CorrectLike",
    "Correlation",
    "Interval",
    "PairedComparison",
    "SeedSummary",
    "accuracy",
    "bootstrap_ci",
    "mean_ci",
    "correlate",
    "is_correct",
    "paired_bootstrap",
    "summarize_seeds",
]

CorrectLike: TypeAlias = Sequence[bool] | npt.NDArray[Any]
"""Per-instance correctness: a 1-D sequence of bools (or of 0/1 integers)."""

# Upper bound on the number of index entries drawn per chunk of resamples
# (int64 indices: 2**22 entries is 32 MiB).
_MAX_CHUNK_ELEMENTS = 1 << 22


@dataclass(frozen=True)
class Interval:
    """A point estimate with a two-sided confidence interval.

    ``level`` is the nominal coverage, e.g. ``0.95``.
    """

    value: float
    low: float
    high: float
    level: float


@dataclass(frozen=True)
class PairedComparison:
    """Result of comparing system A with system B on the same instances.

    ``diff`` is ``accuracy(a) - accuracy(b)`` and ``[low, high]`` its percentile
    bootstrap interval.  ``p_value`` is the two-sided bootstrap p-value for
    ``diff == 0`` (shifted null, see :func:`paired_bootstrap`); ``mcnemar_p`` is
    the exact two-sided McNemar p-value.  ``only_a`` counts instances that A
    gets right and B gets wrong, ``only_b`` the reverse; ``n`` is the number of
    instances.
    """

    diff: float
    low: float
    high: float
    p_value: float
    mcnemar_p: float
    n: int
    only_a: int
    only_b: int


@dataclass(frozen=True)
class SeedSummary:
    """Summary of one metric over repeated runs (seeds).

    ``std`` is the sample standard deviation (``ddof=1``), ``0.0`` for a single
    run; ``range`` is ``max - min``.
    """

    mean: float
    std: float
    min: float
    max: float
    range: float
    n: int


@dataclass(frozen=True)
class Correlation:
    """How two per-system metrics move together, over ``n`` paired points.

    ``pearson_r``/``spearman_rho``/``kendall_tau`` are the coefficients and the
    ``*_p`` fields their two-sided p-values (``scipy.stats.pearsonr``,
    ``spearmanr``, ``kendalltau``; scipy's Spearman p is a t approximation, 0
    when ``|rho| == 1``, so read Kendall's exact p for a handful of points).  ``[r_ci_low, r_ci_high]`` is a percentile
    bootstrap interval for Pearson's r, resampling the points (pairs kept).
    """

    n: int
    pearson_r: float
    pearson_p: float
    spearman_rho: float
    spearman_p: float
    kendall_tau: float
    kendall_p: float
    r_ci_low: float
    r_ci_high: float


def is_correct(scores: Sequence[float]) -> bool:
    """Whether one instance is answered correctly.

    ``scores[0]`` is the positive statement's score and ``scores[1:]`` the
    negatives'.  The instance is correct iff ``scores[0]`` is *strictly* greater
    than every negative: a tie counts as wrong, and so does a NaN anywhere.

    Raises ``ValueError`` when there are fewer than two scores (an instance
    without a negative cannot be judged) or the scores are not one-dimensional.
    """
    arr = np.asarray(scores, dtype=np.float64)
    if arr.ndim != 1 or arr.size < 2:
        raise ValueError(
            f"is_correct needs a 1-D sequence of at least 2 scores (positive first), "
            f"got shape {arr.shape}"
        )
    if bool(np.isnan(arr).any()):
        return False
    return bool(arr[0] > arr[1:].max())


def _as_correct_array(correct: CorrectLike, name: str = "correct") -> npt.NDArray[np.bool_]:
    """Validate per-instance correctness and return it as a 1-D bool array."""
    arr = np.asarray(correct)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty: accuracy of zero instances is undefined")
    if arr.dtype != np.bool_:
        if arr.dtype.kind not in "iuf" or not bool(np.isin(arr, (0, 1)).all()):
            raise ValueError(f"{name} must hold booleans (or 0/1), got dtype {arr.dtype}")
        arr = arr.astype(np.bool_)
    return arr


def _check_bootstrap_options(level: float, n_resamples: int, name: str = "n_resamples") -> None:
    """Raise ``ValueError`` for a level outside (0, 1) or a non-positive count."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    if n_resamples < 1:
        raise ValueError(f"{name} must be >= 1, got {n_resamples!r}")


def accuracy(correct: CorrectLike) -> float:
    """Fraction of instances answered correctly.

    ``correct`` holds one bool (or 0/1) per instance.  Raises ``ValueError`` when
    it is empty, not one-dimensional, or holds anything but booleans/0/1.
    """
    arr = _as_correct_array(correct)
    return float(np.count_nonzero(arr)) / int(arr.size)


def _resampled_sums(
    values: npt.NDArray[np.int64], n_resamples: int, rng: np.random.Generator
) -> npt.NDArray[np.int64]:
    """Sum of ``values`` over each of ``n_resamples`` bootstrap resamples.

    Each resample draws ``len(values)`` indices with replacement.  Sums are
    integers, so comparisons against observed sums are exact.
    """
    n = int(values.size)
    rows = max(1, _MAX_CHUNK_ELEMENTS // n)
    out: npt.NDArray[np.int64] = np.empty(n_resamples, dtype=np.int64)
    for start in range(0, n_resamples, rows):
        stop = min(start + rows, n_resamples)
        idx = rng.integers(0, n, size=(stop - start, n))
        out[start:stop] = values[idx].sum(axis=1, dtype=np.int64)
    return out


def _percentiles(samples: npt.NDArray[np.float64], level: float) -> tuple[float, float]:
    """Equal-tailed percentile interval of ``samples`` at coverage ``level``."""
    alpha = 1.0 - level
    low, high = np.quantile(samples, [alpha / 2.0, 1.0 - alpha / 2.0])
    return float(low), float(high)


def _rng_argument(rng: np.random.Generator) -> dict[str, np.random.Generator]:
    """``rng=`` for scipy >= 1.15 (SPEC 7), ``random_state=`` for older releases."""
    import inspect

    from scipy import stats

    name = "rng" if "rng" in inspect.signature(stats.bootstrap).parameters else "random_state"
    return {name: rng}


def bootstrap_ci(
    correct: CorrectLike,
    *,
    level: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
) -> Interval:
    """Accuracy with a percentile bootstrap confidence interval.

    ``scipy.stats.bootstrap`` (``method="percentile"``) resamples the instances
    with replacement ``n_resamples`` times, drawing from
    ``numpy.random.default_rng(seed)``; the interval is the equal-tailed
    ``level`` percentile range of the resampled accuracies, so the result is
    deterministic for a given ``seed``.  With a single instance, or when every
    instance is right (or every one wrong), the bootstrap distribution is
    degenerate and the interval collapses to the point estimate.

    Raises ``ValueError`` for empty/invalid ``correct``, ``level`` outside
    (0, 1) or ``n_resamples < 1``.
    """
    arr = _as_correct_array(correct)
    _check_bootstrap_options(level, n_resamples)
    value = accuracy(arr)
    if value in (0.0, 1.0):  # includes n == 1; scipy rejects n < 2 and warns on constants
        return Interval(value=value, low=value, high=value, level=level)
    from scipy import stats

    res = stats.bootstrap(
        (arr.astype(np.float64),),
        np.mean,
        n_resamples=n_resamples,
        batch=max(1, _MAX_CHUNK_ELEMENTS // int(arr.size)),
        vectorized=True,
        confidence_level=level,
        method="percentile",
        **_rng_argument(np.random.default_rng(seed)),
    )
    ci = res.confidence_interval
    return Interval(value=value, low=float(ci.low), high=float(ci.high), level=level)


def mean_ci(values: Sequence[float], *, level: float = 0.95, n_resamples: int = 2000, seed: int = 0) -> Interval:
    """The mean of real-valued per-item scores (or paired differences) with a percentile bootstrap
    interval (``scipy.stats.bootstrap``); constant or single values give a collapsed interval."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0 or not np.isfinite(arr).all():
        raise ValueError("mean_ci needs at least one finite value")
    _check_bootstrap_options(level, n_resamples)
    value = float(arr.mean())
    if arr.size == 1 or float(arr.min()) == float(arr.max()):
        return Interval(value=value, low=value, high=value, level=level)
    from scipy import stats

    res = stats.bootstrap((arr,), np.mean, n_resamples=n_resamples, vectorized=True, confidence_level=level,
                          method="percentile", **_rng_argument(np.random.default_rng(seed)))
    ci = res.confidence_interval
    return Interval(value=value, low=float(ci.low), high=float(ci.high), level=level)


def _mcnemar_exact(only_a: int, only_b: int) -> float:
    """Exact two-sided McNemar p-value for discordant counts ``only_a``/``only_b``.

    Under the null each discordant pair favours A with probability 1/2, so this
    is the two-sided binomial test of ``min(only_a, only_b)`` successes in
    ``only_a + only_b`` trials (``scipy.stats.binomtest``); with no discordant
    pair there is no evidence either way and the p-value is 1.
    """
    m = only_a + only_b
    if m == 0:
        return 1.0
    from scipy import stats

    return min(1.0, float(stats.binomtest(min(only_a, only_b), m, 0.5).pvalue))


def paired_bootstrap(
    correct_a: CorrectLike,
    correct_b: CorrectLike,
    *,
    n_resamples: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> PairedComparison:
    """Compare two systems scored on the same instances, in the same order.

    Instances are resampled jointly, keeping each A/B pair together.  ``low``
    and ``high`` are the percentile interval of the resampled differences
    ``acc_a - acc_b``.

    ``p_value`` uses the *shifted null*: the bootstrap distribution of the
    difference is re-centred on 0 and ``p = mean(|d* - d| >= |d|)`` over the
    resampled differences ``d*`` (computed on integer counts, so exact).  Under
    a symmetric bootstrap distribution this equals twice the fraction of
    resampled differences on the other side of 0, and it never exceeds 1.  It
    is resolved to ``1 / n_resamples``: ``0.0`` means ``p < 1 / n_resamples``.
    Identical systems give ``p_value == 1``.

    ``mcnemar_p`` is the exact two-sided binomial McNemar test on the discordant
    pairs (``only_a`` vs ``only_b``); it needs no resampling.

    Raises ``ValueError`` when the arrays differ in length or are invalid, for
    ``level`` outside (0, 1) or ``n_resamples < 1``.
    """
    a = _as_correct_array(correct_a, "correct_a")
    b = _as_correct_array(correct_b, "correct_b")
    if a.size != b.size:
        raise ValueError(
            f"paired comparison needs the same instances: correct_a has {a.size}, "
            f"correct_b has {b.size}"
        )
    _check_bootstrap_options(level, n_resamples)
    n = a.size
    delta = a.astype(np.int64) - b.astype(np.int64)  # +1 only A right, -1 only B
    observed = int(delta.sum())
    rng = np.random.default_rng(seed)
    sums = _resampled_sums(delta, n_resamples, rng)
    low, high = _percentiles(sums / n, level)
    p_value = float(np.mean(np.abs(sums - observed) >= abs(observed)))
    only_a = int(np.count_nonzero(delta == 1))
    only_b = int(np.count_nonzero(delta == -1))
    return PairedComparison(
        diff=observed / n,
        low=low,
        high=high,
        p_value=min(1.0, p_value),
        mcnemar_p=_mcnemar_exact(only_a, only_b),
        n=n,
        only_a=only_a,
        only_b=only_b,
    )


def summarize_seeds(values: Sequence[float]) -> SeedSummary:
    """Mean, sample standard deviation (``ddof=1``), min, max and range of runs.

    ``std`` is ``0.0`` for a single value.  Raises ``ValueError`` when
    ``values`` is empty or holds a non-finite number.
    """
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"summarize_seeds needs a non-empty 1-D sequence, got shape {arr.shape}")
    if not bool(np.isfinite(arr).all()):
        raise ValueError(f"summarize_seeds got a non-finite value: {arr.tolist()}")
    low, high = float(arr.min()), float(arr.max())
    std = float(arr.std(ddof=1)) if arr.size > 1 else 0.0
    return SeedSummary(
        mean=float(arr.mean()),
        std=std,
        min=low,
        max=high,
        range=high - low,
        n=int(arr.size),
    )


def _as_points(x: Sequence[float], y: Sequence[float]) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Validate two paired samples for :func:`correlate` and return them as float arrays."""
    xa, ya = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if xa.ndim != 1 or ya.ndim != 1 or xa.size != ya.size:
        raise ValueError(f"correlate needs two 1-D sequences of equal length, got shapes {xa.shape} and {ya.shape}")
    if xa.size < 3:
        raise ValueError(f"correlate needs at least 3 points, got {xa.size}")
    if not (bool(np.isfinite(xa).all()) and bool(np.isfinite(ya).all())):
        raise ValueError(f"correlate got a non-finite value: x={xa.tolist()}, y={ya.tolist()}")
    for name, arr in (("x", xa), ("y", ya)):
        if bool((arr == arr[0]).all()):
            raise ValueError(f"correlate: {name} is constant ({arr[0]!r}), so no correlation is defined")
    return xa, ya


def _resampled_pearson(
    x: npt.NDArray[np.float64], y: npt.NDArray[np.float64], n_boot: int, rng: np.random.Generator
) -> npt.NDArray[np.float64]:
    """Pearson's r on ``n_boot`` resamples of the points (pairs kept), degenerate ones dropped.

    A resample that repeats one x (or one y) value has no r; it is dropped
    rather than counted, which is why this is not ``scipy.stats.bootstrap``
    (its interval turns NaN, with a warning, as soon as one resample is
    degenerate, and that is common for the handful of points compared here).
    """
    idx = rng.integers(0, x.size, size=(n_boot, x.size))
    xs, ys = x[idx], y[idx]
    # Exact test on the raw values: a centred constant row need not be exactly 0.
    ok = (xs.max(axis=1) > xs.min(axis=1)) & (ys.max(axis=1) > ys.min(axis=1))
    xs = xs[ok] - xs[ok].mean(axis=1, keepdims=True)
    ys = ys[ok] - ys[ok].mean(axis=1, keepdims=True)
    den = np.sqrt((xs * xs).sum(axis=1) * (ys * ys).sum(axis=1))
    r: npt.NDArray[np.float64] = np.clip((xs * ys).sum(axis=1) / den, -1.0, 1.0)
    return r


def correlate(
    x: Sequence[float],
    y: Sequence[float],
    *,
    n_boot: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> Correlation:
    """Pearson, Spearman and Kendall correlation of paired points, with a CI on r.

    ``x[i]`` and ``y[i]`` are two metrics of the same system (for example TED
    accuracy and a downstream score).  The interval on Pearson's r is the
    equal-tailed ``level`` percentile range over ``n_boot`` resamples of the
    points drawn from ``numpy.random.default_rng(seed)``; resamples with a
    constant x or y are dropped.  The interval is NaN only if every resample
    was dropped, which takes a tiny ``n_boot``.

    Raises ``ValueError`` for sequences of unequal length or fewer than 3
    points, non-finite values, a constant ``x`` or ``y``, ``level`` outside
    (0, 1) or ``n_boot < 1``.
    """
    xa, ya = _as_points(x, y)
    _check_bootstrap_options(level, n_boot, "n_boot")
    from scipy import stats

    pearson = stats.pearsonr(xa, ya)
    spearman = stats.spearmanr(xa, ya)
    kendall = stats.kendalltau(xa, ya)
    boot = _resampled_pearson(xa, ya, n_boot, np.random.default_rng(seed))
    low, high = _percentiles(boot, level) if boot.size else (float("nan"), float("nan"))
    return Correlation(
        n=int(xa.size),
        pearson_r=float(pearson.statistic),
        pearson_p=float(pearson.pvalue),
        spearman_rho=float(spearman.statistic),
        spearman_p=float(spearman.pvalue),
        kendall_tau=float(kendall.statistic),
        kendall_p=float(kendall.pvalue),
        r_ci_low=low,
        r_ci_high=high,
    )
