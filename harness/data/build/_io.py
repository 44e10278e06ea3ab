"""Captions in; TED JSONL, the official TED-6K JSON, a review sheet and the report out; verdicts folded back."""

from __future__ import annotations

import csv
import json
import os
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

__all__ = ["OUTPUT_FILES", "REVIEW_COLUMNS", "ReviewReport", "apply_review", "read_captions", "screen_captions",
           "write_outputs"]

OUTPUT_FILES = {"ted": "ted.jsonl", "official": "ted6k.json", "review": "review.csv", "report": "build_report.json"}
REVIEW_COLUMNS = ("id", "category", "caption_type", "caption", "positive", "negative_1", "negative_2", "negative_3",
                  "verdict", "note")
KEEP, DROP = {"keep", "ok", "yes", "y", "edit", "edited"}, {"drop", "no", "n", "reject", "bad"}


def read_captions(source: str, *, caption_column: str = "caption", id_column: str = "id",
                  caption_type_column: str = "caption_type", caption_type: str = "image",
                  split: str | None = None) -> list[tuple[str | None, Any, str]]:
    """(id or None, caption value as found, caption type) per row of a JSONL file or a ``datasets`` source."""
    path = Path(source)
    rows: Iterable[Mapping[str, Any]]
    if path.is_file():
        rows = []
        for n, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(str(path), n, None, f"not JSON ({exc.msg}); give one JSON object per line") from None
            if not isinstance(rec, dict):
                raise DataError(str(path), n, None, "must be a JSON object with id, caption, caption_type")
            rows.append(rec)
    else:
        from harness.data.pairs import load_caption_dataset

        rows = load_caption_dataset(source, split=split)
    out: list[tuple[str | None, Any, str]] = []
    for row in rows:
        if caption_column not in row:
            raise ConfigError(f"{source!r}: a row has no column {caption_column!r}; columns: {', '.join(row)}. "
                              "Name the caption column with --caption-column")
        cid = row.get(id_column)
        ctype = row.get(caption_type_column) or caption_type
        out.append((None if cid is None else str(cid), row[caption_column], str(ctype)))
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
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


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
                  report: BuildReport, *, review_sheet: bool = True) -> list[Path]:
    """ted.jsonl, ted6k.json, review.csv (unless ``review_sheet`` is False) and build_report.json."""
    out = Path(out_dir)
    paths = [out / OUTPUT_FILES[k] for k in ("ted", "official", "report")]
    _atomic_write(paths[0], "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in _ted_rows(records)))
    _atomic_write(paths[1], json.dumps(_official(records, categories), ensure_ascii=False, indent=1) + "\n")
    _atomic_write(paths[2], json.dumps(report.as_dict(), ensure_ascii=False, indent=1) + "\n")
    if review_sheet:
        sheet = out / OUTPUT_FILES["review"]
        if _has_verdicts(sheet):  # a rerun must not wipe a person's work
            sheet = out / "review-new.csv"
        tmp = sheet.with_name(sheet.name + ".tmp")
        with open(tmp, "w", encoding="utf-8", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(REVIEW_COLUMNS)
            for row in _ted_rows(records):
                negs = [*row["negatives"], "", "", ""][:3]
                writer.writerow([row["id"], row["category"], row["caption_type"], row["caption"], row["positive"],
                                 *negs, "", ""])
        os.replace(tmp, sheet)
        paths.append(sheet)
    return paths


def _has_verdicts(sheet: Path) -> bool:
    if not sheet.exists():
        return False
    with open(sheet, encoding="utf-8-sig", newline="") as fh:
        return any((row.get("verdict") or "").strip() for row in csv.DictReader(fh))


@dataclass
class ReviewReport:
    kept: int = 0
    edited: int = 0
    dropped: int = 0
    unreviewed: int = 0
    problems: list[str] = field(default_factory=list)


def apply_review(sheet: str | Path, out_dir: str | Path, categories: Mapping[str, CategoryDef]) -> ReviewReport:
    """Fold a filled review sheet into ``out_dir``'s outputs: keep (edited text taken as is) or drop.

    An empty verdict keeps the item and counts it as unreviewed.  Reads the records from
    ``items.jsonl``, so applying a sheet twice gives the same files.
    """
    out = Path(out_dir)
    records = read_records(out / ITEMS_FILE)
    if not records:
        raise ConfigError(f"{str(out)!r} holds no {ITEMS_FILE}; give the --out folder of a harness build-data run")
    with open(sheet, encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.DictReader(fh))
    missing = {"id", "verdict", "positive"} - set(rows[0] if rows else {})
    if missing:
        raise ConfigError(f"review sheet {str(sheet)!r} lacks column(s) {sorted(missing)}; columns: "
                          f"{', '.join(REVIEW_COLUMNS)}")
    result = ReviewReport()
    for row in rows:
        rec = records.get(row["id"])
        verdict = (row.get("verdict") or "").strip().lower()
        if rec is None or rec.status != "ok":
            result.problems.append(f"row id {row['id']!r} is not a finished item of this run; ignored")
            continue
        if verdict in DROP:
            rec.status = "dropped"
            result.dropped += 1
            continue
        if verdict and verdict not in KEEP:
            result.problems.append(f"row id {row['id']!r}: verdict {verdict!r} is not keep, edit or drop; kept")
        positive = " ".join((row.get("positive") or "").split())
        negs = [" ".join((row.get(f"negative_{i}") or "").split()) for i in (1, 2, 3)]
        negs = [n for n in negs if n]
        if not positive or not negs or normalize(positive) in {normalize(n) for n in negs}:
            result.problems.append(f"row id {row['id']!r}: edited text needs a positive and negatives that differ "
                                   "from it; the generated text is kept")
        elif positive != rec.positive or negs != rec.negatives:
            rec.positive, rec.negatives = positive, negs
            result.edited += 1
        if verdict:
            result.kept += 1
        else:
            result.unreviewed += 1
    ordered = list(records.values())
    report_path = out / OUTPUT_FILES["report"]
    data = json.loads(report_path.read_text(encoding="utf-8")) if report_path.exists() else {}
    data["review"] = {"sheet": str(sheet), "kept": result.kept, "edited": result.edited, "dropped": result.dropped,
                      "unreviewed": result.unreviewed, "problems": result.problems}
    rep = BuildReport()
    write_outputs(out, ordered, categories, rep, review_sheet=False)
    _atomic_write(report_path, json.dumps(data, ensure_ascii=False, indent=1) + "\n")
    return result
