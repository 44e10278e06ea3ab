"""Loaders for benchmark instances and caption pairs.

Formats (see README "Data formats"):

* TED JSONL: one instance per line, ``{"id", "category", "caption", "positive",
  "negatives": [...], "caption_type"?, "group"?}``; ``group`` names the image or video the
  caption describes, as in caption pairs (training pairs of that group are contamination).
* Official GRAN-TED JSON: one object keyed by caption id, ``{caption,
  caption_type, statements: {<question type>: {question, correct_statement:
  {status, statement}, incorrect_statements: [...]}}}``; only entries with
  ``status == "success"`` count.
* A `datasets` id or a local dataset folder whose rows have the JSONL fields.
* Caption pairs: JSONL ``{"a", "b", "group"?}`` or the official
  ``{"processed_caption1", "processed_caption2"}`` (JSONL or a JSON list).

Files may be gzip-compressed (recognised by their first bytes, whatever the
name) and may start with a UTF-8 byte-order mark.  Every bad file or record
raises `DataError` naming file, line (or caption id / ``[i]``) and field, and
does so at load time, so ``harness validate`` and ``harness run`` agree.

Records that parse but cannot mean what they say are bad records too (`_check_instance`,
`_caption_type`): a positive equal to one of its negatives (a tie, always scored wrong),
a negative given twice (the chance level would count it twice), a ``caption_type`` other
than ``image`` or ``video`` (case-sensitive: it becomes a slice and the prompt's text).
Statements are compared with runs of whitespace collapsed.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import zlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from harness._exceptions import ConfigError, DataError
from harness.data.categories import CATEGORIES, OFFICIAL_TYPE_NAMES, category_slug
from harness.data.task_yaml import DATASET_MARKERS as _DATASET_MARKERS
from harness.data.task_yaml import resolve_path
from harness.types import CaptionPair, Instance, TaskSpec

# CATEGORIES, OFFICIAL_TYPE_NAMES and category_slug live in harness.data.categories;
# they stay importable from here for code written against the old location.
__all__ = [
    "CAPTION_TYPES",
    "CATEGORIES",
    "OFFICIAL_TYPE_NAMES",
    "absent_categories",
    "category_slug",
    "check_caption_type",
    "data_place",
    "file_sha256",
    "is_pairs_file",
    "load_granted_json",
    "load_hf_instances",
    "load_instances_file",
    "load_jsonl_instances",
    "load_pairs_file",
    "read_text_file",
    "select_categories",
]

_GZIP_MAGIC = b"\x1f\x8b"
_DATA_SUFFIXES = (".jsonl", ".json", ".gz", ".ndjson")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")  # the only way a lone surrogate gets into parsed JSON
CAPTION_TYPES = ("image", "video")
Where = tuple[str, int | None]


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _read_text(path: Path) -> str:
    """The text of a data file: gunzipped when it starts with the gzip magic, BOM dropped, UTF-8 checked."""
    where = str(path)
    if path.is_dir():
        raise DataError(where, None, None, "is a directory, not a data file; give the .jsonl or .json file inside it")
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(where, None, None, "does not exist") from None
    except OSError as exc:
        raise DataError(where, None, None, f"cannot be read ({exc.strerror or _one_line(exc)}); check its permissions") from None
    if raw[:2] == _GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise DataError(where, None, None, f"is gzip-compressed but does not decompress ({_one_line(exc)})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise DataError(where, line, None, f"not UTF-8 (byte 0x{raw[exc.start]:02x} at line {line}); "
                        "re-save it as UTF-8, e.g. iconv -f latin1 -t utf-8") from None
    # A raw CR cannot occur inside a JSON string, so CR and CRLF are line ends, as in universal newlines.
    return text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")


def read_text_file(path: str | Path) -> str:
    """The text of any input file, read as the data loaders read theirs (`_read_text`): gzip recognised by its
    first bytes, a BOM dropped, CR/CRLF as line ends, and a missing, unreadable or non-UTF-8 file a
    `DataError` naming file (and line)."""
    return _read_text(Path(path))


def _loads(text: str, path: str, line: int | None) -> Any:
    """``json.loads`` with every failure as a `DataError` (``line``: the JSONL line, else from the error)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        # Some messages end in "at" ("Unterminated string starting at"): do not print "at at".
        msg = exc.msg.removesuffix(" at")
        hint = ("; the file holds more than one JSON document: name a one-object-per-line file .jsonl"
                if exc.msg == "Extra data" and line is None else "")
        raise DataError(path, line or exc.lineno, None, f"not valid JSON ({msg} at column {exc.colno}){hint}") from None
    except ValueError as exc:  # an integer of more than 4300 digits
        raise DataError(path, line, None, f"not valid JSON ({_one_line(exc).split(':')[0]})") from None
    except RecursionError:
        raise DataError(path, line, None, "not valid JSON (nested too deeply)") from None


