"""``harness correlate``: does TED accuracy predict how good a generator built on the encoder is?

TED rows come from results (``results.json`` files or folders, read with `read_results`) or
from a CSV of ``encoder, extractor, ted[, category]``; downstream numbers come from a `Scorer`
built by ``harness_make_scorer`` -- by default the ``recorded`` scorer, reading a CSV/JSON of
``encoder, extractor, benchmark, metric, value[, n][, ted]`` (`read_downstream_file`).  Rows are
joined on (encoder, extractor), and every (benchmark, metric) is correlated with the overall TED
accuracy and with each TED category, only through `harness.evaluation.stats.correlate`.  TED values are
percentages throughout (results hold fractions; they are scaled here).
"""

from __future__ import annotations

import difflib
import json
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness._exceptions import ConfigError, DataError, PluginError, unknown_name
from harness.data.categories import CATEGORIES
from harness.downstream.rows import TedPoint, read_downstream_file, read_ted_csv, short_task
from harness.evaluation.results import RunResult, read_results
from harness.evaluation.stats import Correlation, correlate
from harness.types import DownstreamMetric, ScoredRow, Scorer

__all__ = [
    "CorrelateResult",
    "CorrelationLine",
    "Point",
    "TedPoint",
    "TedSet",
    "correlate_downstream",
    "make_scorer",
    "one_series",
    "scored_rows",
    "read_downstream_file",
    "read_ted",
    "short_task",
    "ted_from_results",
    "write_correlate_json",
]

_DATA_SUFFIXES = (".csv", ".json", ".jsonl")


@dataclass
class TedSet:
    """TED points read from ``sources``, and what the results say about each (encoder, extractor)."""

    points: list[TedPoint] = field(default_factory=list)
    rows: dict[tuple[str, str], ScoredRow] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Point:
    """One joined row: its TED value on the slice and its downstream value."""

    encoder: str
    extractor: str
    ted: float
    value: float
    n: int | None = None


@dataclass(frozen=True)
class CorrelationLine:
    """TED (one slice) against one downstream (benchmark, metric); ``skipped`` says why there is no number."""

    benchmark: str
    metric: str
    category: str
    n: int
    correlation: Correlation | None
    skipped: str | None
    points: tuple[Point, ...]


@dataclass
class CorrelateResult:
    """Every correlation of one ``harness correlate``, with what was joined and what was not."""

    downstream: str
    ted_sources: list[str]
    aggregator: str | None
    task: str | None
    lines: list[CorrelationLine] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)  # downstream keys with no TED row
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The ``correlate.json`` object (NaN written as null)."""
        return _finite(asdict(self))  # type: ignore[no-any-return]


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def ted_from_results(result: RunResult) -> tuple[list[TedPoint], dict[tuple[str, str], ScoredRow]]:
    """TED points of a run: accuracy (percent, mean over seeds) per row, task and category.

    Control runs (``--control``) and caption-type slices are left out."""
    values: dict[tuple[str, str, str, str, str], list[float]] = defaultdict(list)
    for r in result.scores:
        if r.caption_type == "all" and r.control is None:
            values[(r.encoder, r.extractor, r.aggregator, short_task(r.task), r.category)].append(r.value)
    points = [TedPoint(enc, ext, 100 * sum(v) / len(v), cat, agg, task)
              for (enc, ext, agg, task, cat), v in values.items()]
    rows: dict[tuple[str, str], ScoredRow] = {}
    for p in points:
        prov = result.provenance.encoders.get(p.encoder)
        rows.setdefault((p.encoder, p.extractor), ScoredRow(
            encoder=p.encoder, extractor=p.extractor, aggregator=p.aggregator,
            checkpoint=prov.checkpoint if prov else None, revision=prov.revision if prov else None,
            provenance=asdict(prov) if prov else {}))
    return points, rows


def read_ted(sources: Sequence[str]) -> TedSet:
    """TED points from results files/folders and TED CSVs (``.csv``), in the order given."""
    from harness.registry import resolve_path

    ted = TedSet()
    for source in sources:
        path = resolve_path(source)
        ted.sources.append(source)
        if Path(path).suffix.lower() == ".csv":
            ted.points += read_ted_csv(path)
            continue
        points, rows = ted_from_results(read_results(path))
        ted.points += points
        for key, row in rows.items():
            ted.rows.setdefault(key, row)
    return ted


# --------------------------------------------------------------------------------- scorers


def make_scorer(pm: Any, spec: str, *, options: Mapping[str, Any] | None = None) -> Scorer:
    """The scorer ``--downstream`` names: a CSV/JSON file (the ``recorded`` scorer), NAME or NAME:ARG.

    ``options`` go to a named scorer's ``harness_make_scorer`` (e.g. ``harness score --option``)."""
    from harness.registry import resolve_path

    names = sorted({n for ns in pm.hook.harness_scorer_names() for n in ns})
    name, _, arg = spec.partition(":")
    opts: dict[str, Any]
    if name in names and not Path(spec).exists():
        opts = {**(options or {}), **({"arg": arg} if arg else {})}
    else:
        path = resolve_path(spec)
        looks_like_file = Path(path).suffix.lower() in _DATA_SUFFIXES or "/" in spec or "\\" in spec
        if not Path(path).is_file():
            if looks_like_file:
                raise DataError(spec, None, None, "does not exist (--downstream takes a CSV/JSON file of "
                                "downstream results, or a scorer name)")
            raise unknown_name("scorer", spec, names, hint="Or give a CSV/JSON file of downstream results.")
        name, opts = "recorded", {"path": path}
    scorer = pm.hook.harness_make_scorer(name=name, options=opts)
    if scorer is None:
        if name not in names:
            raise unknown_name("scorer", name, names, hint=(
                "The built-in scorers come with the 'builtin-scorers' entry point: reinstall with "
                "pip install -e ., or load them with -p harness_plugins.scorers."))
        raise PluginError(f"scorer {name!r} is listed by a plugin, but no plugin's harness_make_scorer built it")
    if not isinstance(scorer, Scorer):
        raise PluginError(f"harness_make_scorer returned a {type(scorer).__name__} for scorer {name!r}; a scorer needs "
                          "a name, rows() and score(row) (harness.Scorer)")
    return scorer


