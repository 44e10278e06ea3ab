"""A task's or category's ``version:`` value, and how a reader cites a task ("ted-open-action v1 (sha256 …)").

A leaf module (the registry and the category reader import it; the lock, `harness.data.task_versions`,
imports the registry)."""

from __future__ import annotations

import datetime
import re
from pathlib import Path
from typing import Any

from harness._exceptions import ConfigError

__all__ = ["parse_version", "task_label"]

_VERSION = re.compile(r"[0-9A-Za-z][0-9A-Za-z._+-]*")


def parse_version(value: Any, path: str | Path, *, field: str = "version") -> str:
    """The version string of a YAML ``version:`` value; a one-line `ConfigError` naming ``path`` and the field."""
    where = f"{path}: field {field!r}"
    if isinstance(value, bool) or isinstance(value, float) or isinstance(value, (datetime.date, datetime.datetime)):
        raise ConfigError(f"{where} must be a version such as 1 or \"1.0\", got {value!r}; YAML reads this unquoted "
                          f"value as a {type(value).__name__}: quote it (version: \"{value}\")")
    if isinstance(value, int):
        if value < 0:
            raise ConfigError(f"{where} must be a version such as 1 or \"1.0\", got {value!r}")
        return str(value)
    if not isinstance(value, str):
        got = "nothing" if value is None else f"a {type(value).__name__} {value!r:.60}"
        raise ConfigError(f"{where} must be a version such as 1 or \"1.0\" (a string or an integer), got {got}")
    text = value.strip()
    if re.fullmatch(r"[vV]\d.*", text):
        raise ConfigError(f"{where} is {value!r}: write {text[1:]!r} (the report adds the 'v' itself)")
    if not _VERSION.fullmatch(text):
        raise ConfigError(f"{where} must be a version such as 1 or \"1.0\" (letters, digits and . _ + -), "
                          f"got {value!r:.60}")
    return text


def task_label(name: str, version: str | None, sha256: str | None) -> str:
    """"ted-open-action v1 (sha256 1a2b3c4d…)": a task as a reader cites it (either part left out when absent)."""
    label = name if version is None else f"{name} v{version}"
    return label if not sha256 else f"{label} (sha256 {sha256[:8]}…)"