def _has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _check_unicode(raw: str, value: Any, where: Where, prefix: str = "") -> None:
    """Reject a lone surrogate (JSON ``"\\ud800"``) in any key or string now, not when it is encoded."""
    if not _SURROGATE_ESCAPE.search(raw):
        return
    stack: list[tuple[str, Any]] = [(prefix, value)]
    while stack:  # iterative: parsed JSON can nest deeper than the recursion limit allows here
        field, val = stack.pop()
        if isinstance(val, str) and _has_surrogate(val):
            bad = next(c for c in val if _has_surrogate(c))
            raise DataError(where[0], where[1], field or None,
                            f"holds a lone surrogate ({bad!r}), which is not text; fix or remove that \\u escape")
        if isinstance(val, dict):
            for key, item in reversed(val.items()):
                sub = f"{field}.{key}" if field else str(key)
                if _has_surrogate(str(key)):
                    raise DataError(where[0], where[1], sub, "is a key holding a lone surrogate, which is not text")
                stack.append((sub, item))
        elif isinstance(val, list):
            stack.extend((f"{field}[{i}]", item) for i, item in reversed(list(enumerate(val))))


def _jsonl_records(path: Path, text: str) -> Iterator[tuple[int, dict[str, Any]]]:
    for lineno, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        rec = _loads(line, str(path), lineno)
        if not isinstance(rec, dict):
            raise DataError(str(path), lineno, None, f"expected a JSON object, got {rec!r:.60}")
        _check_unicode(line, rec, (str(path), lineno))
        yield lineno, rec


def _string(val: Any, where: Where, field: str) -> str:
    if not isinstance(val, str) or not val.strip():
        raise DataError(where[0], where[1], field, f"must be a non-empty string, got {val!r:.60}")
    return val


def _text(rec: Mapping[str, Any], key: str, where: Where, prefix: str = "") -> str:
    field = f"{prefix}.{key}" if prefix else key
    if key not in rec:
        raise DataError(where[0], where[1], field, "is missing")
    return _string(rec[key], where, field)


def _optional_text(rec: Mapping[str, Any], key: str, where: Where, default: str, prefix: str = "") -> str:
    """An optional string field; absent or null means ``default``."""
    val = rec.get(key)
    return default if val is None else _string(val, where, f"{prefix}.{key}" if prefix else key)


def check_caption_type(value: Any, where: tuple[str, int | None], field: str = "caption_type") -> str:
    """``value`` when it is exactly ``image`` or ``video``; else a `DataError` at ``where``/``field``
    (``Video`` gets "Did you mean: video?")."""
    if value not in CAPTION_TYPES:
        close = [t for t in CAPTION_TYPES if isinstance(value, str) and t == value.strip().lower()]
        hint = f" Did you mean: {close[0]}?" if close else ""
        raise DataError(where[0], where[1], field, f"must be image or video (lowercase), got {value!r:.60}.{hint}")
    return str(value)


def _caption_type(rec: Mapping[str, Any], where: Where, prefix: str = "") -> str:
    """``caption_type``: absent or null means image; else exactly ``image`` or ``video``."""
    field = f"{prefix}.caption_type" if prefix else "caption_type"
    return check_caption_type(_optional_text(rec, "caption_type", where, "image", prefix), where, field)


def _same(text: str) -> str:
    return " ".join(text.split())


