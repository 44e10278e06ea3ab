"""The plugin manager: built-ins and third-party plugins through one entry-point group.

Works like pytest: ``-p module`` loads a module as a plugin, ``-p no:NAME``
blocks the entry point (or module) called NAME, and
``HARNESS_DISABLE_PLUGIN_AUTOLOAD=1`` skips entry points altogether (the
built-ins too -- then load them with ``-p``).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
from collections.abc import Sequence

import pluggy

from harness import hookspecs
from harness._exceptions import PluginError

__all__ = ["ENTRY_POINT_GROUP", "get_plugin_manager", "plugin_listing"]

ENTRY_POINT_GROUP = "harness.plugins"


def get_plugin_manager(plugin_args: Sequence[str] = ()) -> pluggy.PluginManager:
    """Return a manager with hookspecs added and plugins loaded per ``-p`` arguments."""
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    blocked = [a[3:] for a in plugin_args if a.startswith("no:")]
    for name in blocked:
        pm.set_blocked(name)
    if not os.environ.get("HARNESS_DISABLE_PLUGIN_AUTOLOAD"):
        _load_entry_points(pm)
    for arg in plugin_args:
        if not arg.startswith("no:"):
            _import_plugin(pm, arg)
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise PluginError(str(exc)) from exc
    return pm


def _load_entry_points(pm: pluggy.PluginManager) -> None:
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if pm.is_blocked(ep.name) or pm.get_plugin(ep.name) is not None:
            continue
        try:
            plugin = ep.load()
        except Exception as exc:  # a broken third-party plugin names itself
            raise PluginError(f"Plugin {ep.name!r} ({ep.value}) failed to import: {exc}") from exc
        if pm.is_blocked(ep.value):
            continue
        _register(pm, plugin, ep.name)


def _import_plugin(pm: pluggy.PluginManager, modname: str) -> None:
    if pm.is_blocked(modname) or pm.get_plugin(modname) is not None:
        return
    try:
        module = importlib.import_module(modname)
    except ImportError as exc:
        raise PluginError(f"Plugin module {modname!r} given with -p cannot be imported: {exc}") from exc
    if pm.is_registered(module):  # e.g. -p harness_plugins.encoders.hf when its entry point already loaded it
        return
    _register(pm, module, modname)


def _register(pm: pluggy.PluginManager, plugin: object, name: str) -> None:
    try:
        pm.register(plugin, name=name)
    except pluggy.PluginValidationError as exc:
        raise PluginError(f"Plugin {name!r}: {exc}") from exc


def plugin_listing(pm: pluggy.PluginManager) -> list[tuple[str, str]]:
    """(name, module or object) for every registered plugin, sorted by name."""
    rows = []
    for name, plugin in pm.list_name_plugin():
        if plugin is None:
            continue
        rows.append((name, getattr(plugin, "__name__", repr(plugin))))
    return sorted(rows)
