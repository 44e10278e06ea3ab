"""Caption pairs from the data users have: several captions of one image or video become pairs.

The context aggregator is trained on pairs of captions of the *same* image or video
(the official ``processed_caption1/2`` records).  A `datasets` dataset (hub id or a local
``save_to_disk`` folder) usually holds them either as a list of captions per row, or as one
caption per row with an item id shared by the rows of one image; both become pairs within one
item, with ``group`` = the item id, so no two captions of one item are ever each other's
negatives.  ``harness pairs`` writes them as JSONL for ``--train-pairs``.
"""

from __future__ import annotations

import itertools
import json
import os
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness._exceptions import ConfigError, DataError
from harness.types import CaptionPair

_FILE_SUFFIXES = (".jsonl", ".json", ".csv", ".tsv", ".parquet", ".arrow", ".gz", ".txt")
_BUILDERS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".tsv": "csv", ".parquet": "parquet", ".arrow": "arrow"}

__all__ = ["PairsReport", "load_caption_dataset", "pairs_from_items", "write_pairs"]


@dataclass(frozen=True)
class PairsReport:
    """What `write_pairs` did."""

    items: int  # items (images / videos) seen
    items_with_pairs: int  # items with at least two distinct captions
    pairs: int
    path: str


def load_caption_dataset(source: str, *, split: str | None = None, revision: str | None = None) -> Any:
    """A `datasets` split from a hub id or a local folder (``save_to_disk``)."""
    path = Path(source)
    local = source.startswith(("/", ".", "~")) or path.suffix.lower() in _FILE_SUFFIXES
    if local and not path.exists():  # said first: a typo needs no package to be named
        raise DataError(source, None, None, "does not exist (a local file or folder, or a datasets hub id ORG/NAME)")
    try:
        import datasets
    except ImportError:
        raise ConfigError("harness pairs needs the 'datasets' package: pip install 'ted-harness[datasets]'") from None
    if path.is_dir():
        if not any((path / f).exists() for f in ("dataset_info.json", "state.json", "dataset_dict.json")):
            raise DataError(source, None, None, "is a folder but not a datasets save_to_disk folder")
        ds: Any = datasets.load_from_disk(str(path))
    elif path.is_file():  # one local data file: read with the `datasets` builder its suffix names
        suffixes = [s.lower() for s in path.suffixes if s.lower() != ".gz"]
        builder = _BUILDERS.get(suffixes[-1] if suffixes else "")
        if builder is None:
            raise DataError(source, None, None, "is a file `datasets` cannot read: give a "
                            f"{', '.join(sorted(_BUILDERS))} file, a save_to_disk folder or a hub id ORG/NAME")
        if split not in (None, "train"):
            raise ConfigError(f"--split {split!r}: {source} is one data file, read as the split 'train'; drop --split")
        if builder in ("json", "csv"):
            from harness.data.loaders import read_text_file

            read_text_file(path)  # a non-UTF-8 byte named by line here, not as a decode error half-way through
        kwargs = {"delimiter": "\t"} if suffixes[-1] == ".tsv" else {}
        bars, level = datasets.is_progress_bar_enabled(), datasets.logging.get_verbosity()
        datasets.disable_progress_bars()  # one local file: no "Generating train split" bar on stderr,
        datasets.logging.set_verbosity(datasets.logging.CRITICAL)  # nor the reader's log of the error below
        try:
            ds = datasets.load_dataset(builder, data_files=str(path), split="train", **kwargs)
        except Exception as exc:  # a malformed file: the reader's own first line
            cause = exc.__cause__ or exc.__context__ or exc
            first = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
            raise DataError(source, None, None, f"cannot be read as {builder} data: {first}") from None
        finally:
            datasets.logging.set_verbosity(level)
            if bars:
                datasets.enable_progress_bars()
    else:
        offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}
        try:
            ds = datasets.load_dataset(source, split=split, revision=revision)
        except Exception as exc:  # datasets raises many types for a missing or unreachable dataset
            hint = " (HF_HUB_OFFLINE=1: download it first or pass a local folder)" if offline else ""
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise DataError(source, None, None, f"cannot load this dataset{hint}: {first}") from None
    if isinstance(ds, datasets.DatasetDict):
        name = split or ("train" if "train" in ds else next(iter(ds)))
        if name not in ds:
            raise ConfigError(f"dataset {source!r} has no split {name!r}. Available: {', '.join(ds)}")
        ds = ds[name]
    elif split is not None and path.is_dir():  # a single saved split: --split would be silently ignored
        raise ConfigError(f"--split {split!r}: dataset {source!r} is one split saved without split names; "
                          "drop --split")
    return ds


