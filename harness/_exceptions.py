"""Errors a user can cause and fix.

The CLI prints any of these as one line and exits with status 2.  Every other
exception is a bug and keeps its traceback.

    HarnessError
    +-- ConfigError        bad option, unknown name, inconsistent registry entry
    +-- PluginError        a plugin could not be loaded or broke a hook contract
    +-- DataError          a bad record in a data file (names file, line, field)
    +-- EncoderError       a checkpoint failed to load or produced non-finite output
    +-- CacheError         the feature cache folder cannot be created, read or written
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = [
    "CacheError",
    "ConfigError",
    "DataError",
    "EncoderError",
    "HarnessError",
    "PluginError",
    "unknown_name",
]


class HarnessError(Exception):
    """Root of every error the user can act on."""


class ConfigError(HarnessError):
    """An option, a name or a registry entry is wrong."""


class PluginError(HarnessError):
    """A plugin failed to load or did not honour a hook."""


class EncoderError(HarnessError):
    """A model could not be loaded or its output is unusable."""


class CacheError(HarnessError):
    """The feature cache folder cannot be used (missing rights, read-only, disk full)."""


class DataError(HarnessError):
    """A bad record in a data file.  ``str()`` names file, line and field."""

    def __init__(self, path: str, line: int | None, field: str | None, problem: str) -> None:
        self.path, self.line, self.field, self.problem = path, line, field, problem
        where = path if line is None else f"{path}:{line}"
        what = f" field {field!r}" if field else ""
        super().__init__(f"{where}:{what} {problem}".replace(": ", ": ", 1).strip())


def unknown_name(kind: str, name: str, available: Iterable[str], hint: str = "") -> ConfigError:
    """Build the 'Unknown X. Did you mean ...? Available: ...' error."""
    names = sorted(set(available))
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
    parts = [f"Unknown {kind} {name!r}."]
    if close:
        parts.append(f"Did you mean: {', '.join(close)}?")
    parts.append(f"Available: {', '.join(names) if names else '(none)'}")
    if hint:
        parts.append(hint)
    return ConfigError(" ".join(parts))
