"""Captions in; TED JSONL, the official TED-6K JSON, a review sheet and the report out; verdicts folded back."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness._exceptions import ConfigError, DataError
from harness.data.build._pipeline import (
    ITEMS_FILE,
    BuildReport,
    CaptionItem,
    ItemRecord,
    read_records,
)
from harness.data.build._validate import normalize
from harness.data.category_defs import CategoryDef
from harness.data.loaders import check_caption_type, read_text_file

__all__ = ["OUTPUT_FILES", "REVIEW_APPLIED_FILE", "REVIEW_COLUMNS", "ReviewReport", "apply_review", "apply_saved_review",
           "read_captions", "screen_captions", "write_outputs"]

OUTPUT_FILES = {"ted": "ted.jsonl", "official": "ted6k.json", "review": "review.csv", "report": "build_report.json"}
REVIEW_COLUMNS = ("id", "category", "caption_type", "caption", "positive", "negative_1", "negative_2", "negative_3",
                  "verdict", "note")
KEEP, DROP = {"keep", "ok", "yes", "y", "edit", "edited"}, {"drop", "no", "n", "reject", "bad"}
# Every review decision applied so far (drop, or keep with the final text), by item id, with the generated
# text it was made on.  `apply_review` adds to it; every rerun of build-data applies it again, so a rerun
# never undoes a review (the generated text stays in items.jsonl).
REVIEW_APPLIED_FILE = "review_applied.json"


def read_captions(source: str, *, caption_column: str = "caption", id_column: str = "id",
                  caption_type_column: str = "caption_type", caption_type: str = "image",
                  split: str | None = None) -> list[tuple[str | None, Any, str]]:
    """(id or None, caption value as found, caption type) per row of a JSONL file or a ``datasets`` source."""
    path = Path(source)
    rows: Iterable[Mapping[str, Any]]
    lines: list[int] = []  # a file's line numbers (a dataset's rows count from 1)
    if path.is_file():
        rows = []
        for n, line in enumerate(read_text_file(path).split("\n"), 1):  # gzip, BOM, bad bytes: as every data file
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(str(path), n, None, f"not JSON ({exc.msg}); give one JSON object per line") from None
            if not isinstance(rec, dict):
                raise DataError(str(path), n, None, "must be a JSON object with id, caption, caption_type")
            rows.append(rec)
            lines.append(n)
    else:
        from harness.data.pairs import load_caption_dataset

        rows = load_caption_dataset(source, split=split)
    out: list[tuple[str | None, Any, str]] = []
    for n, row in enumerate(rows, 1):
        if caption_column not in row:
            raise ConfigError(f"{source!r}: a row has no column {caption_column!r}; columns: {', '.join(row)}. "
                              "Name the caption column with --caption-column")
        cid = row.get(id_column)
        ctype = row.get(caption_type_column)  # checked now: it becomes a slice and the prompt's text
        ctype = caption_type if ctype is None or ctype == "" else check_caption_type(
            ctype, (source, lines[n - 1] if lines else n), caption_type_column)
        out.append((None if cid is None else str(cid), row[caption_column], ctype))
    return out


def screen_captions(rows: Sequence[tuple[str | None, Any, str]], *,
                    max_chars: int) -> tuple[list[CaptionItem], list[dict[str, str]]]:
    """Captions worth asking about, and a report line for each one skipped (empty, too long, duplicated)."""
    kept: list[CaptionItem] = []
    skipped: list[dict[str, str]] = []
    ids: dict[str, int] = {}
    texts: dict[str, str] = {}
    for n, (cid, caption, ctype) in enumerate(rows, 1):
        cid = cid or f"caption-{n}"
        text = " ".join(caption.split()) if isinstance(caption, str) else ""
        reason = None
        if not text:
            reason = f"empty caption (row {n})" if isinstance(caption, str) or caption is None \
                else f"caption is not a string (row {n}: {caption!r:.40})"
        elif len(text) > max_chars:
            reason = f"caption has {len(text)} characters, over --max-caption-chars {max_chars} (row {n})"
        elif cid in ids:
            reason = f"duplicate id {cid!r} (row {n}; first at row {ids[cid]})"
        elif normalize(text) in texts:
            reason = f"duplicate caption: same text as {texts[normalize(text)]!r} (row {n})"
        if reason:
            skipped.append({"id": cid, "reason": reason})
            continue
        ids[cid], texts[normalize(text)] = n, cid
        kept.append(CaptionItem(id=cid, caption=text, caption_type=ctype))
    return kept, skipped


def _atomic_write(path: Path, text: str) -> None:
    from harness._atomic import atomic_write  # the one atomic writer of every command's outputs

    atomic_write(path, text)


def _ted_rows(records: Sequence[ItemRecord]) -> list[dict[str, Any]]:
    return [{"id": r.id, "category": r.category, "caption": r.caption, "positive": r.positive,
             "negatives": list(r.negatives), "caption_type": r.caption_type} for r in records if r.status == "ok"]


def _official(records: Sequence[ItemRecord], categories: Mapping[str, CategoryDef]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for r in records:
        if r.status not in ("ok", "null"):
            continue
        entry = out.setdefault(r.caption_id, {"caption": r.caption, "caption_type": r.caption_type, "statements": {}})
        cat = categories.get(r.category)
        qtype = cat.official_name if cat else r.category
        if r.status == "null":  # asked, nothing of this kind in the caption: kept, as the official file does
            entry["statements"][qtype] = {"question": None, "correct_statement": {"status": "null", "statement": None},
                                          "incorrect_statements": []}
        else:
            entry["statements"][qtype] = {
                "question": None, "correct_statement": {"status": "success", "statement": r.positive},
                "incorrect_statements": [{"status": "success", "statement": n} for n in r.negatives]}
    return out


def write_outputs(out_dir: str | Path, records: Sequence[ItemRecord], categories: Mapping[str, CategoryDef],
                  report: BuildReport, *, review_sheet: bool = True,
                  review: Mapping[str, Any] | None = None) -> list[Path]:
    """ted.jsonl, ted6k.json, review.csv (unless ``review_sheet`` is False) and build_report.json (with
    ``review``, the last applied review's summary, as its ``review`` section)."""
    out = Path(out_dir)
    paths = [out / OUTPUT_FILES[k] for k in ("ted", "official", "report")]
    _atomic_write(paths[0], "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in _ted_rows(records)))
    _atomic_write(paths[1], json.dumps(_official(records, categories), ensure_ascii=False, indent=1) + "\n")
    data = report.as_dict() if review is None else {**report.as_dict(), "review": dict(review)}
    _atomic_write(paths[2], json.dumps(data, ensure_ascii=False, indent=1) + "\n")
    if review_sheet:
        sheet = out / OUTPUT_FILES["review"]
        if _has_verdicts(sheet):  # a rerun must not wipe a person's work
            sheet = out / "review-new.csv"
        from harness._atomic import atomic_path

        with atomic_path(sheet) as tmp, open(tmp, "w", encoding="utf-8", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(REVIEW_COLUMNS)
            for row in _ted_rows(records):
                negs = [*row["negatives"], "", "", ""][:3]
                writer.writerow([row["id"], row["category"], row["caption_type"], row["caption"], row["positive"],
                                 *negs, "", ""])
        paths.append(sheet)
    return paths


def _has_verdicts(sheet: Path) -> bool:
    if not sheet.exists():
        return False
    try:
        return any((row.get("verdict") or "").strip() for row in csv.DictReader(io.StringIO(read_text_file(sheet))))
    except csv.Error as exc:
        raise DataError(str(sheet), None, None, f"is not a CSV sheet ({exc}); move it away, or apply it with "
                        "--apply-review") from None


@dataclass
class ReviewReport:
    kept: int = 0
    edited: int = 0
    dropped: int = 0
    unreviewed: int = 0
    problems: list[str] = field(default_factory=list)


def _generated(rec: ItemRecord) -> list[Any]:
    """What a review decision was made on: the caption and the generated statements."""
    return [rec.caption, rec.positive, list(rec.negatives)]


def _read_applied(out: Path) -> dict[str, Any]:
    """``REVIEW_APPLIED_FILE``: ``{"summary": {...}, "items": {id: {"action": "keep"|"drop", "positive",
    "negatives", "generated"}}}`` (empty when absent)."""
    path = out / REVIEW_APPLIED_FILE
    if not path.exists():
        return {"summary": None, "items": {}}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise DataError(str(path), None, None, f"cannot be read ({exc}); it holds the reviews applied to this folder: "
                        "restore it, or apply the review sheet again with --apply-review") from None
    items = data.get("items") if isinstance(data, dict) else None
    if not isinstance(items, dict) or not all(
            isinstance(d, dict) and d.get("action") in ("keep", "drop") and isinstance(d.get("generated"), list)
            for d in items.values()):
        raise DataError(str(path), None, "items", "is not what --apply-review writes; restore the file, or apply the "
                        "review sheet again with --apply-review")
    return {"summary": data.get("summary"), "items": items}


def apply_saved_review(out_dir: str | Path,
                       records: Sequence[ItemRecord]) -> tuple[list[ItemRecord], dict[str, Any] | None, list[str]]:
    """``records`` with every review decision applied so far (``REVIEW_APPLIED_FILE``) applied again: dropped
    items get status ``dropped``, kept ones their reviewed text.  Returns (records, the last review's summary,
    problems): a decision whose item was generated again since (new caption text) no longer applies, and
    is named in ``problems``."""
    applied = _read_applied(Path(out_dir))
    decisions: dict[str, Any] = applied["items"]
    out: list[ItemRecord] = []
    problems: list[str] = []
    for rec in records:
        d = decisions.get(rec.id)
        if d is None:
            out.append(rec)
        elif rec.status != "ok" or d["generated"] != _generated(rec):
            problems.append(f"the review of {rec.id!r} no longer applies (the item was written again since); "
                            "review it again")
            out.append(rec)
        elif d["action"] == "drop":
            out.append(dataclasses.replace(rec, status="dropped"))
        else:
            out.append(dataclasses.replace(rec, positive=str(d["positive"]), negatives=[str(n) for n in d["negatives"]]))
    return out, applied["summary"], problems


def _read_sheet(sheet: str | Path) -> list[dict[str, Any]]:
    """The rows of a review sheet; a missing column or an id named twice is a `DataError` naming the line."""
    where = str(sheet)
    path = Path(sheet)
    if not path.exists() or path.is_dir():
        what = "does not exist" if not path.exists() else "is a directory"
        raise DataError(where, None, None, f"{what}; give the review sheet (review.csv) you filled")
    text = read_text_file(path)  # gzip, BOM, a non-UTF-8 byte (file and line): as every data file
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""))
        rows: list[dict[str, Any]] = []
        lines: dict[str, int] = {}
        for row in reader:
            rid = row.get("id")
            if rid is not None and rid in lines:
                raise DataError(where, reader.line_num, "id", f"names {rid!r} again (first on line {lines[rid]}); "
                                "give each item one row")
            if rid is not None:
                lines[rid] = reader.line_num
            rows.append(row)
        columns = reader.fieldnames or []
    except csv.Error as exc:
        raise DataError(where, None, None, f"is not a CSV sheet ({exc})") from None
    missing = {"id", "verdict", "positive"} - set(columns)
    if missing:
        raise ConfigError(f"review sheet {where!r} lacks column(s) {sorted(missing)}; columns: "
                          f"{', '.join(REVIEW_COLUMNS)}")
    return rows


def apply_review(sheet: str | Path, out_dir: str | Path, categories: Mapping[str, CategoryDef]) -> ReviewReport:
    """Fold a filled review sheet into ``out_dir``'s outputs: keep (edited text taken as is) or drop.

    An empty verdict keeps the item and counts it as unreviewed.  Reads the generated records from
    ``items.jsonl`` and adds this sheet's decisions to ``REVIEW_APPLIED_FILE`` (a later row for an
    id replaces an earlier decision; an unreviewed, unedited row leaves it), so applying a sheet
    twice gives the same files and a rerun of build-data keeps every review.
    """
    out = Path(out_dir)
    records = read_records(out / ITEMS_FILE)
    if not records:
        raise ConfigError(f"{str(out)!r} holds no {ITEMS_FILE}; give the --out folder of a harness build-data run")
    rows = _read_sheet(sheet)
    applied = _read_applied(out)
    decisions: dict[str, Any] = dict(applied["items"])
    result = ReviewReport()
    for row in rows:
        rec = records.get(row["id"])
        verdict = (row.get("verdict") or "").strip().lower()
        if rec is None or rec.status != "ok":
            result.problems.append(f"row id {row['id']!r} is not a finished item of this run; ignored")
            continue
        if verdict in DROP:
            decisions[rec.id] = {"action": "drop", "generated": _generated(rec)}
            result.dropped += 1
            continue
        if verdict and verdict not in KEEP:
            result.problems.append(f"row id {row['id']!r}: verdict {verdict!r} is not keep, edit or drop; kept")
        positive = " ".join((row.get("positive") or "").split())
        negs = [" ".join((row.get(f"negative_{i}") or "").split()) for i in (1, 2, 3)]
        negs = [n for n in negs if n]
        final = (rec.positive, list(rec.negatives))
        if not positive or not negs or normalize(positive) in {normalize(n) for n in negs} \
                or len({normalize(n) for n in negs}) < len(negs):
            result.problems.append(f"row id {row['id']!r}: edited text needs a positive and negatives that differ "
                                   "from it and from each other; the generated text is kept")
        elif positive != rec.positive or negs != rec.negatives:
            final = (positive, negs)
            result.edited += 1
        if verdict or final != (rec.positive, list(rec.negatives)):
            decisions[rec.id] = {"action": "keep", "positive": final[0], "negatives": final[1],
                                 "generated": _generated(rec)}
        if verdict:
            result.kept += 1
        else:
            result.unreviewed += 1
    summary = {"sheet": str(sheet), "kept": result.kept, "edited": result.edited, "dropped": result.dropped,
               "unreviewed": result.unreviewed, "problems": result.problems}
    _atomic_write(out / REVIEW_APPLIED_FILE,
                  json.dumps({"summary": summary, "items": decisions}, ensure_ascii=False, indent=1) + "\n")
    ordered, _, _ = apply_saved_review(out, list(records.values()))
    report_path = out / OUTPUT_FILES["report"]
    try:
        data = json.loads(report_path.read_text(encoding="utf-8")) if report_path.exists() else {}
    except (OSError, UnicodeDecodeError, ValueError):
        data = {}
    data = data if isinstance(data, dict) else {}
    data["review"] = summary
    write_outputs(out, ordered, categories, BuildReport(), review_sheet=False)
    _atomic_write(report_path, json.dumps(data, ensure_ascii=False, indent=1) + "\n")
    return result