# ----------------------------------------------------------------------------- correlation


def one_series(points: list[TedPoint], aggregator: str | None, task: str | None) -> tuple[list[TedPoint], list[str]]:
    """Keep one (task, aggregator): the one asked for, else the first, with a note when there were several."""
    notes: list[str] = []
    for attr, wanted, flag in (("task", task, "--task"), ("aggregator", aggregator, "--aggregator")):
        have = list(dict.fromkeys(getattr(p, attr) for p in points if getattr(p, attr) is not None))
        if wanted is not None:
            if wanted not in have:
                raise unknown_name(attr, wanted, have, hint=f"({flag} picks one of those in the TED results)")
            points = [p for p in points if getattr(p, attr) in (wanted, None)]
        elif len(have) > 1:
            notes.append(f"TED {attr}s {', '.join(have)}: using {have[0]!r} (choose with {flag})")
            points = [p for p in points if getattr(p, attr) in (have[0], None)]
    return points, notes


def _no_match(scorer: Scorer, label: str, ted_keys: Sequence[str], unmatched: Sequence[str]) -> DataError:
    parts = []
    for key in unmatched[:6]:
        close = difflib.get_close_matches(key, ted_keys, n=1, cutoff=0.6)
        parts.append(f"{key} (closest: {close[0]})" if close else f"{key} (nothing close)")
    more = f" and {len(unmatched) - 6} more" if len(unmatched) > 6 else ""
    what = f"none of its rows ({', '.join(parts)}{more})" if unmatched else f"scorer {scorer.name!r} scored none"
    shown = ", ".join(ted_keys[:8]) + (", ..." if len(ted_keys) > 8 else "")
    return DataError(label, None, None, f"{what} matches a TED row (encoder/extractor); TED rows: {shown}")


def _category_order(points: Sequence[TedPoint]) -> list[str]:
    cats = {p.category for p in points if p.category != "all"}
    return [c for c in CATEGORIES if c in cats] + sorted(cats - set(CATEGORIES))


def scored_rows(points: Sequence[TedPoint], meta: Mapping[tuple[str, str], ScoredRow]) -> list[ScoredRow]:
    """The row a scorer is asked about for each overall TED point: its TED value, and the checkpoint,
    revision and provenance the results recorded for it (``meta``, e.g. `TedSet.rows`)."""
    out = []
    for p in points:
        base = meta.get((p.encoder, p.extractor)) or ScoredRow(p.encoder, p.extractor, p.aggregator)
        out.append(ScoredRow(p.encoder, p.extractor, base.aggregator, p.value, base.checkpoint, base.revision,
                             base.provenance))
    return out


