"""registry.yaml and tasks/*.yaml -> frozen `EncoderSpec` / `TaskSpec`, validated once.

No raw dict goes past this module.  Encoders not in the registry can be named
ad hoc as ``FAMILY:PATH_OR_HUB_ID``.  A task can also be named by a task YAML
file anywhere, a folder of task YAMLs, a data file or dataset folder, or
``hf:ORG/NAME``.

A task YAML's ``include:`` names a base file, looked up next to the including
file first and then by name in the task folders (``include_paths`` first, then
the shipped ones), so ``include: _ted6k.yaml`` works from anywhere.  A relative
``data.path`` is read relative to the YAML file that sets it.

A statement category's YAML (`harness.data.category_defs`: from the category folders,
or among the task YAMLs, marked by ``definition:``) makes its tasks itself: for
each of its ``groups`` G with a base ``_G.yaml``, the task ``G-<slug>`` that
includes the base and selects the category (``ted6k-action``); with ``data:``,
a task ``<slug>`` of its own.  No task file per category.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import logging
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from harness._exceptions import ConfigError, unknown_name
from harness.data.category_defs import _KEYS as _CATEGORY_KEYS
from harness.data.category_defs import (
    CategoryDef,
    CategoryTask,
    category_dirs as plugin_category_dirs,
    category_files,
    category_tasks,
    hook_sources,
    in_report_order,
    is_category,
    read_category,
    task_name,
)
from harness.data.versioning import parse_version
from harness.types import EncoderOptions, EncoderSpec, PairSetSpec, TaskSpec

__all__ = ["Registry", "load_plugin_registry", "load_registry", "load_tasks", "resolve_path", "task_origins"]

log = logging.getLogger("harness")
_ENCODER_KEYS = {"family", "checkpoint", "revision", "description", "options", "paper", "aliases"}
_OPTION_KEYS = {f.name for f in dataclasses.fields(EncoderOptions)}
_PAIRS_KEYS = {"path", "description", "default_max", "source", "licence", "citation"}
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


def _read_yaml(path: Path) -> dict[str, Any]:
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


def _check_keys(data: Mapping[str, Any], allowed: set[str], path: Path, *, prefix: str = "", hint: str = "") -> None:
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
        _check_keys({first: None}, _TASK_KEYS, path, hint=hint)
    src = data.get("data")
    if isinstance(src, Mapping):
        _check_keys(src, _DATA_KEYS, path, prefix="data.")
    if "version" in data:
        parse_version(data["version"], path)  # refused here, naming the file that holds it


def _read_category(path: Path, *, plugin: str = "") -> CategoryDef:
    """`read_category`, after refusing an unknown key with "Did you mean" (a file it cannot parse is left to it)."""
    try:
        data = _read_yaml(path)
    except ConfigError:
        data = {}
    _check_keys(data, _CATEGORY_KEYS, path)
    return read_category(path, plugin=plugin)


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
    if not isinstance(entry.get("options") or {}, Mapping):
        raise ConfigError(f"{where}: field 'options' must be a mapping of option -> value, got {entry['options']!r}")
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


def _pair_set_spec(name: str, entry: Mapping[str, Any], path: Path) -> PairSetSpec:
    where = f"{path}: pairs {name!r}"
    if not isinstance(entry, Mapping):
        raise ConfigError(f"{where}: expected a mapping with a 'path'")
    unknown = set(entry) - _PAIRS_KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {sorted(unknown)}; allowed: {sorted(_PAIRS_KEYS)}")
    src = entry.get("path")
    if not isinstance(src, str) or not src.strip():
        raise ConfigError(f"{where}: field 'path' must be a pairs file (or pkg:module/file), got {src!r}")
    cap = entry.get("default_max")
    if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 2):
        raise ConfigError(f"{where}: field 'default_max' must be an integer >= 2, got {cap!r}")
    if not src.startswith("pkg:") and "$" not in src and not Path(src).is_absolute():
        src = str(path.parent.resolve() / src)  # relative to the registry file that names it
    extra = {k: str(entry[k]) for k in ("source", "licence", "citation") if k in entry}
    return PairSetSpec(name=name, source=src, description=str(entry.get("description", "")), default_max=cap,
                       extra=extra)


_TASK_SUFFIXES = (".yaml", ".yml")
# Files that `datasets.Dataset(Dict).save_to_disk` writes: such a folder is data, not task YAMLs.
_DATASET_MARKERS = ("dataset_info.json", "state.json", "dataset_dict.json")


def _task_files(folder: Path) -> list[Path]:
    """The task YAMLs in ``folder``: ``*.yaml``/``*.yml`` not starting with ``_`` (bases)."""
    if not folder.is_dir():  # a plugin's task dir that is absent contributes nothing
        return []
    found = [p for p in folder.iterdir() if p.suffix in _TASK_SUFFIXES and not p.name.startswith("_")]
    return sorted(p for p in found if p.is_file())


def _is_category_file(path: Path) -> bool:
    """Whether the YAML at ``path`` is a statement category (one that does not parse is a broken task)."""
    try:
        return is_category(_read_yaml(path))
    except ConfigError:
        return False


def _locate(name: str, including: Path, search: Sequence[Path]) -> Path | None:
    """The file ``include: name`` in ``including`` means: its own folder first, then ``search``."""
    for folder in dict.fromkeys([including.parent, *search]):
        candidate = folder / name
        if candidate.is_file():
            return candidate.resolve()
    return None


def _find_include(name: str, including: Path, search: Sequence[Path]) -> Path:
    """`_locate`, or a `ConfigError` saying where it looked."""
    found = _locate(name, including, search)
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
    data = _read_yaml(path) if raw is None else dict(raw)
    _check_task_keys(data, path)
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


def _task_spec(path: Path, search: Sequence[Path] = (), *, raw: Mapping[str, Any] | None = None,
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


@dataclass
class Registry:
    """Named encoders, pair sets and tasks, plus the families the loaded plugins can build."""

    encoders: dict[str, EncoderSpec] = field(default_factory=dict)
    tasks: dict[str, TaskSpec] = field(default_factory=dict)
    pairs: dict[str, PairSetSpec] = field(default_factory=dict)
    families: set[str] = field(default_factory=set)
    task_dirs: list[Path] = field(default_factory=list)
    """Where ``include:`` bases are looked up by name (include paths first, then shipped)."""
    skipped: dict[str, ConfigError] = field(default_factory=dict)
    """Task files that failed to parse, by task name: raised only when that task is asked for."""
    categories: dict[str, CategoryDef] = field(default_factory=dict)
    """Every statement category read (category folders, then task folders), by slug, in report order."""
    origins: dict[str, tuple[Path, str]] = field(default_factory=dict)
    """Task (or skipped task) name -> (the file that defines it, for a category's task "file + base")."""

    @property
    def groups(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for task in self.tasks.values():
            for g in task.groups:
                out.setdefault(g, []).append(task.name)
        return {g: sorted(v) for g, v in out.items()}

    def encoder(self, name: str, defaults: Mapping[str, Any] | None = None) -> EncoderSpec:
        """Resolve a CLI encoder name or ``FAMILY:PATH_OR_HUB_ID``, either with ``[key=value,...]``.

        Options: the registry entry's, then ``defaults`` (the run-wide flags), then the bracket's
        (`harness._encoder_args`); the bracket's values are kept in ``spec.extra["args"]``."""
        from harness._encoder_args import parse_encoder_args

        base, args = parse_encoder_args(name)
        spec = self._encoder(base)
        options = {**dict(defaults or {}), **{k: v for k, v in args.items() if k not in ("name", "revision")}}
        if options:
            bad = sorted(set(options) - _OPTION_KEYS)
            if bad:
                raise ConfigError(f"encoder {name!r}: unknown option(s) {bad}; allowed: {sorted(_OPTION_KEYS)}")
            spec = dataclasses.replace(spec, options=dataclasses.replace(spec.options, **options))
        if args:
            spec = dataclasses.replace(spec, name=str(args.get("name", name.strip())),
                                       revision=args.get("revision", spec.revision),
                                       extra={**spec.extra, "args": dict(args)})
        return spec

    def _encoder(self, name: str) -> EncoderSpec:
        if name in self.encoders:
            return self.encoders[name]
        family, sep, ckpt = name.partition(":")
        if sep and ckpt:
            if family not in self.families:
                raise unknown_name("encoder family", family, self.families)
            path = resolve_path(ckpt)
            return EncoderSpec(name=name, family=family, checkpoint=path)
        raise unknown_name("encoder", name, self.encoders, hint="Or name one ad hoc as FAMILY:PATH_OR_HUB_ID.")

    def pair_set(self, name: str) -> PairSetSpec | None:
        """The named pair set ``name``, or None when ``name`` is not one (then it is a file or source)."""
        return self.pairs.get(name)

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
        if name in self.skipped:
            raise self.skipped[name]
        if name in self.groups:
            return [self.tasks[t] for t in self.groups[name]]
        if name.startswith("hf:"):
            return [TaskSpec(name=name[3:], source=name[3:], format="hf")]
        path = Path(resolve_path(name))
        if path.is_file() and path.suffix in _TASK_SUFFIXES:
            return self._file_specs(path)
        if path.is_dir() and not any((path / m).exists() for m in _DATASET_MARKERS):
            yamls = _task_files(path)
            if yamls:
                return [spec for p in yamls for spec in self._file_specs(p)]
        if path.exists():
            fmt = "hf" if path.is_dir() else "auto"
            return [TaskSpec(name=path.stem, source=str(path), format=fmt)]
        hint = ("A path must exist: a task .yaml, a folder of them, or a data file or folder; "
                "a datasets id is written hf:ORG/NAME.")
        if self.skipped:
            hint += f" Task files skipped because of errors: {', '.join(sorted(self.skipped))}."
        raise unknown_name("task", name, [*self.tasks, *self.groups], hint=hint)

    def _file_specs(self, path: Path) -> list[TaskSpec]:
        """The task a task YAML names, or the tasks a category YAML makes."""
        if not _is_category_file(path):
            return [_task_spec(path, self.task_dirs)]
        cat = _read_category(path)
        plan = category_tasks(cat, lambda base: _locate(base, path, self.task_dirs))
        if not plan:
            raise ConfigError(f"{path}: category {cat.slug!r} makes no task: give it data: {{path: FILE}} "
                              "or groups: [GROUP] whose base _GROUP.yaml holds the data")
        return [_category_task_spec(path, self.task_dirs, t, cat) for t in plan]


def _category_task_spec(path: Path, search: Sequence[Path], task: CategoryTask, cat: CategoryDef) -> TaskSpec:
    """The task ``task`` of category ``cat`` (file ``path``): its version from its data's YAML, plus the category's."""
    spec = _task_spec(path, search, raw=task.fields, name=task.name)
    return dataclasses.replace(spec, category_version=cat.version)


def _add_task(reg: Registry, name: str, build: Callable[[], TaskSpec], origin: tuple[Path, str]) -> None:
    """Add (or replace) task ``name``; a `ConfigError` from ``build`` skips it, replacing an earlier one."""
    reg.origins[name] = origin
    try:
        reg.tasks[name] = build()
        reg.skipped.pop(name, None)
    except ConfigError as exc:  # one broken file must not break every command
        reg.skipped[name] = exc
        reg.tasks.pop(name, None)


def _add_category_tasks(reg: Registry, cat: CategoryDef) -> None:
    path = Path(cat.source)
    try:
        plan = category_tasks(cat, lambda base: _locate(base, path, reg.task_dirs))
    except ConfigError as exc:
        reg.skipped[task_name(cat.slug)] = exc
        reg.origins[task_name(cat.slug)] = (path, path.name)
        return
    for task in plan:
        detail = f"{path.name} + {task.base}" if task.base else path.name
        build = functools.partial(_category_task_spec, path, reg.task_dirs, task, cat)
        _add_task(reg, task.name, build, (path, detail))


def load_tasks(
    task_dirs: Iterable[Path],
    *,
    include_paths: Iterable[Path] = (),
    category_dirs: Sequence[tuple[str, Path]] | None = None,
) -> Registry:
    """A `Registry` holding only tasks and categories (`load_registry` without registry files or warnings).

    Categories come from ``category_dirs`` ((plugin name, folder) pairs, as the ``harness_category_dirs``
    hook gives them; default: each task folder's ``categories/``) and then from the category YAMLs among
    the task files of ``task_dirs`` and ``include_paths``; a later one replaces an earlier one of the
    same slug.  Their tasks come first; task files come after them (``include_paths`` last), so a task
    file replaces a category's task of the same name.
    """
    extra, shipped = [Path(p) for p in include_paths], [Path(p) for p in task_dirs]
    reg = Registry(task_dirs=list(dict.fromkeys([*extra, *shipped])))
    task_files: list[Path] = []
    cat_files: list[tuple[str, Path]] = []
    for folder in [*shipped, *extra]:
        for path in _task_files(folder):
            if _is_category_file(path):
                cat_files.append(("", path))
            else:
                task_files.append(path)
    folders = [("", d / "categories") for d in shipped] if category_dirs is None else list(category_dirs)
    found: dict[str, CategoryDef] = {}
    for plugin, path in [*category_files(folders), *cat_files]:
        try:
            cat = _read_category(path, plugin=plugin)
        except ConfigError as exc:
            reg.skipped[task_name(path.stem)] = exc
            reg.origins[task_name(path.stem)] = (path, path.name)
            continue
        found[cat.slug] = cat
    reg.categories = in_report_order(found)
    for cat in reg.categories.values():
        _add_category_tasks(reg, cat)
    for path in task_files:
        _add_task(reg, path.stem, functools.partial(_task_spec, path, reg.task_dirs), (path, ""))
    return reg


def load_registry(
    registry_files: Iterable[Path],
    task_dirs: Iterable[Path],
    families: Iterable[str],
    *,
    include_paths: Iterable[Path] = (),
    category_dirs: Sequence[tuple[str, Path]] | None = None,
) -> Registry:
    """Build a `Registry`: later registry files override earlier entries of the same name.

    Tasks come from ``task_dirs`` and then ``include_paths`` (extra folders, as
    ``--include-path DIR``), so a task in an include path replaces a shipped
    task of the same name; the statement categories of ``category_dirs`` (and
    those among the task files) make their tasks as `load_tasks` says.  Both
    kinds of task folder are searched, include paths first, for ``include:``
    bases.  Raises `ConfigError` for an include path that is not a folder, or a
    registry file that is missing or broken.  A task or category YAML that does
    not parse is skipped with a warning (logger ``harness``) and kept in
    `Registry.skipped`; its error is raised if that task is asked for.
    """
    extra = [Path(p) for p in include_paths]
    for folder in extra:
        if not folder.is_dir():
            raise ConfigError(
                f"Include path {str(folder)!r} is not a folder; --include-path takes a folder of task YAMLs"
            )
    reg = load_tasks(task_dirs, include_paths=extra, category_dirs=category_dirs)
    reg.families = set(families)
    for path in registry_files:
        if not Path(path).is_file():
            what = "is a directory" if Path(path).is_dir() else "does not exist"
            raise ConfigError(f"Registry file {str(path)!r} {what}; --registry takes a registry YAML file")
        data = _read_yaml(Path(path))
        entries = data.get("encoders") or {}
        if not isinstance(entries, Mapping):
            raise ConfigError(f"{path}: field 'encoders' must be a mapping of name -> entry")
        for name, entry in entries.items():
            spec = _encoder_spec(str(name), entry, Path(path))
            reg.encoders[spec.name] = spec
            aliases = entry.get("aliases") or ()
            for alias in [aliases] if isinstance(aliases, str) else aliases:  # qwen3-vl-8b -> ...-instruct
                reg.encoders[str(alias)] = dataclasses.replace(spec, name=str(alias))
        sets = data.get("pairs") or {}
        if not isinstance(sets, Mapping):
            raise ConfigError(f"{path}: field 'pairs' must be a mapping of name -> {{path, description}}")
        for name, entry in sets.items():
            reg.pairs[str(name)] = _pair_set_spec(str(name), entry, Path(path))
    for name, exc in reg.skipped.items():
        path = reg.origins[name][0]
        where = "" if str(path) in str(exc) else f" ({path})"
        log.warning("skipping task %r%s: %s", name, where, exc)
    return reg


def load_plugin_registry(pm: Any, registry_files: Sequence[str | Path] = (), *,
                         include_paths: Sequence[str | Path] = ()) -> Registry:
    """`load_registry` from what the loaded plugins give (registry files, task and category folders,
    encoder families), then the user's ``registry_files`` (``--registry``) and ``include_paths``."""

    files = [f for fs in pm.hook.harness_registry_files() for f in fs][::-1]  # built-ins (trylast) first
    dirs = [d for ds in pm.hook.harness_task_dirs() for d in ds]
    families = [f for fs in pm.hook.harness_encoder_families() for f in fs]
    return load_registry([*map(Path, files), *map(Path, registry_files)], dirs, families,
                         include_paths=[Path(p) for p in include_paths], category_dirs=plugin_category_dirs(pm))


def task_origins(pm: Any, include_paths: Sequence[str] = ()) -> dict[str, str]:
    """Task name -> where it came from ("plugin: folder", plus "(category file + group base)" for a
    category's task), with the registry's override order."""
    dirs, cats = hook_sources(pm, "harness_task_dirs"), plugin_category_dirs(pm)
    extra = [("--include-path", Path(p)) for p in include_paths if Path(p).is_dir()]
    reg = load_tasks([d for _, d in dirs], include_paths=[d for _, d in extra], category_dirs=cats)
    owner = {folder.resolve(): plugin for plugin, folder in [*dirs, *cats, *extra]}
    out: dict[str, str] = {}
    for name, (path, detail) in reg.origins.items():
        out[name] = f"{owner.get(path.parent.resolve(), '-')}: {path.parent}" + (f" ({detail})" if detail else "")
    return out
