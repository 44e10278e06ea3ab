"""registry.yaml and tasks/*.yaml -> frozen `EncoderSpec` / `TaskSpec`, validated once.

No raw dict goes past this module.  Encoders not in the registry can be named
ad hoc as ``FAMILY:PATH_OR_HUB_ID``; a task can be a file path or ``hf:ORG/NAME``.
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


def _task_spec(path: Path) -> TaskSpec:
    data = _read_yaml(path)
    seen = {path.resolve()}
    while "include" in data:  # shared fields, lm-eval style; the including file wins
        inc = (path.parent / str(data.pop("include"))).resolve()
        if inc in seen or not inc.exists():
            raise ConfigError(f"{path}: field 'include' names {inc.name!r}, which is missing or circular")
        seen.add(inc)
        data = {**_read_yaml(inc), **data}
    src = data.get("data") or {}
    if not isinstance(src, Mapping) or "path" not in src:
        raise ConfigError(f"{path}: field 'data' needs a 'path'")
    cats = data.get("category", data.get("categories"))
    groups = data.get("group", ())
    return TaskSpec(
        name=path.stem,
        source=str(src["path"]),
        format=str(src.get("format", "auto")),
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
        """Expand task names, group names, file/folder paths and ``hf:`` ids, keeping order."""
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
        if path.exists():
            fmt = "hf" if path.is_dir() else "auto"
            return [TaskSpec(name=path.stem, source=str(path), format=fmt)]
        hint = "A file path must exist; a datasets id is written hf:ORG/NAME."
        raise unknown_name("task", name, [*self.tasks, *self.groups], hint=hint)


def load_registry(registry_files: Iterable[Path], task_dirs: Iterable[Path], families: Iterable[str]) -> Registry:
    """Build a `Registry`: later registry files override earlier entries of the same name."""
    reg = Registry(families=set(families))
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
    for folder in task_dirs:
        for path in sorted(Path(folder).glob("*.yaml")):
            if not path.name.startswith("_"):
                reg.tasks[path.stem] = _task_spec(path)
    return reg