def correlate_downstream(ted: TedSet | None, scorer: Scorer, *, label: str = "", aggregator: str | None = None,
                         task: str | None = None, n_boot: int = 2000, seed: int = 0) -> CorrelateResult:
    """Join TED rows to ``scorer``'s metrics by (encoder, extractor) and correlate each (benchmark, metric)
    with overall TED accuracy and with each TED category.  No TED set (or an empty one): the scorer's own
    TED column.  Raises `DataError` when no row matches, naming the unmatched keys and the closest."""
    label = label or scorer.name
    known = list(scorer.rows())
    points = list(ted.points) if ted is not None else []
    sources = list(ted.sources) if ted is not None else []
    if not points:
        points = [TedPoint(r.encoder, r.extractor, r.ted) for r in known if r.ted is not None]
        points = list({(p.encoder, p.extractor): p for p in points}.values())
        sources = [f"{label} (its ted column)"]
        if not points:
            raise ConfigError(f"no TED values: give results (results.json files or folders, or a CSV of encoder, "
                              f"extractor, ted) before --downstream, or a downstream file with a 'ted' column ({label})")
    points, notes = one_series(points, aggregator, task)
    series = points[0] if points else None
    result = CorrelateResult(downstream=label, ted_sources=sources, notes=notes,
                             aggregator=series.aggregator if series else None, task=series.task if series else None)
    by_slice: dict[tuple[str, str, str], float] = {}
    for p in points:  # the first source wins when two give the same row
        if by_slice.setdefault((p.encoder, p.extractor, p.category), p.value) != p.value and p.category == "all":
            result.notes.append(f"{p.encoder}/{p.extractor} appears in several TED sources: using the first")
    meta = ted.rows if ted is not None else {}
    metrics: dict[tuple[str, str], list[tuple[ScoredRow, DownstreamMetric]]] = defaultdict(list)
    firsts: dict[tuple[str, str], TedPoint] = {}
    for p in points:
        if p.category == "all":
            firsts.setdefault((p.encoder, p.extractor), p)
    overall = list(firsts.values())
    for row in scored_rows(overall, meta):
        for m in scorer.score(row):
            metrics[(m.benchmark, m.metric)].append((row, m))
    ted_keys = [f"{p.encoder}/{p.extractor}" for p in overall]
    result.unmatched = list(dict.fromkeys(f"{r.encoder}/{r.extractor}" for r in known
                                          if (r.encoder, r.extractor, "all") not in by_slice))
    if not metrics:
        raise _no_match(scorer, label, ted_keys, result.unmatched)
    for (bench, metric), joined in metrics.items():
        for cat in ["all", *_category_order(points)]:
            pts = tuple(Point(r.encoder, r.extractor, by_slice[(r.encoder, r.extractor, cat)], m.value, m.n)
                        for r, m in joined if (r.encoder, r.extractor, cat) in by_slice)
            result.lines.append(_line(bench, metric, cat, pts, n_boot=n_boot, seed=seed))
    return result


def _line(bench: str, metric: str, cat: str, pts: tuple[Point, ...], *, n_boot: int, seed: int) -> CorrelationLine:
    try:
        corr = correlate([p.ted for p in pts], [p.value for p in pts], n_boot=n_boot, seed=seed)
    except ValueError as exc:  # fewer than 3 points, or a constant side: say so instead of a number
        reason = str(exc).removeprefix("correlate: ").removeprefix("correlate ")
        if reason.startswith(("x is constant", "y is constant")):
            side = "TED" if reason[0] == "x" else "the downstream value"
            reason = f"{side} is {pts[0].ted if reason[0] == 'x' else pts[0].value:g} on every row"
        return CorrelationLine(bench, metric, cat, len(pts), None, reason, pts)
    return CorrelationLine(bench, metric, cat, len(pts), corr, None, pts)


def write_correlate_json(result: CorrelateResult, out_dir: str | Path) -> Path:
    """Write ``correlate.json`` into ``out_dir`` (created if needed); return its path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    from harness._atomic import atomic_write  # the one atomic writer of every command's outputs

    return atomic_write(out / "correlate.json", json.dumps(result.to_json(), indent=1, allow_nan=False) + "\n")