def _items(rows: Iterable[dict[str, Any]], *, source: str, caption_column: str, id_column: str | None,
           caption_type_column: str | None, caption_type: str) -> Iterator[tuple[str, str, list[str]]]:
    """(item id, caption type, captions) per item, in first-seen order."""
    grouped: dict[str, tuple[str, list[str]]] = {}
    for i, row in enumerate(rows):
        if caption_column not in row:
            raise DataError(source, None, f"[{i}].{caption_column}",
                            f"is missing; columns are {', '.join(sorted(row))} (choose with --caption-column)")
        value = row[caption_column]
        captions = value if isinstance(value, list) else [value]
        if not all(isinstance(c, str) for c in captions):
            raise DataError(source, None, f"[{i}].{caption_column}", "must be a string or a list of strings")
        if id_column is not None and id_column not in row:
            raise DataError(source, None, f"[{i}].{id_column}", "is missing (choose with --id-column)")
        item = str(row[id_column]) if id_column is not None else str(i)
        ctype = str(row.get(caption_type_column, caption_type)) if caption_type_column else caption_type
        grouped.setdefault(item, (ctype, []))[1].extend(c.strip() for c in captions if c.strip())
    for item, (ctype, caps) in grouped.items():
        yield item, ctype, list(dict.fromkeys(caps))  # distinct captions, order kept


def pairs_from_items(items: Iterable[tuple[str, str, list[str]]], *, max_per_item: int | None = None,
                     seed: int = 0) -> Iterator[CaptionPair]:
    """Every unordered pair of distinct captions within an item (a seeded sample of ``max_per_item``)."""
    rng = random.Random(seed)
    for item, ctype, caps in items:
        combos = list(itertools.combinations(caps, 2))
        if max_per_item is not None and len(combos) > max_per_item:
            combos = rng.sample(combos, max_per_item)
        for a, b in combos:
            yield CaptionPair(a=a, b=b, group=item, caption_type=ctype)


def write_pairs(source: str, out: str | Path, *, caption_column: str = "caption", id_column: str | None = None,
                caption_type_column: str | None = None, caption_type: str = "image", split: str | None = None,
                max_per_item: int | None = None, seed: int = 0) -> PairsReport:
    """Read ``source`` and write its within-item caption pairs to ``out`` (JSONL ``{a, b, group, caption_type}``)."""
    ds = load_caption_dataset(source, split=split)
    items = list(_items(ds, source=source, caption_column=caption_column, id_column=id_column,
                        caption_type_column=caption_type_column, caption_type=caption_type))
    pairs = list(pairs_from_items(items, max_per_item=max_per_item, seed=seed))
    if not pairs:
        raise DataError(source, None, caption_column, f"gives no pair: none of its {len(items)} items has two distinct "
                        "captions (rows of one image need a shared --id-column, or a list of captions per row)")
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    from harness._atomic import atomic_path  # the one atomic writer of every command's outputs

    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        for p in pairs:
            fh.write(json.dumps({"a": p.a, "b": p.b, "group": p.group, "caption_type": p.caption_type}) + "\n")
    with_pairs = sum(1 for _, _, caps in items if len(caps) > 1)
    return PairsReport(items=len(items), items_with_pairs=with_pairs, pairs=len(pairs), path=str(path))
