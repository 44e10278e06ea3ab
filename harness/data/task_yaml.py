"""Task YAML files -> frozen `TaskSpec`: reading, ``include:`` chains, key checks, data paths.

A task YAML's ``include:`` names a base file, looked up next to the including file first and
then by name in the task folders (``search``: include paths first, then the shipped ones).  A
relative ``data.path`` is read relative to the YAML file that sets it.  Every unknown key is
refused with "Did you mean", naming the file.  `resolve_path` expands ``$VARS``, ``~`` and
``pkg:module/path`` for every path a user or a YAML gives.  `harness.registry` collects the
tasks these build.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from harness._exceptions import ConfigError, unknown_name
from harness.data.category_defs import _KEYS as _CATEGORY_KEYS
from harness.data.category_defs import CategoryDef, CategoryTask, is_category, read_category
from harness.data.versioning import parse_version
from harness.types import TaskSpec

__all__ = ["DATASET_MARKERS", "TASK_SUFFIXES", "category_task_spec", "check_keys", "find_include", "is_category_file",
           "locate", "read_category_checked", "read_yaml", "resolve_path", "task_files", "task_spec"]

# What `_task_spec` reads from a task YAML (with its include: bases) and from its data: mapping; any other
# key is refused with "Did you mean", so a misspelt `categroy: ocr` cannot silently select every category.
_TASK_KEYS = {"include", "data", "category", "categories", "group", "description", "demo", "train_pairs", "version"}
_DATA_KEYS = {"path", "format", "revision", "split"}


def resolve_path(source: str) -> str:
    """Expand ``$VARS``, ``~`` and ``pkg:module/rel/path`` (a file shipped inside a package).

    A path that exists as typed is returned as typed, so a user's file whose
    name holds ``$`` or starts with ``~`` is read literally; only a path that does
    not exist is expanded (``$TED6K_PATH`` in a task YAML).
    """
    if os.path.exists(source):
        return source
    # Look for unset variables in what was typed: a variable's value may itself hold a '$'.
    unset = [v for v in re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)", source) if v not in os.environ]
    if unset:
        var = unset[0]
        raise ConfigError(f"{source!r} needs the environment variable {var}: export {var}=/path/to/file "
                          "(no file of that name exists either)")
    source = os.path.expanduser(os.path.expandvars(source))
    if not source.startswith("pkg:"):
        return source
    module, _, rel = source[4:].partition("/")
    found = importlib.util.find_spec(module)
    if found is None or not found.submodule_search_locations:
        raise ConfigError(f"{source!r} names package {module!r}, which is not installed: pip install it")
    return str(Path(next(iter(found.submodule_search_locations))) / rel)


def read_yaml(path: Path) -> dict[str, Any]:
    if path.is_dir():
        raise ConfigError(f"{path}: is a directory, not a YAML file")
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: does not exist") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror or exc}); check its permissions") from None
    try:
        text = raw.decode("utf-8-sig")  # a leading byte-order mark is fine
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigError(f"{path}:{line}: not UTF-8 (byte 0x{raw[exc.start]:02x} at line {line}); "
                          "re-save it as UTF-8") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or " ".join(str(exc).split())
        raise ConfigError(f"{path}{at}: not valid YAML: {problem}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def check_keys(data: Mapping[str, Any], allowed: set[str], path: Path, *, prefix: str = "", hint: str = "") -> None:
    """Refuse a key of ``data`` that is not in ``allowed``: "Unknown field 'data.pth'. Did you mean: data.path?"."""
    unknown = [str(k) for k in data if k not in allowed]
    if unknown:
        names = [f"{prefix}{k}" for k in sorted(allowed)]
        raise ConfigError(f"{path}: {unknown_name('field', prefix + unknown[0], names, hint)}")


def _check_task_keys(data: Mapping[str, Any], path: Path) -> None:
    """The keys of one task YAML (a task file, a group base, or the task a category file makes)."""
    unknown = [k for k in data if k not in _TASK_KEYS]
    if unknown:
        # A category field (name, examples...) in a file without `definition:` makes it read as a task file.
        strays = [str(k) for k in unknown if k in _CATEGORY_KEYS]
        hint = (f"({', '.join(strays)}: fields of a category file, which is marked by a 'definition:' field)"
                if strays else "")
        first = next((k for k in unknown if k not in _CATEGORY_KEYS), unknown[0])
        check_keys({first: None}, _TASK_KEYS, path, hint=hint)
    src = data.get("data")
    if isinstance(src, Mapping):
        check_keys(src, _DATA_KEYS, path, prefix="data.")
    if "version" in data:
        parse_version(data["version"], path)  # refused here, naming the file that holds it


def read_category_checked(path: Path, *, plugin: str = "") -> CategoryDef:
    """`read_category`, after refusing an unknown key with "Did you mean" (a file it cannot parse is left to it)."""
    try:
        data = read_yaml(path)
    except ConfigError:
        data = {}
    check_keys(data, _CATEGORY_KEYS, path)
    return read_category(path, plugin=plugin)


TASK_SUFFIXES = (".yaml", ".yml")
# Files that `datasets.Dataset(Dict).save_to_disk` writes: such a folder is data, not task YAMLs.
DATASET_MARKERS = ("dataset_info.json", "state.json", "dataset_dict.json")


def task_files(folder: Path) -> list[Path]:
    """The task YAMLs in ``folder``: ``*.yaml``/``*.yml`` not starting with ``_`` (bases)."""
    if not folder.is_dir():  # a plugin's task dir that is absent contributes nothing
        return []
    found = [p for p in folder.iterdir() if p.suffix in TASK_SUFFIXES and not p.name.startswith("_")]
    return sorted(p for p in found if p.is_file())


def is_category_file(path: Path) -> bool:
    """Whether the YAML at ``path`` is a statement category (one that does not parse is a broken task)."""
    try:
        return is_category(read_yaml(path))
    except ConfigError:
        return False


def locate(name: str, including: Path, search: Sequence[Path]) -> Path | None:
    """The file ``include: name`` in ``including`` means: its own folder first, then ``search``."""
    for folder in dict.fromkeys([including.parent, *search]):
        candidate = folder / name
        if candidate.is_file():
            return candidate.resolve()
    return None


def find_include(name: str, including: Path, search: Sequence[Path]) -> Path:
    """`locate`, or a `ConfigError` saying where it looked."""
    found = locate(name, including, search)
    if found is not None:
        return found
    looked = ", ".join(str(f) for f in dict.fromkeys([including.parent, *search]))
    raise ConfigError(
        f"{including}: field 'include' names {name!r}, which was not found; looked in: {looked}. "
        "Fix the name, or add the folder that holds it with --include-path DIR"
    )


def _read_task_chain(path: Path, search: Sequence[Path],
                     raw: Mapping[str, Any] | None = None) -> tuple[dict[str, Any], Path]:
    """Merge ``path`` (or ``raw``, the task a category file at ``path`` stands for) over its includes
    (the including file wins); also say which file set ``data``."""
    data = read_yaml(path) if raw is None else dict(raw)
    _check_task_keys(data, path)
    chain = [path.resolve()]
    data_from = path
    current = path
    while "include" in data:  # shared fields, lm-eval style
        name = data.pop("include")
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{current}: field 'include' must be a file name, got {name!r}")
        base = find_include(name, current, search)
        if base in chain:
            cycle = " -> ".join(p.name for p in [*chain, base])
            raise ConfigError(f"{current}: field 'include' is circular: {cycle}. Remove one of these includes")
        chain.append(base)
        base_data = read_yaml(base)
        _check_task_keys(base_data, base)
        if "data" not in data and "data" in base_data:
            data_from = base
        data = {**base_data, **data}
        current = base
    return data, data_from


def _data_source(source: str, fmt: str, yaml_file: Path) -> str:
    """A relative ``data.path`` is relative to ``yaml_file``'s folder; ids and ``$VAR``/``pkg:`` stay."""
    if source.startswith(("pkg:", "hf:", "~")) or "$" in source or Path(source).is_absolute():
        return source
    local = yaml_file.parent.resolve() / source
    if fmt == "hf" and not local.exists():
        return source  # a datasets hub id such as org/name
    return str(local)


