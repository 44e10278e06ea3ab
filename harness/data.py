"""Loaders for benchmark instances and caption pairs.

Formats (see README "Data formats"):

* TED JSONL: one instance per line, ``{"id", "category", "caption", "positive",
  "negatives": [...], "caption_type"?}``.
* Official GRAN-TED JSON: one object keyed by caption id, ``{caption,
  caption_type, statements: {<question type>: {question, correct_statement:
  {status, statement}, incorrect_statements: [...]}}}``; only entries with
  ``status == "success"`` count.
* A `datasets` id or a local dataset folder whose rows have the JSONL fields.
* Caption pairs: JSONL ``{"a", "b", "group"?}`` or the official
  ``{"processed_caption1", "processed_caption2"}`` (JSONL or a JSON list).

Every bad record raises `DataError` naming file, line and field.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from harness._exceptions import DataError
from harness.categories import CATEGORIES, OFFICIAL_TYPE_NAMES, category_slug
from harness.types import CaptionPair, Instance

# CATEGORIES, OFFICIAL_TYPE_NAMES and category_slug live in harness.categories;
# they stay importable from here for code written against the old location.
__all__ = [
    "CATEGORIES",
    "OFFICIAL_TYPE_NAMES",
    "category_slug",
    "file_sha256",
    "load_granted_json",
    "load_hf_instances",
    "load_instances_file",
    "load_jsonl_instances",
    "load_pairs_file",
]

def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _jsonl_records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(str(path), lineno, None, f"not valid JSON ({exc.msg} at column {exc.colno})") from None
            if not isinstance(rec, dict):
                raise DataError(str(path), lineno, None, "expected a JSON object")
            yield lineno, rec


def _text(rec: Mapping[str, Any], key: str, where: tuple[str, int | None]) -> str:
    if key not in rec:
        raise DataError(where[0], where[1], key, "is missing")
    val = rec[key]
    if not isinstance(val, str) or not val.strip():
        raise DataError(where[0], where[1], key, f"must be a non-empty string, got {val!r:.60}")
    return val


def _instance(rec: Mapping[str, Any], where: tuple[str, int | None], default_id: str) -> Instance:
    negs = rec.get("negatives")
    if not isinstance(negs, list) or not negs:
        raise DataError(where[0], where[1], "negatives", "must be a list of at least one string")
    for i, neg in enumerate(negs):
        if not isinstance(neg, str) or not neg.strip():
            raise DataError(where[0], where[1], f"negatives[{i}]", f"must be a non-empty string, got {neg!r:.60}")
    ctype = rec.get("caption_type", "image")
    if not isinstance(ctype, str):
        raise DataError(where[0], where[1], "caption_type", f"must be a string, got {ctype!r}")
    return Instance(
        id=str(rec.get("id", default_id)),
        category=category_slug(_text(rec, "category", where)),
        caption=_text(rec, "caption", where),
        positive=_text(rec, "positive", where),
        negatives=tuple(negs),
        caption_type=ctype,
        source=f"{where[0]}:{where[1]}" if where[1] else where[0],
    )


def load_jsonl_instances(path: str | Path) -> list[Instance]:
    """Read a TED JSONL file.  Ids must be unique."""
    path = Path(path)
    out: list[Instance] = []
    seen: dict[str, int] = {}
    for lineno, rec in _jsonl_records(path):
        inst = _instance(rec, (str(path), lineno), default_id=f"{path.stem}-{lineno}")
        if inst.id in seen:
            raise DataError(str(path), lineno, "id", f"duplicate id {inst.id!r} (first on line {seen[inst.id]})")
        seen[inst.id] = lineno
        out.append(inst)
    if not out:
        raise DataError(str(path), None, None, "holds no instances")
    return out


def _official_statements(entry: Mapping[str, Any], where: tuple[str, str]) -> Iterator[tuple[str, str, list[str]]]:
    statements = entry.get("statements")
    if not isinstance(statements, Mapping):
        raise DataError(where[0], None, f"{where[1]}.statements", "must be an object keyed by question type")
    for qtype, info in statements.items():
        if not isinstance(info, Mapping):
            raise DataError(where[0], None, f"{where[1]}.statements.{qtype}", "must be an object")
        correct = info.get("correct_statement")
        if not isinstance(correct, Mapping) or correct.get("status") != "success" or not correct.get("statement"):
            continue
        negs = [
            str(s["statement"]) for s in info.get("incorrect_statements") or []
            if isinstance(s, Mapping) and s.get("status") == "success" and s.get("statement")
        ]
        if negs:
            yield qtype, str(correct["statement"]), negs


def load_granted_json(path: str | Path) -> list[Instance]:
    """Read the official TED-6K JSON (keyed by caption id); only successful statements count."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(str(path), exc.lineno, None, f"not valid JSON ({exc.msg})") from None
    if not isinstance(data, Mapping):
        raise DataError(str(path), None, None, "expected one JSON object keyed by caption id")
    out: list[Instance] = []
    for cid, entry in data.items():
        if not isinstance(entry, Mapping):
            raise DataError(str(path), None, str(cid), "must be an object")
        where = (str(path), None)
        caption = _text(entry, "caption", where) if "caption" in entry else None
        if caption is None:
            raise DataError(str(path), None, f"{cid}.caption", "is missing")
        ctype = str(entry.get("caption_type", "image"))
        for qtype, pos, negs in _official_statements(entry, (str(path), str(cid))):
            out.append(Instance(
                id=f"{cid}/{qtype}", category=category_slug(qtype), caption=caption,
                positive=pos, negatives=tuple(negs), caption_type=ctype, source=f"{path}#{cid}",
            ))
    if not out:
        raise DataError(str(path), None, None, "holds no instance with status 'success'")
    return out


