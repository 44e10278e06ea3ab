"""Conformance check for downstream scorers: `check_scorer`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from harness._fake import NOT_YOURS
from harness._exceptions import HarnessError
from harness.types import DownstreamMetric, ScoredRow, Scorer

__all__ = ["CHECK_ROW", "check_scorer"]


CHECK_ROW = ScoredRow(encoder="check-encoder", extractor="last", aggregator="mean-pool", ted=61.5)


def check_scorer(
    make: Callable[..., Scorer | None],
    name: str,
    options: dict[str, Any] | None = None,
    *,
    row: ScoredRow | None = None,
    pm: Any = None,
) -> list[DownstreamMetric]:
    """Assert that ``make(name=name, options=options)`` gives a scorer the harness can use; returns its metrics.

    ``make`` is typically the plugin's ``harness_make_scorer``.  Checks that it returns None for a
    name that is not its own (`NOT_YOURS`), builds ``name`` (any `harness.HarnessError` it raises
    is reported, so give the options it needs), that the result satisfies `harness.Scorer` (a
    ``name``, ``rows()`` of `harness.ScoredRow`, ``score(row)``), calls its optional ``bind`` with a
    ``harness score`` context (over ``pm``, default the installed plugins), and that scoring one row
    -- the first of ``rows()``, else ``row`` (default `CHECK_ROW`, TED 61.5%) -- returns >= 1
    well-formed `harness.DownstreamMetric`: non-empty benchmark and metric names, a finite value,
    ``n`` None or a count, ``ci`` None or a finite (low, high) with low <= high.
    """
    import math

    where = f"Scorer {name!r}"
    other = make(name=NOT_YOURS, options={})
    assert other is None, (
        f"{where}: harness_make_scorer built a {type(other).__name__} for the name {NOT_YOURS!r}, which is not "
        "its own; return None for names that are not yours (a factory hook that answers every name hides "
        "every other plugin's)"
    )
    try:
        scorer = make(name=name, options=dict(options or {}))
    except HarnessError as exc:
        raise AssertionError(f"{where}: building it raised {type(exc).__name__}: {exc}") from None
    assert scorer is not None, f"{where}: harness_make_scorer returned None for its own name"
    assert isinstance(scorer, Scorer), (
        f"{where}: harness_make_scorer returned a {type(scorer).__name__}, which lacks name, rows or score "
        "(harness.Scorer)"
    )
    assert isinstance(scorer.name, str) and scorer.name, f"{where}: its name is {scorer.name!r}, not a non-empty str"
    bind = getattr(scorer, "bind", None)
    if callable(bind):
        from harness.downstream.context import ScoreContext

        bind(ScoreContext.create(pm))
    known = list(scorer.rows())
    bad = [r for r in known if not isinstance(r, ScoredRow)]
    assert not bad, f"{where}: rows() holds a {type(bad[0]).__name__}; expected harness.ScoredRow"
    target = known[0] if known else (row or CHECK_ROW)
    metrics = scorer.score(target)
    assert isinstance(metrics, list), f"{where}: score(row) returned a {type(metrics).__name__}, not a list"
    assert metrics, (
        f"{where}: score(row) returned no metric for row {target.encoder}/{target.extractor} (TED {target.ted}); "
        "a scorer that scores on demand must score any row, one that reads recorded numbers lists them in rows()"
    )
    for i, m in enumerate(metrics):
        at = f"{where}: score(row)[{i}]"
        assert isinstance(m, DownstreamMetric), f"{at} is a {type(m).__name__}, not harness.DownstreamMetric"
        assert isinstance(m.benchmark, str) and m.benchmark and isinstance(m.metric, str) and m.metric, (
            f"{at}: benchmark {m.benchmark!r} and metric {m.metric!r} must be non-empty strings"
        )
        assert isinstance(m.value, (int, float)) and not isinstance(m.value, bool) and math.isfinite(m.value), (
            f"{at}: value {m.value!r} is not a finite number"
        )
        assert m.n is None or (isinstance(m.n, int) and not isinstance(m.n, bool) and m.n >= 0), (
            f"{at}: n {m.n!r} must be None or a count >= 0"
        )
        if m.ci is not None:
            ok = (len(m.ci) == 2 and all(isinstance(v, (int, float)) and math.isfinite(v) for v in m.ci)
                  and m.ci[0] <= m.ci[1])
            assert ok, f"{at}: ci {m.ci!r} must be None or a finite (low, high) with low <= high"
    return metrics
