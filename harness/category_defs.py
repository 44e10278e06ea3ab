"""Statement categories as data: a definition and worked examples per category, one YAML file each.

A category file (``<slug>.yaml`` in a folder given by the ``harness_category_dirs`` hook)::

    name: Quantity
    slug: quantity                  # optional: the file stem
    definition: The number of a kind of object or event ...
    examples:                        # shown to the LLM that writes statements
      - caption: Three red apples ...
        positive: There are three apples on the plate.
        negatives: [There are two apples ..., ...]
    official_names: [quantity, counting]   # question-type names in the official TED-6K file

Adding a category is adding a file: no Python changes.  The nine built-ins ship in
``harness_tasks/categories`` (`harness.categories.CATEGORIES` keeps their report order).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from harness._exceptions import ConfigError, unknown_name
from harness.categories import CATEGORIES, category_slug

__all__ = ["CategoryDef", "CategoryExample", "category_dirs", "hook_sources", "load_categories", "read_category",
           "select_categories", "task_origins"]

_KEYS = {"name", "slug", "definition", "examples", "official_names", "description"}


@dataclass(frozen=True)
class CategoryExample:
    caption: str
    positive: str
    negatives: tuple[str, ...] = ()


@dataclass(frozen=True)
class CategoryDef:
    """One statement category.  ``source``: the file it was read from; ``plugin``: who shipped it."""

    slug: str
    name: str
    definition: str
    examples: tuple[CategoryExample, ...] = ()
    official_names: tuple[str, ...] = ()
    source: str = ""
    plugin: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def official_name(self) -> str:
        """The question-type key for the official TED-6K layout: one that reads back as this slug."""
        return next((n for n in self.official_names if category_slug(n) == self.slug), self.slug)


def _text(data: Mapping[str, Any], key: str, path: Path, *, where: str = "") -> str:
    val = data.get(key)
    if not isinstance(val, str) or not val.strip():
        raise ConfigError(f"{path}: field {where}{key!r} must be a non-empty string, got {val!r:.60}")
    return " ".join(val.split())


def _example(raw: Any, path: Path, i: int) -> CategoryExample:
    where = f"examples[{i}]."
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{path}: examples[{i}] must be a mapping with caption, positive, negatives; got {raw!r:.60}")
    negs = raw.get("negatives") or []
    if not isinstance(negs, list) or not all(isinstance(n, str) and n.strip() for n in negs):
        raise ConfigError(f"{path}: field {where}'negatives' must be a list of strings, got {negs!r:.60}")
    return CategoryExample(caption=_text(raw, "caption", path, where=where),
                           positive=_text(raw, "positive", path, where=where),
                           negatives=tuple(" ".join(n.split()) for n in negs))


def read_category(path: str | Path, *, plugin: str = "") -> CategoryDef:
    """Parse one category YAML; raises `ConfigError` naming the file and field."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8-sig")) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot be read as a category YAML ({' '.join(str(exc).split())})") from None
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path}: expected a mapping with name, definition, examples")
    unknown = set(data) - _KEYS
    if unknown:
        raise ConfigError(f"{path}: unknown field(s) {sorted(unknown)}; allowed: {sorted(_KEYS)}")
    slug = str(data.get("slug") or path.stem)
    if category_slug(slug) != slug and slug not in CATEGORIES:
        raise ConfigError(f"{path}: slug {slug!r} is not a lowercase identifier; use {category_slug(slug)!r}")
    examples = data.get("examples") or []
    if not isinstance(examples, list):
        raise ConfigError(f"{path}: field 'examples' must be a list, got {examples!r:.60}")
    names = data.get("official_names") or []
    if isinstance(names, str):
        names = [names]
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ConfigError(f"{path}: field 'official_names' must be a list of names, got {names!r:.60}")
    return CategoryDef(slug=slug, name=str(data.get("name") or slug), definition=_text(data, "definition", path),
                       examples=tuple(_example(e, path, i) for i, e in enumerate(examples)),
                       official_names=tuple(names), source=str(path), plugin=plugin)


def hook_sources(pm: Any, hook_name: str) -> list[tuple[str, Path]]:
    """(plugin name, folder) for every folder a list-of-paths hook returns, built-ins (trylast) first."""
    out: list[tuple[str, Path]] = []
    for impl in getattr(pm.hook, hook_name).get_hookimpls():  # pluggy order: trylast first
        for folder in impl.function() or ():
            out.append((impl.plugin_name, Path(folder)))
    return out


def task_origins(pm: Any, include_paths: Sequence[str] = ()) -> dict[str, str]:
    """Task name -> where its YAML came from ("plugin: folder"), with the registry's override order."""
    out: dict[str, str] = {}
    folders = [*hook_sources(pm, "harness_task_dirs"), *(("--include-path", Path(p)) for p in include_paths)]
    for plugin, folder in folders:
        if folder.is_dir():
            for path in sorted(folder.iterdir()):
                if path.suffix in (".yaml", ".yml") and not path.name.startswith("_") and path.is_file():
                    out[path.stem] = f"{plugin}: {folder}"
    return out


def category_dirs(pm: Any) -> list[tuple[str, Path]]:
    """(plugin name, folder) of every category folder the loaded plugins contribute."""
    return hook_sources(pm, "harness_category_dirs")


def load_categories(folders: Sequence[tuple[str, Path]]) -> dict[str, CategoryDef]:
    """Every category in ``folders`` (plugin name, folder), by slug: built-ins in `CATEGORIES` order first,
    then the rest by slug.  A later folder's category replaces an earlier one of the same slug."""
    found: dict[str, CategoryDef] = {}
    for plugin, folder in folders:
        if not folder.is_dir():
            continue
        for path in sorted(p for p in folder.iterdir() if p.suffix in (".yaml", ".yml") and not p.name.startswith("_")):
            cat = read_category(path, plugin=plugin)
            found[cat.slug] = cat
    order = [s for s in CATEGORIES if s in found] + sorted(s for s in found if s not in CATEGORIES)
    return {s: found[s] for s in order}


def select_categories(categories: Mapping[str, CategoryDef], names: Sequence[str]) -> list[CategoryDef]:
    """The categories named (slugs or official names), in the order given; an unknown name raises."""
    out: list[CategoryDef] = []
    for name in names:
        slug = name if name in categories else category_slug(name)
        if slug not in categories:
            raise unknown_name("category", name, list(categories),
                               "Add one as a YAML file (harness list categories shows where they live).")
        if categories[slug] not in out:
            out.append(categories[slug])
    return out
