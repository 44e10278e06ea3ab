"""registry.yaml and tasks/*.yaml -> frozen `EncoderSpec` / `TaskSpec`, validated once.

No raw dict goes past this module.  Encoders not in the registry can be named
ad hoc as ``FAMILY:PATH_OR_HUB_ID``.  A task can also be named by a task YAML
file anywhere, a folder of task YAMLs, a data file or dataset folder, or
``hf:ORG/NAME``.

A task YAML's ``include:`` names a base file, looked up next to the including
file first and then by name in the task folders (``include_paths`` first, then
the shipped ones), so ``include: _ted6k.yaml`` works from anywhere.  A relative
``data.path`` is read relative to the YAML file that sets it.  Reading one task
YAML is `harness.data.task_yaml`; this module finds them and collects the specs.

A statement category's YAML (`harness.data.category_defs`: from the category folders,
or among the task YAMLs, marked by ``definition:``) makes its tasks itself: for
each of its ``groups`` G with a base ``_G.yaml``, the task ``G-<slug>`` that
includes the base and selects the category (``ted6k-action``); with ``data:``,
a task ``<slug>`` of its own.  No task file per category.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness._exceptions import ConfigError, unknown_name
from harness.data.category_defs import (
    CategoryDef,
    category_dirs as plugin_category_dirs,
    category_files,
    category_tasks,
    hook_sources,
    in_report_order,
    task_name,
)
from harness.data.task_yaml import (
    DATASET_MARKERS,
    TASK_SUFFIXES,
    category_task_spec,
    is_category_file,
    locate,
    read_category_checked,
    read_yaml,
    resolve_path,
    task_files,
    task_spec,
)
from harness.types import EncoderOptions, EncoderSpec, PairSetSpec, TaskSpec

__all__ = ["Registry", "load_plugin_registry", "load_registry", "load_tasks", "resolve_path", "task_origins"]

log = logging.getLogger("harness")
_ENCODER_KEYS = {"family", "checkpoint", "revision", "description", "options", "paper", "aliases"}
_OPTION_KEYS = {f.name for f in dataclasses.fields(EncoderOptions)}
_PAIRS_KEYS = {"path", "description", "default_max", "source", "licence", "citation"}


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
        if path.is_file() and path.suffix in TASK_SUFFIXES:
            return self._file_specs(path)
        if path.is_dir() and not any((path / m).exists() for m in DATASET_MARKERS):
            yamls = task_files(path)
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
        if not is_category_file(path):
            return [task_spec(path, self.task_dirs)]
        cat = read_category_checked(path)
        plan = category_tasks(cat, lambda base: locate(base, path, self.task_dirs))
        if not plan:
            raise ConfigError(f"{path}: category {cat.slug!r} makes no task: give it data: {{path: FILE}} "
                              "or groups: [GROUP] whose base _GROUP.yaml holds the data")
        return [category_task_spec(path, self.task_dirs, t, cat) for t in plan]


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
        plan = category_tasks(cat, lambda base: locate(base, path, reg.task_dirs))
    except ConfigError as exc:
        reg.skipped[task_name(cat.slug)] = exc
        reg.origins[task_name(cat.slug)] = (path, path.name)
        return
    for task in plan:
        detail = f"{path.name} + {task.base}" if task.base else path.name
        build = functools.partial(category_task_spec, path, reg.task_dirs, task, cat)
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
    task_paths: list[Path] = []
    cat_files: list[tuple[str, Path]] = []
    for folder in [*shipped, *extra]:
        for path in task_files(folder):
            if is_category_file(path):
                cat_files.append(("", path))
            else:
                task_paths.append(path)
    folders = [("", d / "categories") for d in shipped] if category_dirs is None else list(category_dirs)
    found: dict[str, CategoryDef] = {}
    for plugin, path in [*category_files(folders), *cat_files]:
        try:
            cat = read_category_checked(path, plugin=plugin)
        except ConfigError as exc:
            reg.skipped[task_name(path.stem)] = exc
            reg.origins[task_name(path.stem)] = (path, path.name)
            continue
        found[cat.slug] = cat
    reg.categories = in_report_order(found)
    for cat in reg.categories.values():
        _add_category_tasks(reg, cat)
    for path in task_paths:
        _add_task(reg, path.stem, functools.partial(task_spec, path, reg.task_dirs), (path, ""))
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
        data = read_yaml(Path(path))
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