def _check_statements(positive: str, negatives: Sequence[str], where: Where, prefix: str = "",
                      fields: Sequence[str] = ()) -> None:
    """Refuse a negative equal to the positive, or to an earlier negative (whitespace runs collapsed).
    ``fields``: each negative's field name (default ``negatives[i]``)."""
    first: dict[str, int] = {}
    for i, neg in enumerate(negatives):
        field = fields[i] if fields else (f"{prefix}.negatives[{i}]" if prefix else f"negatives[{i}]")
        if _same(neg) == _same(positive):
            raise DataError(where[0], where[1], field, f"equals the positive ({neg!r:.60}): every encoder ties "
                            "them, so the instance is always scored wrong; remove or reword it")
        if _same(neg) in first:
            raise DataError(where[0], where[1], field, f"repeats negative [{first[_same(neg)]}] ({neg!r:.60}): "
                            "the chance level would count it twice; remove it")
        first[_same(neg)] = i


def _label(rec: Mapping[str, Any], key: str, where: Where, prefix: str = "") -> str | None:
    """An optional id-like field: a non-empty string or an integer (null: absent)."""
    val = rec.get(key)
    if val is None:
        return None
    if isinstance(val, bool) or not isinstance(val, (str, int)) or (isinstance(val, str) and not val.strip()):
        raise DataError(where[0], where[1], f"{prefix}.{key}" if prefix else key,
                        f"must be a non-empty string or an integer, got {val!r:.60}")
    return str(val)


def _instance(rec: Mapping[str, Any], where: Where, default_id: str) -> Instance:
    negs = rec.get("negatives")
    if not isinstance(negs, list) or not negs:
        raise DataError(where[0], where[1], "negatives", f"must be a list of at least one string, got {negs!r:.60}")
    for i, neg in enumerate(negs):
        _string(neg, where, f"negatives[{i}]")
    inst = Instance(
        id=_label(rec, "id", where) or default_id,
        category=category_slug(_text(rec, "category", where)),
        caption=_text(rec, "caption", where),
        positive=_text(rec, "positive", where),
        negatives=tuple(negs),
        caption_type=_caption_type(rec, where),
        source=f"{where[0]}:{where[1]}" if where[1] else where[0],
        group=_label(rec, "group", where),
    )
    _check_statements(inst.positive, inst.negatives, where)
    return inst


def _jsonl_instances(path: Path, text: str) -> list[Instance]:
    out: list[Instance] = []
    seen: dict[str, int] = {}
    for lineno, rec in _jsonl_records(path, text):
        inst = _instance(rec, (str(path), lineno), default_id=f"{path.stem}-{lineno}")
        if inst.id in seen:
            raise DataError(str(path), lineno, "id", f"duplicate id {inst.id!r} (first on line {seen[inst.id]})")
        seen[inst.id] = lineno
        out.append(inst)
    if not out:
        raise DataError(str(path), None, None, "holds no instances")
    return out


def load_jsonl_instances(path: str | Path) -> list[Instance]:
    """Read a TED JSONL file.  Ids must be unique."""
    path = Path(path)
    return _jsonl_instances(path, _read_text(path))


def _official_statement(item: Any, where: Where, field: str) -> str | None:
    """The text of one official statement record, or None unless its status is 'success'."""
    if not isinstance(item, Mapping):
        raise DataError(where[0], where[1], field, f"must be an object with 'status' and 'statement', got {item!r:.60}")
    if _text(item, "status", where, prefix=field) != "success":
        return None
    return _text(item, "statement", where, prefix=field)


def _official_entry(cid: str, entry: Any, path: Path) -> Iterator[Instance]:
    where: Where = (str(path), None)
    if not isinstance(entry, Mapping):
        raise DataError(str(path), None, cid, f"must be an object with 'caption' and 'statements', got {entry!r:.60}")
    caption = _text(entry, "caption", where, prefix=cid)
    ctype = _caption_type(entry, where, prefix=cid)
    statements = entry.get("statements")
    if not isinstance(statements, Mapping):
        raise DataError(str(path), None, f"{cid}.statements",
                        f"must be an object keyed by question type, got {statements!r:.60}")
    for qtype, info in statements.items():
        field = f"{cid}.statements.{qtype}"
        if not isinstance(info, Mapping):
            raise DataError(str(path), None, field, f"must be an object with 'correct_statement' and "
                            f"'incorrect_statements', got {info!r:.60}")
        correct = info.get("correct_statement")  # null: no statement was generated
        pos = None if correct is None else _official_statement(correct, where, f"{field}.correct_statement")
        if pos is None:
            continue  # an unsuccessful question is skipped whatever its negatives hold
        incorrect = info.get("incorrect_statements")
        incorrect = [] if incorrect is None else incorrect
        if not isinstance(incorrect, list):
            raise DataError(str(path), None, f"{field}.incorrect_statements",
                            f"must be a list of statement objects, got {incorrect!r:.60}")
        read = [(f"{field}.incorrect_statements[{i}]", s) for i, item in enumerate(incorrect)
                if (s := _official_statement(item, where, f"{field}.incorrect_statements[{i}]")) is not None]
        negs = [s for _, s in read]
        _check_statements(pos, negs, where, fields=[f for f, _ in read])
        if negs:
            yield Instance(id=f"{cid}/{qtype}", category=category_slug(qtype), caption=caption, positive=pos,
                           negatives=tuple(negs), caption_type=ctype, source=f"{path}#{cid}")


