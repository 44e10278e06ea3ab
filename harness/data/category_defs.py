"""Statement categories as data: one YAML file per category holds everything about it.

A category file (``<slug>.yaml`` in a folder given by the ``harness_category_dirs`` hook, or among
the task YAMLs of a task folder or ``--include-path`` folder, where its ``definition:`` marks it)::

    name: Quantity
    slug: quantity                  # optional: the file stem
    definition: The number of a kind of object or event ...
    examples:                        # shown to the LLM that writes statements
      - caption: Three red apples ...
        positive: There are three apples on the plate.
        negatives: [There are two apples ..., ...]
    official_names: [quantity, counting]   # question-type names in the official TED-6K file
    groups: [ted6k, ted6k-sample]    # its tasks: one per group (below)
    select: [counting]               # optional: other instance labels its tasks keep besides the slug
    data: {path: mine.jsonl}         # optional: data for a task of its own, named after the slug
    train_pairs: demo                # optional: that task's default pair set
    version: 1                       # its version (definition, examples, select; its own data's): see task_versions

Its tasks (`category_tasks`): for each group G in ``groups`` whose base ``_G.yaml`` exists (looked up
like ``include:``), the task ``G-<slug>`` (``_`` written ``-``) that includes the base and selects the
category; with ``data:``, the task ``<slug>`` on that data, which also joins the groups that have no
base.  Adding a category is adding a file: no Python changes, no task file.  The nine built-ins ship
in ``harness_tasks/categories`` (`harness.data.categories.CATEGORIES` keeps their report order).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from harness._exceptions import ConfigError, unknown_name
from harness.data.categories import CATEGORIES, category_slug
from harness.data.versioning import parse_version

__all__ = ["CategoryDef", "CategoryExample", "CategoryTask", "category_dirs", "category_files", "category_tasks",
           "hook_sources", "in_report_order", "is_category", "load_categories", "read_category", "select_categories",
           "task_name"]

_TASK_KEYS = {"data", "train_pairs", "description", "version"}  # fields of the category's own task
_KEYS = {"name", "slug", "definition", "examples", "official_names", "groups", "select", *_TASK_KEYS}
_YAML = (".yaml", ".yml")


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
    groups: tuple[str, ...] = ()
    """Groups whose task ``<group>-<slug>`` it has (through the base ``_<group>.yaml``) or its own task joins."""
    select: tuple[str, ...] = ()
    """Instance labels its tasks keep besides the slug."""
    task: Mapping[str, Any] = field(default_factory=dict)
    """Fields of its own task (``data``, ``train_pairs``, ``description``, ``version``), checked when the registry
    builds it."""
    version: str | None = None
    """Its ``version:`` (`harness.data.task_versions`): of its definition, examples and select; recorded as its tasks'
    ``category_version`` (and, for its own task on its ``data:``, as that task's version too)."""

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


def _labels(data: Mapping[str, Any], key: str, path: Path) -> tuple[str, ...]:
    val = data.get(key) or []
    items = [val] if isinstance(val, str) else val
    if not isinstance(items, list) or not all(isinstance(x, str) and x.strip() for x in items):
        raise ConfigError(f"{path}: field {key!r} must be a name or a list of names, got {val!r:.60}")
    return tuple(items)


def is_category(data: Mapping[str, Any]) -> bool:
    """Whether a parsed YAML is a category file (it has a ``definition``) rather than a task file."""
    return "definition" in data


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
    if "data" in data and not isinstance(data["data"], Mapping):
        raise ConfigError(f"{path}: field 'data' must be a mapping with a 'path' (as in a task YAML), "
                          f"got {data['data']!r:.60}")
    return CategoryDef(slug=slug, name=str(data.get("name") or slug), definition=_text(data, "definition", path),
                       examples=tuple(_example(e, path, i) for i, e in enumerate(examples)),
                       official_names=tuple(names), source=str(path), plugin=plugin,
                       groups=_labels(data, "groups", path), select=_labels(data, "select", path),
                       task={k: data[k] for k in _TASK_KEYS if k in data},
                       version=parse_version(data["version"], path) if "version" in data else None)


def hook_sources(pm: Any, hook_name: str) -> list[tuple[str, Path]]:
    """(plugin name, folder) for every folder a list-of-paths hook returns, built-ins (trylast) first."""
    out: list[tuple[str, Path]] = []
    for impl in getattr(pm.hook, hook_name).get_hookimpls():  # pluggy order: trylast first
        for folder in impl.function() or ():
            out.append((impl.plugin_name, Path(folder)))
    return out


def category_dirs(pm: Any) -> list[tuple[str, Path]]:
    """(plugin name, folder) of every category folder the loaded plugins contribute."""
    return hook_sources(pm, "harness_category_dirs")


def category_files(folders: Sequence[tuple[str, Path]]) -> list[tuple[str, Path]]:
    """(plugin name, file) for every ``*.yaml``/``*.yml`` not starting with ``_`` in ``folders``, in order."""
    out: list[tuple[str, Path]] = []
    for plugin, folder in folders:
        if folder.is_dir():
            found = (p for p in folder.iterdir() if p.suffix in _YAML and not p.name.startswith("_") and p.is_file())
            out.extend((plugin, path) for path in sorted(found))
    return out


def in_report_order(found: Mapping[str, CategoryDef]) -> dict[str, CategoryDef]:
    """``found`` by slug: built-ins in `CATEGORIES` order first, then the rest by slug."""
    order = [s for s in CATEGORIES if s in found] + sorted(s for s in found if s not in CATEGORIES)
    return {s: found[s] for s in order}


def load_categories(folders: Sequence[tuple[str, Path]]) -> dict[str, CategoryDef]:
    """Every category in ``folders`` (plugin name, folder), by slug: built-ins in `CATEGORIES` order first,
    then the rest by slug.  A later folder's category replaces an earlier one of the same slug."""
    found: dict[str, CategoryDef] = {}
    for plugin, path in category_files(folders):
        cat = read_category(path, plugin=plugin)
        found[cat.slug] = cat
    return in_report_order(found)


def task_name(slug: str, group: str | None = None) -> str:
    """The CLI name of a category's task: ``<group>-<slug>`` or ``<slug>``, with ``_`` written ``-``."""
    name = slug.replace("_", "-")
    return f"{group}-{name}" if group else name


@dataclass(frozen=True)
class CategoryTask:
    """One task a category makes: its name and the task YAML it stands for (parsed by the registry)."""

    name: str
    fields: Mapping[str, Any]
    base: str = ""
    """The group base it includes (``_ted6k.yaml``); empty for the category's own task."""


def category_tasks(cat: CategoryDef, find_base: Callable[[str], Path | None]) -> list[CategoryTask]:
    """The tasks ``cat`` makes (see the module docstring); ``find_base(name)`` locates a base file or None.

    Raises `ConfigError` when it names groups that have no base and it has no ``data:`` of its own.
    """
    select = [cat.slug, *(s for s in cat.select if s != cat.slug)]
    out: list[CategoryTask] = []
    labels: list[str] = []
    for group in dict.fromkeys(cat.groups):
        base = f"_{group}.yaml"
        if find_base(base) is None:
            labels.append(group)  # a group of the user's own: its own task joins it
        else:
            out.append(CategoryTask(task_name(cat.slug, group), {"include": base, "category": select}, base))
    if "data" in cat.task:
        own = {"description": cat.name, **cat.task, "category": select}
        out.append(CategoryTask(task_name(cat.slug), {**own, "group": labels} if labels else own))
    elif labels:
        raise ConfigError(
            f"{cat.source}: field 'groups' names {', '.join(map(repr, labels))}, but no base file "
            f"({', '.join(f'_{g}.yaml' for g in labels)}) was found and the category has no 'data' of its own. "
            "Add data: {path: FILE} to it, or a base holding group and data to an --include-path folder"
        )
    return out


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
