"""Reading downstream results and TED tables: CSV, JSON lists or JSONL, with file:line errors.

`read_downstream_file` reads what the ``recorded`` scorer serves (``encoder, extractor, benchmark,
metric, value[, n][, ted]``); `read_ted_csv` reads TED accuracies (``encoder, extractor, ted[,
category]``) for ``harness correlate``.  Both go through `read_table`, which names file, line and
field (or column) in every `DataError`.
"""

from __future__ import annotations

import csv
import difflib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness._exceptions import DataError
from harness.types import DownstreamMetric, ScoredRow

__all__ = ["DOWNSTREAM_FIELDS", "TED_FIELDS", "TedPoint", "read_downstream_file", "read_table", "read_ted_csv",
           "short_task", "write_downstream_csv"]

DOWNSTREAM_FIELDS = ("encoder", "extractor", "benchmark", "metric", "value", "n", "ted", "ci_low", "ci_high")
TED_FIELDS = ("encoder", "extractor", "ted", "category", "aggregator", "task")
Record = tuple[int | None, dict[str, Any]]  # (line, fields)


@dataclass(frozen=True)
class TedPoint:
    """The TED accuracy (percent) of one row on one slice (``category`` "all": overall)."""

    encoder: str
    extractor: str
    value: float
    category: str = "all"
    aggregator: str | None = None
    task: str | None = None

def short_task(name: str) -> str:
    """A task's short name: a file path or ``pkg:``/``hf:`` source becomes its file stem."""
    if "/" not in name and "\\" not in name and not name.endswith((".jsonl", ".json", ".yaml", ".gz")):
        return name
    stem = name.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
    for suffix in (".gz", ".jsonl", ".json", ".yaml", ".yml"):
        stem = stem.removesuffix(suffix)
    return stem.split(":", 1)[-1] or name

def read_table(path: str | Path, *, known: Sequence[str], required: Sequence[str]) -> list[Record]:
    """The records of a CSV, JSON list or JSONL file, each with its line number.

    Column names are matched case-insensitively; an unknown or missing column raises
    `DataError` naming file, line and column (with the closest known name)."""
    p = Path(path)
    if not p.is_file():
        raise DataError(str(p), None, None, "does not exist (expected a CSV, JSON or JSONL file)")
    try:
        text = p.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(str(p), None, None, f"cannot be read as UTF-8 text ({exc})") from None
    if p.suffix.lower() == ".csv":
        header_line, header, records = _csv_records(p, text)
        _check_columns(str(p), header_line, header, known, required)
        return records
    records = _json_records(p, text)
    for line, rec in records:
        _check_columns(str(p), line, list(rec), known, required)
    return records


def _check_columns(path: str, line: int | None, names: Sequence[str], known: Sequence[str],
                   required: Sequence[str]) -> None:
    for name in names:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise DataError(path, line, name, f"is not a known column; {hint}known: {', '.join(known)}")
    for name in required:
        if name not in names:
            raise DataError(path, line, name, f"is missing; each row needs {', '.join(required)}")


def _csv_records(path: Path, text: str) -> tuple[int, list[str], list[Record]]:
    """(header line, column names, records); blank lines and lines starting with '#' are skipped."""
    reader = csv.reader(text.splitlines())
    header: list[str] | None = None
    header_line = 1
    out: list[Record] = []
    for row in reader:
        if not any(cell.strip() for cell in row) or row[0].lstrip().startswith("#"):
            continue
        if header is None:
            header, header_line = [h.strip().lower() for h in row], reader.line_num
            continue
        if len(row) > len(header):
            raise DataError(str(path), reader.line_num, None, f"has {len(row)} cells; the header has {len(header)}")
        out.append((reader.line_num, {h: c.strip() for h, c in zip(header, row) if h}))
    if header is None:
        raise DataError(str(path), None, None, "is empty (expected a header row and data rows)")
    return header_line, [h for h in header if h], out


def _json_records(path: Path, text: str) -> list[Record]:
    """A JSON list (line = where each element starts) or JSONL (one object per line)."""
    decoder = json.JSONDecoder()
    items: list[tuple[int, Any]] = []
    try:
        if text.lstrip().startswith("["):
            pos = text.index("[") + 1
            while True:
                while pos < len(text) and text[pos] in " \t\r\n,":
                    pos += 1
                if pos >= len(text) or text[pos] == "]":
                    break
                value, end = decoder.raw_decode(text, pos)
                items.append((text.count("\n", 0, pos) + 1, value))
                pos = end
        else:
            items = [(i, json.loads(line)) for i, line in enumerate(text.splitlines(), 1) if line.strip()]
    except json.JSONDecodeError as exc:
        raise DataError(str(path), exc.lineno, None, f"is not valid JSON ({exc.msg})") from None
    out: list[Record] = []
    for line, value in items:
        if not isinstance(value, dict):
            raise DataError(str(path), line, None, f"must be an object, got {type(value).__name__}")
        out.append((line, {str(k).strip().lower(): v for k, v in value.items()}))
    return out


def _text(rec: Mapping[str, Any], name: str, path: str, line: int | None) -> str:
    raw = rec.get(name)
    value = "" if raw is None else str(raw).strip()
    if not value:
        raise DataError(path, line, name, "is empty")
    return value