def _granted_instances(path: Path, text: str) -> list[Instance]:
    data = _loads(text, str(path), None)
    if not isinstance(data, Mapping):
        raise DataError(str(path), None, None, f"expected one JSON object keyed by caption id, got {data!r:.60}")
    _check_unicode(text, data, (str(path), None))
    out = [inst for cid, entry in data.items() for inst in _official_entry(str(cid), entry, path)]
    if not out:
        raise DataError(str(path), None, None, "holds no instance with status 'success'")
    return out


def load_granted_json(path: str | Path) -> list[Instance]:
    """Read the official TED-6K JSON (keyed by caption id); only successful statements count."""
    path = Path(path)
    return _granted_instances(path, _read_text(path))


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def load_hf_instances(source: str, *, split: str | None = None, revision: str | None = None) -> list[Instance]:
    """Read instances from a `datasets` id or a local dataset folder (rows with the JSONL fields)."""
    try:
        import datasets
    except ImportError:
        raise DataError(source, None, None, "needs the 'datasets' package: pip install 'ted-harness[datasets]'") from None
    path = Path(source)
    bars = datasets.is_progress_bar_enabled()  # datasets' own bars ("Generating train split") would be
    datasets.disable_progress_bars()  # stray lines on stderr, before the one error line we promise
    try:
        if path.is_dir() and any((path / m).exists() for m in _DATASET_MARKERS):
            ds: Any = datasets.load_from_disk(str(path))
        else:  # a local folder of data files has the splits its files make (often only train): pick below
            ds = datasets.load_dataset(source, split=split if path.is_dir() else split or "test", revision=revision)
    except ConnectionError as exc:
        why = ("HF_HUB_OFFLINE is set and it is not in the local cache" if _hub_offline()
               else f"the hub could not be reached ({_one_line(exc)})")
        raise DataError(source, None, None, f"needs the Hugging Face hub, but {why}; go online once (unset "
                        "HF_HUB_OFFLINE) or pass a local copy (a save_to_disk folder or a .jsonl file)") from None
    except (OSError, ValueError) as exc:
        what = ("is a directory with no dataset `datasets` can read" if path.is_dir()
                else "could not be loaded as a dataset")
        raise DataError(source, None, None, f"{what} ({_one_line(exc)}); give a .jsonl/.json data file, a "
                        "save_to_disk folder or a hub id written hf:ORG/NAME") from None
    finally:
        if bars:
            datasets.enable_progress_bars()
    if isinstance(ds, datasets.DatasetDict):
        name = split or ("test" if "test" in ds else next(iter(ds)))
        if name not in ds:
            raise DataError(source, None, "split", f"{name!r} is not a split; it has: {', '.join(ds)}")
        ds = ds[name]
    return [_instance(row, (source, i + 1), default_id=f"{path.name}-{i}") for i, row in enumerate(ds)]


def _suffix(path: Path) -> str:
    """The format suffix, looking through a trailing ``.gz``."""
    return Path(path.stem).suffix if path.suffix == ".gz" else path.suffix


def load_instances_file(path: str | Path, fmt: str = "auto") -> list[Instance]:
    """Dispatch on ``fmt`` (or, when ``auto``, on the name and the file's first character)."""
    path = Path(path)
    if not path.exists():
        raise DataError(str(path), None, None, "does not exist")
    if fmt == "hf" or (fmt == "auto" and path.is_dir() and path.suffix not in _DATA_SUFFIXES):
        return load_hf_instances(str(path))
    if fmt not in ("auto", "jsonl", "granted-json"):
        raise DataError(str(path), None, "format", f"unknown format {fmt!r}; use jsonl, granted-json or hf")
    text = _read_text(path)
    if fmt == "auto":
        fmt = "granted-json" if text.lstrip().startswith("{") and _suffix(path) == ".json" else "jsonl"
    return _granted_instances(path, text) if fmt == "granted-json" else _jsonl_instances(path, text)


