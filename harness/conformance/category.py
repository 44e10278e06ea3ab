"""Conformance check for statement-category YAMLs: `check_category`."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from harness._exceptions import HarnessError

__all__ = ["CategoryCheck", "check_category"]


@dataclasses.dataclass(frozen=True)
class CategoryCheck:
    """What `check_category` found: the category's slug, its tasks' instance counts, and the tasks it
    resolved but could not load here (task name -> why, e.g. a data set behind an unset variable)."""

    slug: str
    tasks: dict[str, int]
    not_loaded: dict[str, str]


def check_category(path: str | Path, *, pm: Any = None) -> CategoryCheck:
    """Assert that the category YAML at ``path`` is one the harness can use; AssertionError says what is wrong.

    Checks that it parses (`harness.data.category_defs.read_category`: known fields, a lowercase
    slug, a definition, well-formed examples), that it has at least one worked example whose
    positive is not also among its (>= 1) negatives, that it makes at least one task (``data:`` of
    its own, or ``groups:`` whose base ``_<group>.yaml`` exists) and that every task resolves and
    loads with >= 1 instance of the category.  A task whose data lies behind an unset environment
    variable (``$TED6K_PATH``) is resolved but not loaded (see `CategoryCheck.not_loaded`).
    ``pm`` (default: the installed plugins) loads the data and supplies the group bases.
    """
    from harness.data.category_defs import read_category
    from harness.data.loaders import select_categories
    from harness.registry import load_plugin_registry, resolve_path

    path = Path(path)
    if pm is None:
        from harness.plugins import get_plugin_manager

        pm = get_plugin_manager()
    where = f"Category {str(path)!r}"
    try:
        cat = read_category(path)
    except HarnessError as exc:
        raise AssertionError(str(exc)) from None
    where = f"Category {cat.slug!r} ({path})"
    assert cat.examples, (
        f"{where}: has no examples; give at least one (caption, positive, negatives): the statement-writing "
        "prompt shows them"
    )
    for i, ex in enumerate(cat.examples):
        assert ex.negatives, f"{where}: examples[{i}] has no negatives; give the statements that contradict its caption"
        assert ex.positive not in ex.negatives, f"{where}: examples[{i}]: the positive {ex.positive!r} is also a negative"
    try:
        registry = load_plugin_registry(pm)
        specs = registry.resolve_tasks([str(path)])
    except HarnessError as exc:
        raise AssertionError(f"{where}: its tasks do not resolve: {exc}") from None
    assert specs, f"{where}: makes no task; give it data: {{path: FILE}} or groups: [GROUP] with a base _GROUP.yaml"
    counts: dict[str, int] = {}
    skipped: dict[str, str] = {}
    for spec in specs:
        try:
            resolve_path(spec.source)
        except HarnessError as exc:  # e.g. $TED6K_PATH unset: the data is not here to load
            skipped[spec.name] = str(exc)
            continue
        try:
            loaded = pm.hook.harness_load_instances(task=spec)
            assert loaded is not None, f"{where}: no plugin loads task {spec.name!r} (format {spec.format!r})"
            kept = select_categories(spec, loaded)
        except HarnessError as exc:
            raise AssertionError(f"{where}: task {spec.name!r} does not load: {exc}") from None
        assert kept, f"{where}: task {spec.name!r} ({spec.source}) holds no instance of category {cat.slug!r}"
        counts[spec.name] = len(kept)
    return CategoryCheck(slug=cat.slug, tasks=counts, not_loaded=skipped)