def load_hf_instances(source: str, *, split: str | None = None, revision: str | None = None) -> list[Instance]:
    """Read instances from a `datasets` id or a local dataset folder (rows with the JSONL fields)."""
    try:
        import datasets
    except ImportError:
        raise DataError(source, None, None, "needs the 'datasets' package: pip install 'ted-harness[datasets]'") from None
    path = Path(source)
    if path.is_dir() and (path / "dataset_info.json").exists():
        ds: Any = datasets.load_from_disk(str(path))
    else:
        ds = datasets.load_dataset(source, split=split or "test", revision=revision)
    if isinstance(ds, datasets.DatasetDict):
        ds = ds[split or ("test" if "test" in ds else next(iter(ds)))]
    return [_instance(row, (source, i + 1), default_id=f"{path.name}-{i}") for i, row in enumerate(ds)]


def load_instances_file(path: str | Path, fmt: str = "auto") -> list[Instance]:
    """Dispatch on ``fmt`` (or the file's first character when ``auto``)."""
    path = Path(path)
    if not path.exists():
        raise DataError(str(path), None, None, "does not exist")
    if fmt == "auto":
        if path.is_dir():
            fmt = "hf"
        else:
            with open(path, encoding="utf-8") as fh:
                head = fh.read(4096).lstrip()
            single_object = head.startswith("{") and path.suffix == ".json"
            fmt = "granted-json" if single_object else "jsonl"
    if fmt == "jsonl":
        return load_jsonl_instances(path)
    if fmt == "granted-json":
        return load_granted_json(path)
    if fmt == "hf":
        return load_hf_instances(str(path))
    raise DataError(str(path), None, "format", f"unknown format {fmt!r}; use jsonl, granted-json or hf")


def _pair(rec: Mapping[str, Any], where: tuple[str, int | None]) -> CaptionPair:
    if "processed_caption1" in rec or "processed_caption2" in rec:
        a, b = _text(rec, "processed_caption1", where), _text(rec, "processed_caption2", where)
    else:
        a, b = _text(rec, "a", where), _text(rec, "b", where)
    group = rec.get("group")
    ctype = rec.get("caption_type", "image")
    return CaptionPair(a=a, b=b, group=None if group is None else str(group), caption_type=str(ctype))


def load_pairs_file(path: str | Path) -> list[CaptionPair]:
    """Read caption pairs (JSONL, or a JSON list of official records)."""
    path = Path(path)
    if not path.exists():
        raise DataError(str(path), None, None, "does not exist")
    with open(path, encoding="utf-8") as fh:
        head = fh.read(64).lstrip()
    if head.startswith("["):
        records = json.loads(path.read_text(encoding="utf-8"))
        pairs = [_pair(r, (str(path), None)) if isinstance(r, Mapping) else _bad_item(path, i)
                 for i, r in enumerate(records)]
    else:
        pairs = [_pair(rec, (str(path), ln)) for ln, rec in _jsonl_records(path)]
    if not pairs:
        raise DataError(str(path), None, None, "holds no caption pairs")
    return pairs


def _bad_item(path: Path, index: int) -> CaptionPair:
    raise DataError(str(path), None, f"[{index}]", "expected an object")