def absent_categories(task: TaskSpec, instances: Sequence[Instance]) -> list[str]:
    """The categories ``task`` names (as written) that match no instance of ``instances``."""
    if task.categories is None:
        return []
    have = {i.category for i in instances}
    return [c for c in task.categories if category_slug(c) not in have]


def data_place(task: TaskSpec) -> str:
    """``task``'s source as written, with the file it names when that differs (``$TED6K_PATH (/data/x.json)``)."""
    try:
        path = resolve_path(task.source)
    except ConfigError:
        return task.source
    return task.source if path == task.source else f"{task.source} ({path})"


def select_categories(task: TaskSpec, instances: Sequence[Instance], *, partial: bool = False) -> list[Instance]:
    """The instances of ``task``'s categories (all when it names none).

    Raises `ConfigError` when a category the task names matches no instance, naming
    the task, that category, the file and the categories the data has; with ``partial``
    (a task run as part of a group) the categories present are kept and the absent ones
    are left to the caller (`absent_categories`) to report.  Names are compared as
    slugs, so ``Basic Event`` selects ``basic_event``.
    """
    if task.categories is None:
        return list(instances)
    absent = absent_categories(task, instances)
    if absent and not partial:
        have = sorted({i.category for i in instances})
        fix = (f"Give a file that has it, or run the group (--tasks {task.groups[0]}) to run the categories it has"
               if task.groups else "Fix 'category' in the task file")
        raise ConfigError(
            f"Task {task.name!r} selects category {absent[0]!r}, but {data_place(task)} has no instance of it. "
            f"Categories it has: {', '.join(have) or '(none)'}. {fix}"
        )
    wanted = {category_slug(c) for c in task.categories}
    return [i for i in instances if i.category in wanted]


def _pair(rec: Mapping[str, Any], where: Where, prefix: str = "") -> CaptionPair:
    if "processed_caption1" in rec or "processed_caption2" in rec:
        a, b = _text(rec, "processed_caption1", where, prefix), _text(rec, "processed_caption2", where, prefix)
    else:
        a, b = _text(rec, "a", where, prefix), _text(rec, "b", where, prefix)
    group = _label(rec, "group", where, prefix)
    return CaptionPair(a=a, b=b, group=group, caption_type=_caption_type(rec, where, prefix))


def _json_list_pairs(path: Path, text: str) -> list[CaptionPair]:
    records = _loads(text, str(path), None)
    if not isinstance(records, list):
        raise DataError(str(path), None, None, f"expected a JSON list of pair objects, got {records!r:.60}")
    _check_unicode(text, records, (str(path), None))
    pairs = []
    for i, rec in enumerate(records):
        if not isinstance(rec, Mapping):
            raise DataError(str(path), None, f"[{i}]", f"expected an object, got {rec!r:.60}")
        pairs.append(_pair(rec, (str(path), None), prefix=f"[{i}]"))
    return pairs


def load_pairs_file(path: str | Path) -> list[CaptionPair]:
    """Read caption pairs (JSONL, or a JSON list of official records)."""
    path = Path(path)
    text = _read_text(path)
    if text.lstrip().startswith("["):
        pairs = _json_list_pairs(path, text)
    else:
        pairs = [_pair(rec, (str(path), ln)) for ln, rec in _jsonl_records(path, text)]
    if not pairs:
        raise DataError(str(path), None, None, "holds no caption pairs")
    return pairs


def is_pairs_file(path: str | Path) -> bool:
    """Whether ``path`` looks like caption pairs: a JSON list, or a first record with ``a``/``processed_caption1``.

    Never raises: a file that cannot be read is not pairs, and the instance loader then reports why.
    """
    try:
        text = _read_text(Path(path)).lstrip()
    except DataError:
        return False
    if text.startswith("["):
        return True
    first = text.split("\n", 1)[0]
    try:
        rec = json.loads(first)
    except (ValueError, RecursionError):
        return False
    return isinstance(rec, dict) and ("a" in rec or "processed_caption1" in rec)
