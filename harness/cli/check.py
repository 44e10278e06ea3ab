"""``harness check PLUGIN_OR_PATH``: the conformance checks of `harness.testing`, run on one plugin.

A plugin author runs it before publishing (as MTEB's mock run): it loads the plugin, finds the hooks
it implements and runs the check of each kind it contributes --

- encoder family (``harness_load_encoder``): `harness.testing.check_encoder` on every encoder its
  registry file names (``--encoder FAMILY:CHECKPOINT`` adds one);
- statement categories (``harness_category_dirs``): `harness.testing.check_category` on every YAML;
- downstream scorer (``harness_make_scorer``): `harness.testing.check_scorer` (``-O KEY=VALUE``
  gives it options);
- aggregator (``harness_make_aggregator``): `harness.testing.check_aggregator`, on one layer and on
  a layer stack.

``PLUGIN_OR_PATH`` is a source folder (its ``pyproject.toml`` entry points in ``harness.plugins``,
imported from the folder, not from an installed copy), a package folder or ``.py`` file, a category
YAML file, an installed plugin's entry-point or distribution name, or a module name as with ``-p``.
It prints one line per check passed and exits 0, or stops at the first failure with one line naming
it and exits 2.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import importlib.metadata
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from harness import hookspecs
from harness._exceptions import ConfigError, HarnessError, PluginError
from harness.plugins import ENTRY_POINT_GROUP

__all__ = ["add_parser", "run_command"]

_HOOKS = sorted(n for n in dir(hookspecs) if n.startswith("harness_"))
_CHECKED = {  # hooks whose kind has a conformance check here
    "harness_encoder_families", "harness_load_encoder", "harness_registry_files", "harness_category_dirs",
    "harness_scorer_names", "harness_make_scorer", "harness_aggregator_names", "harness_make_aggregator",
    "harness_aggregator_trains",
}


class CheckFailed(Exception):
    """A check did not pass; the message names the problem in one line."""


def add_parser(sub: Any) -> None:
    p = sub.add_parser("check", help="run the conformance checks on a plugin (a source folder, an installed plugin "
                                     "or a module) before publishing it")
    p.add_argument("target", metavar="PLUGIN_OR_PATH",
                   help="a plugin's source folder (with pyproject.toml), a package folder or .py file, a category "
                        "YAML, an installed plugin's entry-point or distribution name, or a module name")
    p.add_argument("--encoder", action="append", default=[], metavar="FAMILY:CHECKPOINT",
                   help="also check this encoder (needed for a family the plugin's registry names no encoder of)")
    p.add_argument("--option", "-O", action="append", default=[], metavar="KEY=VALUE",
                   help="an option for the plugin's scorers, as harness score --option")
    p.add_argument("--row", metavar="ENCODER/EXTRACTOR",
                   help="the row a scorer scores (default: a synthetic check-encoder/last with TED 61.5%%); a scorer "
                        "that loads the row's encoder needs a real one, e.g. -p harness.testing ... --row fake/last")


@dataclass
class _Plugin:
    name: str
    obj: Any
    how: str  # where it was found, for the first line


def run_command(args: argparse.Namespace, pm: Any, console: Console) -> int:
    """Run ``harness check``; returns the exit status (2: a check failed, one line on stderr)."""
    def say(text: str) -> None:
        console.print(text, markup=False, highlight=False, soft_wrap=True)

    if not args.target.strip():
        raise ConfigError("harness check needs a plugin: a project folder, an installed distribution or entry "
                          "point, a module name, or a category YAML (e.g. harness check ./examples/hash_encoder)")
    try:
        target = Path(args.target)
        if target.is_file() and target.suffix in (".yaml", ".yml"):
            _check_category_file(target, pm, say)
            return 0
        plugins = _load(args.target, pm)
        for plugin in plugins:
            say(f"checking plugin {plugin.name} ({plugin.how})")
            _check_plugin(plugin, pm, args, say)
    except (CheckFailed, AssertionError, HarnessError) as exc:
        _fail(f"{args.target}: {exc}")
        return 2
    except Exception as exc:  # a plugin that crashes fails the check; say how, in one line
        if args.verbose:
            import traceback

            traceback.print_exc()
        _fail(f"{args.target}: the plugin raised {type(exc).__name__}: {exc}")
        return 2
    return 0


def _fail(message: str) -> None:
    Console(stderr=True).print(f"error: {' '.join(message.split())}", markup=False, highlight=False, soft_wrap=True)


# ------------------------------------------------------------------------------------------ loading


def _load(target: str, pm: Any) -> list[_Plugin]:
    """The plugin object(s) ``target`` names, registered in ``pm`` (replacing an installed copy of a source folder)."""
    path = Path(target)
    if path.exists():
        return _load_path(path.resolve(), pm)
    eps = {ep.name: ep for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}
    if target in eps:
        return [_installed(eps[target], pm, f"entry point {target!r}")]
    try:
        dist = importlib.metadata.distribution(target)
    except importlib.metadata.PackageNotFoundError:
        dist = None
    if dist is not None:
        mine = [ep for ep in dist.entry_points if ep.group == ENTRY_POINT_GROUP]
        if not mine:
            raise CheckFailed(f"distribution {dist.metadata['Name']} declares no entry point in the "
                              f"{ENTRY_POINT_GROUP!r} group, so the harness never loads it; add "
                              f'[project.entry-points."{ENTRY_POINT_GROUP}"] NAME = "MODULE" to its pyproject.toml')
        return [_installed(ep, pm, f"distribution {dist.metadata['Name']}, entry point {ep.name!r}") for ep in mine]
    try:
        module = importlib.import_module(target)
    except ImportError as exc:
        close = difflib.get_close_matches(target, list(eps), n=3, cutoff=0.5)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise CheckFailed(f"not a path, an installed plugin's entry point or distribution, or an importable module "
                          f"({exc}).{hint} Installed plugins: {', '.join(sorted(eps)) or '(none)'}") from None
    return [_register(pm, module, target, f"module {target}")]


def _installed(ep: importlib.metadata.EntryPoint, pm: Any, how: str) -> _Plugin:
    plugin = pm.get_plugin(ep.name)
    if plugin is None:  # blocked, or HARNESS_DISABLE_PLUGIN_AUTOLOAD: load it for the check
        try:
            plugin = ep.load()
        except Exception as exc:
            raise PluginError(f"entry point {ep.name!r} ({ep.value}) failed to import: {exc}") from exc
        return _register(pm, plugin, ep.name, how)
    _check_hook_names(plugin, ep.name)
    return _Plugin(ep.name, plugin, how)


def _register(pm: Any, plugin: Any, name: str, how: str) -> _Plugin:
    _check_hook_names(plugin, name)
    if not pm.is_registered(plugin):
        if pm.get_plugin(name) is not None:
            pm.unregister(name=name)
        try:
            pm.register(plugin, name=name)
        except Exception as exc:  # pluggy.PluginValidationError: a hook's arguments do not match its spec
            raise CheckFailed(f"plugin {name!r} does not register: {exc}") from None
    return _Plugin(name, plugin, how)


def _load_path(path: Path, pm: Any) -> list[_Plugin]:
    if path.is_file() and path.suffix == ".py":
        return [_register(pm, _import_from(path.parent, path.stem, pm), path.stem, f"file {path}")]
    if not path.is_dir():
        raise CheckFailed("is neither a plugin folder, a .py file nor a category YAML")
    project = path / "pyproject.toml"
    if not project.is_file():
        if (path / "__init__.py").is_file():
            return [_register(pm, _import_from(path.parent, path.name, pm), path.name, f"package {path}")]
        raise CheckFailed(f"{path} holds neither a pyproject.toml nor an __init__.py; give the plugin's project folder")
    if sys.version_info < (3, 11):
        raise CheckFailed("reading pyproject.toml needs Python 3.11 (tomllib); check the installed plugin by its name")
    import tomllib

    try:
        data = tomllib.loads(project.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise CheckFailed(f"{project}: cannot be read ({exc})") from None
    eps = (data.get("project") or {}).get("entry-points", {}).get(ENTRY_POINT_GROUP) or {}
    if not isinstance(eps, dict) or not eps:
        raise CheckFailed(f"{project}: declares no entry point in the {ENTRY_POINT_GROUP!r} group, so the harness "
                          f'would never load it; add [project.entry-points."{ENTRY_POINT_GROUP}"] NAME = "MODULE"')
    out = []
    for ep_name, value in eps.items():
        module_name, _, attr = str(value).partition(":")
        top = module_name.split(".")[0]
        roots = [r for r in (path, path / "src") if (r / top).is_dir() or (r / f"{top}.py").is_file()]
        if not roots:
            raise CheckFailed(f"{project}: entry point {ep_name} = {value!r}, but module {top!r} is not in {path} "
                              f"or {path / 'src'}")
        module = _import_from(roots[0], module_name, pm)
        plugin = module
        for part in filter(None, attr.split(".")):
            if not hasattr(plugin, part):
                raise CheckFailed(f"{project}: entry point {ep_name} = {value!r}, but {module_name} has no {part!r}")
            plugin = getattr(plugin, part)
        out.append(_register(pm, plugin, ep_name, f"{path}, entry point {ep_name!r}"))
    return out


def _import_from(root: Path, module_name: str, pm: Any) -> Any:
    """Import ``module_name`` from ``root``, not from an installed copy: that copy is unregistered from ``pm``."""
    top = module_name.split(".")[0]
    if top == "harness":
        raise CheckFailed("the harness itself is not checked from a path; name its plugins by entry point instead "
                          "(harness list plugins)")
    for name, plugin in list(pm.list_name_plugin()):
        owner = getattr(plugin, "__name__", None) or getattr(plugin, "__module__", None) or ""
        if plugin is not None and (owner == top or owner.startswith(top + ".")):
            pm.unregister(name=name)
    for loaded in [m for m in sys.modules if m == top or m.startswith(top + ".")]:
        del sys.modules[loaded]
    sys.path.insert(0, str(root))
    try:
        return importlib.import_module(module_name)
    except Exception as exc:
        raise CheckFailed(f"module {module_name} (from {root}) does not import: {type(exc).__name__}: {exc}") from None


def _hooks(plugin: Any) -> list[str]:
    return sorted(n for n in dir(plugin) if n.startswith("harness_") and callable(getattr(plugin, n, None)))


def _check_hook_names(plugin: Any, name: str) -> None:
    """Every ``harness_*`` function is a known hook and marked ``@harness.hookimpl``."""
    for hook in _hooks(plugin):
        if hook not in _HOOKS:
            close = difflib.get_close_matches(hook, _HOOKS, n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]}?)" if close else " (harness/hookspecs.py lists the hooks)"
            raise CheckFailed(f"plugin {name!r}: {hook} is not a harness hook{hint}")
        if getattr(getattr(plugin, hook), f"{hookspecs.PROJECT}_impl", None) is None:
            raise CheckFailed(f"plugin {name!r}: {hook} is not marked @harness.hookimpl, so the harness never calls it")


# ------------------------------------------------------------------------------------------- checks


def _check_plugin(plugin: _Plugin, pm: Any, args: argparse.Namespace, say: Callable[[str], None]) -> None:
    hooks = _hooks(plugin.obj)
    if not hooks:
        raise CheckFailed(f"plugin {plugin.name!r} implements no harness hook (functions named harness_* and marked "
                          "@harness.hookimpl; harness/hookspecs.py lists them)")
    say(f"ok   hooks: {', '.join(hooks)}")
    hook = {h: getattr(plugin.obj, h) for h in hooks}
    if "harness_load_encoder" in hook or "harness_encoder_families" in hook:
        _check_encoders(hook, args.encoder, say)
    if "harness_category_dirs" in hook:
        _check_categories(hook["harness_category_dirs"], pm, say)
    if "harness_make_scorer" in hook or "harness_scorer_names" in hook:
        _check_scorers(hook, args.option, args.row, pm, say)
    if "harness_make_aggregator" in hook or "harness_aggregator_names" in hook:
        _check_aggregators(hook, say)
    rest = [h for h in hooks if h not in _CHECKED]
    if rest:
        say(f"--   not checked (no conformance check for these hooks yet): {', '.join(rest)}")


def _pair(hook: dict[str, Any], names: str, make: str) -> tuple[Any, Any]:
    if names not in hook or make not in hook:
        have, missing = (names, make) if names in hook else (make, names)
        raise CheckFailed(f"implements {have} but not {missing}; a plugin of this kind needs both")
    return hook[names], hook[make]


def _names(value: Any, hook: str) -> list[str]:
    if not isinstance(value, (list, tuple)) or not value or not all(isinstance(n, str) and n for n in value):
        raise CheckFailed(f"{hook}() returned {value!r:.80}; expected a non-empty list of names")
    return list(value)


def _check_encoders(hook: dict[str, Any], extra: Sequence[str], say: Callable[[str], None]) -> None:
    from harness.registry import load_registry
    from harness.testing import NOT_YOURS, check_encoder
    from harness.types import EncoderSpec

    families_hook, load = _pair(hook, "harness_encoder_families", "harness_load_encoder")
    families = _names(families_hook(), "harness_encoder_families")
    other = load(spec=EncoderSpec(name=NOT_YOURS, family=NOT_YOURS, checkpoint="x"))
    if other is not None:
        raise CheckFailed(f"harness_load_encoder built a {type(other).__name__} for family {NOT_YOURS!r}, which is "
                          "not its own; return None for families that are not yours")
    files = [Path(f) for f in (hook["harness_registry_files"]() if "harness_registry_files" in hook else [])]
    specs = [s for s in load_registry(files, [], families).encoders.values() if s.family in families]
    for item in extra:
        family, sep, ckpt = item.partition(":")
        if not sep or not ckpt:
            raise ConfigError(f"--encoder {item!r}: expected FAMILY:CHECKPOINT")
        specs.append(EncoderSpec(name=item, family=family, checkpoint=ckpt))
    for family in families:
        if not any(s.family == family for s in specs):
            raise CheckFailed(f"encoder family {family!r}: nothing to check it on; name an encoder of it in the "
                              f"plugin's registry file (harness_registry_files) or give --encoder {family}:CHECKPOINT")
    for spec in specs:
        check_encoder(load, spec)
        enc = load(spec=spec)
        say(f"ok   encoder {spec.name} (family {spec.family}, checkpoint {spec.checkpoint}): {enc.info.num_layers} "
            f"layers x width {enc.info.width}; hidden states, masks, up_to_layer, max_length, template, dtype")


def _check_categories(dirs_hook: Any, pm: Any, say: Callable[[str], None]) -> None:
    from harness.data.category_defs import category_files

    folders = [Path(d) for d in dirs_hook()]
    files = category_files([("", d) for d in folders])
    if not files:
        where = ", ".join(str(d) for d in folders) or "(no folder)"
        raise CheckFailed(f"harness_category_dirs() returns {where}, which holds no category YAML (*.yaml); "
                          "did the YAML files ship with the package (package data)?")
    for _, path in files:
        _check_category_file(path, pm, say)


def _check_category_file(path: Path, pm: Any, say: Callable[[str], None]) -> None:
    from harness.testing import check_category

    found = check_category(path, pm=pm)
    tasks = [f"{name} ({n} instances)" for name, n in found.tasks.items()]
    tasks += [f"{name} (not loaded: {why.split(': export')[0]})" for name, why in found.not_loaded.items()]
    say(f"ok   category {found.slug} ({path}): tasks {', '.join(tasks)}")


def _check_scorers(hook: dict[str, Any], option_args: Sequence[str], row_arg: str | None, pm: Any,
                   say: Callable[[str], None]) -> None:
    from harness.cli.score import parse_options
    from harness.testing import CHECK_ROW, check_scorer
    from harness.types import ScoredRow

    names_hook, make = _pair(hook, "harness_scorer_names", "harness_make_scorer")
    options = parse_options(option_args)
    row = CHECK_ROW
    if row_arg is not None:
        enc, sep, ext = row_arg.partition("/")
        if not sep or not enc or not ext:
            raise ConfigError(f"--row {row_arg!r}: expected ENCODER/EXTRACTOR (e.g. fake/last)")
        row = ScoredRow(encoder=enc, extractor=ext, ted=CHECK_ROW.ted)
    for name in _names(names_hook(), "harness_scorer_names"):
        try:
            metrics = check_scorer(make, name, options, row=row, pm=pm)
        except AssertionError as exc:
            hint = "; give its options with -O KEY=VALUE" if "building it raised" in str(exc) else ""
            raise CheckFailed(f"{exc}{hint}") from None
        shown = "; ".join(f"{m.benchmark} {m.metric} = {m.value:g}" for m in metrics[:3])
        say(f"ok   scorer {name}: builds, scores a row: {shown}")


def _check_aggregators(hook: dict[str, Any], say: Callable[[str], None]) -> None:
    from harness.options import AggregatorOptions
    from harness.testing import CHECK_AGGREGATOR_OPTIONS, check_aggregator

    names_hook, make = _pair(hook, "harness_aggregator_names", "harness_make_aggregator")
    trains_hook = hook.get("harness_aggregator_trains")
    for name in _names(names_hook(), "harness_aggregator_names"):
        trains = None if trains_hook is None else trains_hook(name=name)
        if trains is None:
            agg = make(name=name, width=16, n_layers_in=1, options=AggregatorOptions())
            if agg is not None and getattr(agg, "trainable", False):
                raise CheckFailed(f"aggregator {name!r} is trainable, but harness_aggregator_trains({name!r}) does "
                                  "not say so (True), so a run would not load caption pairs for it")
        dim = check_aggregator(make, name, trains=trains)
        try:
            check_aggregator(make, name, trains=trains, n_layers_in=3, options=CHECK_AGGREGATOR_OPTIONS)
            stacks = "and on a 3-layer stack (learned extractor)"
        except HarnessError as exc:  # it may refuse layer stacks, with a clear error
            stacks = f"refuses layer stacks: {exc}"
        kind = "trained a step, saved and reloaded" if trains else "untrained"
        say(f"ok   aggregator {name}: builds, embeds to [N, {dim}] ({kind}); on one layer {stacks}")