def _names(data: Mapping[str, Any], key: str, path: Path) -> tuple[str, ...] | None:
    """A field holding one name or a list of names (``category: ocr`` or ``[ocr, quantity]``)."""
    val = data.get(key)
    if val is None:
        return None
    items = [val] if isinstance(val, str) else val
    if not isinstance(items, list) or not items or not all(isinstance(x, str) and x.strip() for x in items):
        raise ConfigError(f"{path}: field {key!r} must be a name or a non-empty list of names, got {val!r}")
    return tuple(items)


def task_spec(path: Path, search: Sequence[Path] = (), *, raw: Mapping[str, Any] | None = None,
               name: str | None = None) -> TaskSpec:
    """Parse one task YAML (named by its file stem), resolving ``include:`` through ``search``; or, with
    ``raw`` and ``name``, the task a category file at ``path`` makes."""
    data, data_from = _read_task_chain(path, search, raw)
    src = data.get("data") or {}
    if not isinstance(src, Mapping) or not isinstance(src.get("path"), str) or not src["path"].strip():
        raise ConfigError(f"{path}: field 'data' needs a 'path' (a data file, a folder or a hub id), got {src!r}")
    fmt = str(src.get("format", "auto"))
    cats = _names(data, "category", path) if "category" in data else _names(data, "categories", path)
    rev, split = src.get("revision"), src.get("split")
    demo = data.get("demo", False)
    if not isinstance(demo, bool):
        raise ConfigError(f"{path}: field 'demo' must be true or false, got {demo!r}")
    pairs = data.get("train_pairs", "demo" if demo else None)  # `demo: true` is `train_pairs: demo`
    if pairs is not None and (not isinstance(pairs, str) or not pairs.strip()):
        raise ConfigError(f"{path}: field 'train_pairs' must name a pair set (harness list pairs), got {pairs!r}")
    return TaskSpec(
        name=name or path.stem,
        source=_data_source(str(src["path"]), fmt, data_from),
        format=fmt,
        categories=cats,
        groups=_names(data, "group", path) or (),
        revision=None if rev is None else str(rev),
        split=None if split is None else str(split),
        description=str(data.get("description", "")),
        train_pairs=pairs,
        version=parse_version(data["version"], path) if "version" in data else None,
    )


def category_task_spec(path: Path, search: Sequence[Path], task: CategoryTask, cat: CategoryDef) -> TaskSpec:
    """The task ``task`` of category ``cat`` (file ``path``): its version from its data's YAML, plus the category's."""
    spec = task_spec(path, search, raw=task.fields, name=task.name)
    return dataclasses.replace(spec, category_version=cat.version)
