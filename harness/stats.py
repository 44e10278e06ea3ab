"""Statistics for benchmark accuracy: correctness, bootstrap intervals, paired tests.

An *instance* is scored by an encoder as one positive statement plus one or more
negatives.  The instance is answered correctly when the positive scores strictly
highest (:func:`is_correct`), and a system's accuracy is the fraction of
instances it gets right (:func:`accuracy`).

Uncertainty is reported with a percentile bootstrap over instances
(:func:`bootstrap_ci`).  Two systems evaluated on the *same* instances are
compared with :func:`paired_bootstrap`, which resamples instances jointly (so
the per-instance correlation between the systems is kept) and also reports an
exact McNemar test on the discordant pairs.  :func:`summarize_seeds` condenses
repeated runs (for example training seeds) of one configuration.

Every random quantity is drawn from ``numpy.random.default_rng(seed)``, so a
result is reproducible for a given seed.  Resampling is vectorised; the only
Python loop is over chunks of resamples, sized to bound memory use.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt

__all__ = [
    "CorrectLike",
    "Interval",
    "PairedComparison",
    "SeedSummary",
    "accuracy",
    "bootstrap_ci",
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


def _check_bootstrap_options(level: float, n_resamples: int) -> None:
    """Raise ``ValueError`` for a level outside (0, 1) or a non-positive count."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples!r}")


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


def bootstrap_ci(
    correct: CorrectLike,
    *,
    level: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
) -> Interval:
    """Accuracy with a percentile bootstrap confidence interval.

    Instances are resampled with replacement ``n_resamples`` times; the interval
    is the equal-tailed ``level`` percentile range of the resampled accuracies
    (``numpy.quantile`` with linear interpolation).  The result is
    deterministic for a given ``seed``.  With a single instance, or when every
    instance is right (or every one wrong), the interval collapses to the point
    estimate.

    Raises ``ValueError`` for empty/invalid ``correct``, ``level`` outside
    (0, 1) or ``n_resamples < 1``.
    """
    arr = _as_correct_array(correct)
    _check_bootstrap_options(level, n_resamples)
    rng = np.random.default_rng(seed)
    sums = _resampled_sums(arr.astype(np.int64), n_resamples, rng)
    low, high = _percentiles(sums / arr.size, level)
    return Interval(value=accuracy(arr), low=low, high=high, level=level)


def _mcnemar_exact(only_a: int, only_b: int) -> float:
    """Exact two-sided McNemar p-value for discordant counts ``only_a``/``only_b``.

    Under the null each discordant pair favours A with probability 1/2, so the
    p-value is ``min(1, 2 * P(X <= min(only_a, only_b)))`` for
    ``X ~ Binomial(only_a + only_b, 1/2)`` (the symmetric binomial makes this
    equal to the usual "sum of outcomes no more likely" definition).  The tail is
    summed in log space, which stays accurate for large counts.
    """
    m = only_a + only_b
    if m == 0:
        return 1.0
    k = min(only_a, only_b)
    j: npt.NDArray[np.float64] = np.arange(1, k + 1, dtype=np.float64)
    log_binom = np.concatenate(([0.0], np.cumsum(np.log(m - j + 1.0) - np.log(j))))
    top = float(log_binom.max())
    log_tail = top + math.log(float(np.exp(log_binom - top).sum())) - m * math.log(2.0)
    return min(1.0, 2.0 * math.exp(log_tail))


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