def _number(rec: Mapping[str, Any], name: str, path: str, line: int | None) -> float | None:
    raw = rec.get(name)
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise DataError(path, line, name, f"is {raw!r}, not a number") from None
    if not math.isfinite(value) or isinstance(raw, bool):
        raise DataError(path, line, name, f"is {raw!r}, not a finite number")
    return value


def _interval(rec: Mapping[str, Any], value: float, path: str, line: int | None) -> tuple[float, float] | None:
    low, high = _number(rec, "ci_low", path, line), _number(rec, "ci_high", path, line)
    if low is None and high is None:
        return None
    if low is None or high is None:
        missing = "ci_low" if low is None else "ci_high"
        raise DataError(path, line, missing, "is empty; give both ci_low and ci_high, or neither")
    if not low <= value <= high:
        raise DataError(path, line, "ci_low", f"[{low:g}, {high:g}] does not contain the value {value:g}")
    return low, high


def read_downstream_file(path: str | Path) -> list[tuple[ScoredRow, DownstreamMetric]]:
    """Recorded downstream results: one (row, metric) per record of a CSV/JSON/JSONL file.

    Fields: encoder, extractor, benchmark, metric, value; optional n (prompts scored) and ted (the
    TED score printed beside it, percent), ci_low and ci_high (an interval on value, both or neither).  Raises `DataError` naming file, line and field."""
    src = str(path)
    out: list[tuple[ScoredRow, DownstreamMetric]] = []
    seen: dict[tuple[str, str, str, str], int | None] = {}
    teds: dict[tuple[str, str], tuple[float, int | None]] = {}
    for line, rec in read_table(path, known=DOWNSTREAM_FIELDS, required=DOWNSTREAM_FIELDS[:5]):
        enc, ext = _text(rec, "encoder", src, line), _text(rec, "extractor", src, line)
        bench, metric = _text(rec, "benchmark", src, line), _text(rec, "metric", src, line)
        value = _number(rec, "value", src, line)
        if value is None:
            raise DataError(src, line, "value", "is empty")
        n = _number(rec, "n", src, line)
        if n is not None and (n != int(n) or n < 1):
            raise DataError(src, line, "n", f"is {rec['n']!r}, not a positive integer")
        ted = _number(rec, "ted", src, line)
        ci = _interval(rec, value, src, line)
        key = (enc, ext, bench, metric)
        if key in seen:
            raise DataError(src, line, None, f"repeats {enc}/{ext} {bench} {metric} (first on line {seen[key]})")
        seen[key] = line
        if ted is not None:
            prev = teds.setdefault((enc, ext), (ted, line))
            if prev[0] != ted:
                raise DataError(src, line, "ted", f"is {ted:g} for {enc}/{ext}; line {prev[1]} says {prev[0]:g}")
        row = ScoredRow(encoder=enc, extractor=ext, ted=ted)
        out.append((row, DownstreamMetric(bench, metric, value, None if n is None else int(n), f"{src}:{line}", ci)))
    if not out:
        raise DataError(src, None, None, "holds no rows")
    return out


def write_downstream_csv(path: str | Path, rows: Sequence[tuple[ScoredRow, DownstreamMetric]]) -> Path:
    """Write what `read_downstream_file` reads (all columns; empty cells for what is not known), atomically."""
    p = Path(path)
    tmp = p.with_name(f".{p.name}.tmp")
    with open(tmp, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(DOWNSTREAM_FIELDS)
        for row, m in rows:
            ci = m.ci or ("", "")
            w.writerow([row.encoder, row.extractor, m.benchmark, m.metric, repr(m.value), "" if m.n is None else m.n,
                        "" if row.ted is None else repr(row.ted), *(repr(c) if c != "" else "" for c in ci)])
    tmp.replace(p)
    return p


def read_ted_csv(path: str) -> list[TedPoint]:
    """TED accuracies (percent) per row and category (empty: overall) from a CSV; a downstream file with a
    ted column is one too (its other columns are ignored)."""
    known = tuple(dict.fromkeys(TED_FIELDS + DOWNSTREAM_FIELDS))  # the paper file is a TED file too
    points: dict[tuple[str, str, str], tuple[TedPoint, int | None]] = {}
    for line, rec in read_table(path, known=known, required=("encoder", "extractor", "ted")):
        ted = _number(rec, "ted", path, line)
        if ted is None:
            continue  # a downstream row without a printed TED value
        cat = str(rec.get("category") or "").strip() or "all"
        agg, task = (str(rec.get(k) or "").strip() or None for k in ("aggregator", "task"))
        p = TedPoint(_text(rec, "encoder", path, line), _text(rec, "extractor", path, line), ted, cat, agg, task)
        key = (p.encoder, p.extractor, cat)
        prev = points.setdefault(key, (p, line))
        if prev[0].value != ted:
            raise DataError(path, line, "ted", f"is {ted:g} for {p.encoder}/{p.extractor} ({cat}); "
                            f"line {prev[1]} says {prev[0].value:g}")
    if not points:
        raise DataError(path, None, "ted", "is empty on every row: no TED values to correlate")
    return [p for p, _ in points.values()]
