"""The TED-6K question categories: the one list every module, tool and test reads.

``CATEGORIES`` is the benchmark's nine categories in report order.
``OFFICIAL_TYPE_NAMES`` maps the question-type names found in the official
TED-6K file to these slugs, and :func:`category_slug` applies it to any name.
The names are the ``official_names`` of the category YAMLs the installed plugins
contribute (``harness_category_dirs``; the shipped nine come from the data plugin), read
on first use: there is no second table.  Importing this module reads nothing, so the sample-data
generator can import it too.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import cast

__all__ = ["CATEGORIES", "OFFICIAL_TYPE_NAMES", "category_slug"]

CATEGORIES: tuple[str, ...] = (
    "action", "spatial", "temporal", "coreference", "adjective",
    "adverb", "quantity", "ocr", "basic_event",
)


def _key(name: str) -> str:
    return re.sub(r"[\s_-]+", " ", name.strip().lower())


@functools.lru_cache(maxsize=1)
def _official_table() -> dict[str, str]:
    """Normalised official name -> slug, from the ``official_names`` of every category YAML the
    installed plugins contribute (built-ins first, so a plugin cannot take over a shipped name)."""
    import yaml  # a core dependency; imported here so that importing this module reads nothing

    from harness.plugins import get_plugin_manager

    hook = get_plugin_manager().hook.harness_category_dirs
    folders: list[Path] = []
    for impl in hook.get_hookimpls():  # pluggy's order: trylast (the built-ins) first
        found = cast("list[str | Path]", impl.function() or [])
        folders += [Path(d) for d in found]
    table: dict[str, str] = {}
    for path in [p for f in folders for p in sorted(f.glob("*.yaml"))]:
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8-sig"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            continue  # the registry names a broken category file; here it just maps no names
        if not isinstance(data, dict):
            continue
        slug = str(data.get("slug") or path.stem)
        names = data.get("official_names") or []
        for name in [names] if isinstance(names, str) else names:
            table.setdefault(_key(str(name)), slug)
    return table


class _OfficialNames(Mapping[str, str]):
    """Official question-type name -> slug, read from the shipped category YAMLs on first use."""

    def __getitem__(self, name: str) -> str:
        return _official_table()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(_official_table())

    def __len__(self) -> int:
        return len(_official_table())


OFFICIAL_TYPE_NAMES: Mapping[str, str] = _OfficialNames()


def category_slug(name: str) -> str:
    """Map an official question-type name to our slug; unknown names become their own slug."""
    key = _key(name)
    return _official_table().get(key, re.sub(r"[^a-z0-9]+", "_", key).strip("_") or "unknown")
