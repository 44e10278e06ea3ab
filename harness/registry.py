"""registry.yaml and tasks/*.yaml -> frozen `EncoderSpec` / `TaskSpec`, validated once.

No raw dict goes past this module.  Encoders not in the registry can be named
ad hoc as ``FAMILY:PATH_OR_HUB_ID``.  A task can also be named by a task YAML
file anywhere, a folder of task YAMLs, a data file or dataset folder, or
``hf:ORG/NAME``.

A task YAML's ``include:`` names a base file, looked up next to the including
file first and then by name in the task folders (``include_paths`` first, then
the shipped ones), so ``include: _ted6k.yaml`` works from anywhere.  A relative
``data.path`` is read relative to the YAML file that sets it.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from harness._exceptions import ConfigError, unknown_name
from harness.types import EncoderOptions, EncoderSpec, TaskSpec

__all__ = ["Registry", "load_registry", "resolve_path"]

_ENCODER_KEYS = {"family", "checkpoint", "revision", "description", "options", "paper", "aliases"}
_OPTION_KEYS = {f.name for f in dataclasses.fields(EncoderOptions)}


def resolve_path(source: str) -> str:
    """Expand ``$VARS``, ``~`` and ``pkg:module/rel/path`` (a file shipped inside a package)."""
    expanded = os.path.expanduser(os.path.expandvars(source))
    if "$" in expanded:
        var = expanded[expanded.index("$"):].split("/")[0].strip("${}")
        raise ConfigError(f"{source!r} needs the environment variable {var}: export {var}=/path/to/file")
    source = expanded
    if not source.startswith("pkg:"):
        return source
    module, _, rel = source[4:].partition("/")
    found = importlib.util.find_spec(module)
    if found is None or not found.submodule_search_locations:
        raise ConfigError(f"{source!r} names package {module!r}, which is not installed: pip install it")
    return str(Path(list(found.submodule_search_locations)[0]) / rel)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{line}: not valid YAML: {getattr(exc, 'problem', exc)}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def _encoder_spec(name: str, entry: Mapping[str, Any], path: Path) -> EncoderSpec:
    where = f"{path}: encoder {name!r}"
    if not isinstance(entry, Mapping):
        raise ConfigError(f"{where}: expected a mapping")
    unknown = set(entry) - _ENCODER_KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {sorted(unknown)}; allowed: {sorted(_ENCODER_KEYS)}")
    for required in ("family", "checkpoint"):
        if not entry.get(required):
            raise ConfigError(f"{where}: field {required!r} is required")
    options = dict(entry.get("options") or {})
    bad = set(options) - _OPTION_KEYS
    if bad:
        raise ConfigError(f"{where}: unknown option(s) {sorted(bad)}; allowed: {sorted(_OPTION_KEYS)}")
    rev = entry.get("revision")
    return EncoderSpec(
        name=name,
        family=str(entry["family"]),
        checkpoint=str(entry["checkpoint"]),
        revision=None if rev is None else str(rev),
        options=EncoderOptions(**options),
        description=str(entry.get("description", "")),
        extra={"paper": entry.get("paper", ""), "source": str(path)},
    )


_TASK_SUFFIXES = (".yaml", ".yml")
# Files that `datasets.Dataset(Dict).save_to_disk` writes: such a folder is data, not task YAMLs.
_DATASET_MARKERS = ("dataset_info.json", "state.json", "dataset_dict.json")


def _task_files(folder: Path) -> list[Path]:
    """The task YAMLs in ``folder``: ``*.yaml``/``*.yml`` not starting with ``_`` (bases)."""
    if not folder.is_dir():  # a plugin's task dir that is absent contributes nothing
        return []
    found = [p for p in folder.iterdir() if p.suffix in _TASK_SUFFIXES and not p.name.startswith("_")]
    return sorted(p for p in found if p.is_file())


def _find_include(name: str, including: Path, search: Sequence[Path]) -> Path:
    """The file ``include: name`` in ``including`` means: its own folder first, then ``search``."""
    folders = list(dict.fromkeys([including.parent, *search]))
    for folder in folders:
        candidate = folder / name
        if candidate.is_file():
            return candidate.resolve()
    looked = ", ".join(str(f) for f in folders)
    raise ConfigError(
        f"{including}: field 'include' names {name!r}, which was not found; looked in: {looked}. "
        "Fix the name, or add the folder that holds it with --include-path DIR"
    )


def _read_task_chain(path: Path, search: Sequence[Path]) -> tuple[dict[str, Any], Path]:
    """Merge ``path`` over its includes (the including file wins); also say which file set ``data``."""
    data = _read_yaml(path)
    chain = [path.resolve()]
    data_from = path
    current = path
    while "include" in data:  # shared fields, lm-eval style
        name = data.pop("include")
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{current}: field 'include' must be a file name, got {name!r}")
        base = _find_include(name, current, search)
        if base in chain:
            cycle = " -> ".join(p.name for p in [*chain, base])
            raise ConfigError(f"{current}: field 'include' is circular: {cycle}. Remove one of these includes")
        chain.append(base)
        base_data = _read_yaml(base)
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


def _task_spec(path: Path, search: Sequence[Path] = ()) -> TaskSpec:
    """Parse one task YAML (named by its file stem), resolving ``include:`` through ``search``."""
    data, data_from = _read_task_chain(path, search)
    src = data.get("data") or {}
    if not isinstance(src, Mapping) or "path" not in src:
        raise ConfigError(f"{path}: field 'data' needs a 'path'")
    fmt = str(src.get("format", "auto"))
    cats = data.get("category", data.get("categories"))
    groups = data.get("group", ())
    return TaskSpec(
        name=path.stem,
        source=_data_source(str(src["path"]), fmt, data_from),
        format=fmt,
        categories=None if cats is None else tuple([cats] if isinstance(cats, str) else cats),
        groups=tuple([groups] if isinstance(groups, str) else groups),
        revision=src.get("revision"),
        split=src.get("split"),
        description=str(data.get("description", "")),
    )


@dataclass
class Registry:
    """Named encoders and tasks, plus the families the loaded plugins can build."""

    encoders: dict[str, EncoderSpec] = field(default_factory=dict)
    tasks: dict[str, TaskSpec] = field(default_factory=dict)
    families: set[str] = field(default_factory=set)
    task_dirs: list[Path] = field(default_factory=list)
    """Where ``include:`` bases are looked up by name (include paths first, then shipped)."""

    @property
    def groups(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for task in self.tasks.values():
            for g in task.groups:
                out.setdefault(g, []).append(task.name)
        return {g: sorted(v) for g, v in out.items()}

    def encoder(self, name: str) -> EncoderSpec:
        """Resolve a CLI encoder name or ``FAMILY:PATH_OR_HUB_ID``."""
        if name in self.encoders:
            return self.encoders[name]
        family, sep, ckpt = name.partition(":")
        if sep and ckpt:
            if family not in self.families:
                raise unknown_name("encoder family", family, self.families)
            path = resolve_path(ckpt)
            return EncoderSpec(name=name, family=family, checkpoint=path)
        raise unknown_name("encoder", name, self.encoders, hint="Or name one ad hoc as FAMILY:PATH_OR_HUB_ID.")

    def resolve_tasks(self, names: Sequence[str]) -> list[TaskSpec]:
        """Expand task names, group names, paths and ``hf:`` ids, keeping order.

        A path may be a task YAML (named by its stem), a folder of task YAMLs
        (every ``*.yaml``/``*.yml`` not starting with ``_``), a data file, or a
        dataset folder (one holding ``dataset_info.json``/``state.json``, or no
        task YAML).  Tasks of the same name collapse to the first.
        """
        out: list[TaskSpec] = []
        for name in names:
            for spec in self._resolve_task(name):
                if spec.name not in {t.name for t in out}:
                    out.append(spec)
        return out

    def _resolve_task(self, name: str) -> list[TaskSpec]:
        if name in self.tasks:
            return [self.tasks[name]]
        if name in self.groups:
            return [self.tasks[t] for t in self.groups[name]]
        if name.startswith("hf:"):
            return [TaskSpec(name=name[3:], source=name[3:], format="hf")]
        path = Path(resolve_path(name))
        if path.is_file() and path.suffix in _TASK_SUFFIXES:
            return [_task_spec(path, self.task_dirs)]
        if path.is_dir() and not any((path / m).exists() for m in _DATASET_MARKERS):
            yamls = _task_files(path)
            if yamls:
                return [_task_spec(p, self.task_dirs) for p in yamls]
        if path.exists():
            fmt = "hf" if path.is_dir() else "auto"
            return [TaskSpec(name=path.stem, source=str(path), format=fmt)]
        hint = ("A path must exist: a task .yaml, a folder of them, or a data file or folder; "
                "a datasets id is written hf:ORG/NAME.")
        raise unknown_name("task", name, [*self.tasks, *self.groups], hint=hint)


def load_registry(
    registry_files: Iterable[Path],
    task_dirs: Iterable[Path],
    families: Iterable[str],
    *,
    include_paths: Iterable[Path] = (),
) -> Registry:
    """Build a `Registry`: later registry files override earlier entries of the same name.

    Tasks come from ``task_dirs`` and then ``include_paths`` (extra folders, as
    ``--include-path DIR``), so a task in an include path replaces a shipped
    task of the same name.  Both kinds of folder are searched, include paths
    first, for ``include:`` bases.  Raises `ConfigError` for an include path
    that is not a folder.
    """
    extra = [Path(p) for p in include_paths]
    for folder in extra:
        if not folder.is_dir():
            raise ConfigError(
                f"Include path {str(folder)!r} is not a folder; --include-path takes a folder of task YAMLs"
            )
    shipped = [Path(p) for p in task_dirs]
    reg = Registry(families=set(families), task_dirs=list(dict.fromkeys([*extra, *shipped])))
    for path in registry_files:
        data = _read_yaml(Path(path))
        entries = data.get("encoders") or {}
        if not isinstance(entries, Mapping):
            raise ConfigError(f"{path}: field 'encoders' must be a mapping of name -> entry")
        for name, entry in entries.items():
            spec = _encoder_spec(str(name), entry, Path(path))
            reg.encoders[spec.name] = spec
            for alias in entry.get("aliases") or ():  # e.g. qwen3-vl-8b -> qwen3-vl-8b-instruct
                reg.encoders[str(alias)] = dataclasses.replace(spec, name=str(alias))
    for folder in [*shipped, *extra]:  # include paths last: they override shipped tasks
        for path in _task_files(folder):
            reg.tasks[path.stem] = _task_spec(path, reg.task_dirs)
    return reg
