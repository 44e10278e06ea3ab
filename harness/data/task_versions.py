"""Task versions: the ``version:`` field of task and category YAMLs, and the lock of the shipped ones.

A version names a task's data so a result can be cited ("ted-open-action v1") and compared with
another run of the same data.  Rules:

- ``version:`` is a string such as ``1``, ``1.0`` or ``2024-06`` (an integer in YAML is read as its
  string).  A float is refused (YAML reads ``1.10`` as ``1.1``), and so are ``true``, a date, a list,
  a mapping, an empty value and a leading ``v`` (the report writes ``v1`` itself): write ``"1.10"``.
- A task's version is its merged task YAML's ``version`` (the including file wins, as for every
  field).  A category's task in a group (``ted-open-action``: the category file + the base
  ``_ted-open.yaml``) takes the base's version, for the base holds the data; the category file's own
  ``version`` versions its definition, examples and ``select`` (what ``harness build-data`` writes
  statements from and which labels its tasks keep) and is recorded beside it as the task's
  ``category_version``.  The task a category file with ``data:`` makes takes that file's version as both.
- A task made from a bare data file, a folder or an ``hf:`` id has no version (``null`` in results).

Both are recorded per task in ``results.json`` (``provenance.tasks[...].tasks[...]``), next to the
data's sha256, and shown as "ted-open-action v1 (sha256 1a2b3c4d…)" (`task_label`).

The lock (``tasks/versions.lock.json``, rewritten by ``python tools/lock_task_versions.py``) holds, per
shipped task, its version, data and the sha256 of the data file's bytes; `lock_problems` says what
differs from the tasks as they are (``tests/test_task_versions.py`` fails on any), so shipped data
cannot change without its version changing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness._exceptions import ConfigError
from harness.data.versioning import parse_version, task_label

if TYPE_CHECKING:
    from harness.registry import Registry

__all__ = ["LOCK_NAME", "LockedTask", "compute_lock", "lock_problems", "parse_version", "read_lock", "relock_refusals",
           "task_label", "write_lock"]

LOCK_NAME = "versions.lock.json"
_TOOL = "python tools/lock_task_versions.py"


@dataclass(frozen=True)
class LockedTask:
    """One shipped task in the lock: its version, its data (as the YAML names it) and that file's sha256."""

    version: str | None
    data: str
    sha256: str | None  # None: data not shipped (TED-6K's $TED6K_PATH)
    version_file: str = ""  # the YAML that sets `version:`, relative to the task folder's parent (tasks/_ted-open.yaml)
    data_file: str = ""  # the data file, relative likewise ("tasks/data/open/ted_open.jsonl.gz")


def _rel(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)


def _version_file(reg: Registry, name: str) -> Path:
    """The YAML that gives task ``name`` its version: its file, or the first of its includes holding one
    (for a category's task in a group: the group base)."""
    from harness.data.task_yaml import locate as _locate
    from harness.data.task_yaml import read_yaml as _read_yaml

    path, detail = reg.origins[name]
    if " + " in detail:  # a category's task in a group: "action.yaml + _ted-open.yaml"
        found = _locate(detail.split(" + ", 1)[1], path, reg.task_dirs)
        path = found or path
    seen: set[Path] = set()
    while path not in seen:
        seen.add(path)
        data = _read_yaml(path)
        if "version" in data or "include" not in data:
            return path
        base = _locate(str(data["include"]), path, reg.task_dirs)
        if base is None:
            return path
        path = base
    return path


def compute_lock(task_dir: Path) -> dict[str, LockedTask]:
    """Every task the folder ``task_dir`` ships (its task YAMLs and its ``categories/``), by name, sorted."""
    from harness.data.loaders import file_sha256
    from harness.registry import load_tasks, resolve_path

    reg = load_tasks([task_dir])
    if reg.skipped:
        name, exc = sorted(reg.skipped.items())[0]
        raise ConfigError(f"task {name!r} does not load: {exc}")
    root = task_dir.parent
    shas: dict[str, str] = {}
    out: dict[str, LockedTask] = {}
    for name in sorted(reg.tasks):
        task = reg.tasks[name]
        try:
            path = Path(resolve_path(task.source))
        except ConfigError:  # $TED6K_PATH unset: data that is not shipped
            path = None
        sha = None
        if path is not None and path.is_file():
            key = str(path.resolve())
            if key not in shas:
                shas[key] = file_sha256(path)
            sha = shas[key]
        out[name] = LockedTask(version=task.version, data=task.source, sha256=sha,
                               version_file=_rel(_version_file(reg, name), root),
                               data_file=_rel(path, root) if sha is not None and path is not None else "")
    return out


def read_lock(path: Path) -> dict[str, LockedTask]:
    """The lock at ``path`` (empty when it does not exist)."""
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        tasks = data["tasks"]
        return {str(n): LockedTask(version=e["version"], data=str(e["data"]), sha256=e["sha256"])
                for n, e in tasks.items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ConfigError(f"{path}: not a task-version lock ({exc!r:.80}); rewrite it with {_TOOL} --force") from None


def write_lock(path: Path, tasks: Mapping[str, LockedTask]) -> None:
    """Write the lock: sorted, one entry per task (version, data, sha256)."""
    body = {"comment": f"Shipped tasks: version and sha256 of their data. Rewrite with {_TOOL}; "
                       "tests/test_task_versions.py checks it.",
            "tasks": {n: {"version": t.version, "data": t.data, "sha256": t.sha256} for n, t in sorted(tasks.items())}}
    path.write_text(json.dumps(body, indent=2, sort_keys=False) + "\n", encoding="utf-8")


def lock_problems(locked: Mapping[str, LockedTask], current: Mapping[str, LockedTask]) -> list[str]:
    """What differs between the lock and the tasks as they are, one line each (data files named once).

    The one a version bump fixes: data changed under the version that was locked.  The rest (a task
    without a version, a task added, removed or re-versioned since the lock) the tool fixes by re-locking.
    """
    out: list[str] = []
    changed: dict[tuple[str, str], list[str]] = {}
    for name, now in current.items():
        was = locked.get(name)
        if now.version is None:
            out.append(f"{now.version_file or name}: task {name!r} has no `version:`; add version: 1 there")
        elif was is None:
            out.append(f"task {name!r} (v{now.version}) is not in the lock: run `{_TOOL}`")
        elif was.version != now.version or was.data != now.data:
            out.append(f"task {name!r} is v{now.version} on {now.data} but the lock says v{was.version} on "
                       f"{was.data}: run `{_TOOL}`")
        elif was.sha256 != now.sha256:
            key = (now.data_file or now.data, now.version)
            changed.setdefault(key, [])
            if now.version_file not in changed[key]:
                changed[key].append(now.version_file)
    for (data, version), files in changed.items():
        where = " and ".join(f for f in files if f) or "the task YAML"
        out.append(f"{data}: data changed since version {version} was locked: bump `version:` in {where} "
                   f"and run `{_TOOL}`")
    gone = sorted(set(locked) - set(current))
    out += [f"task {n!r} is in the lock but no longer shipped: run `{_TOOL}`" for n in gone]
    return out


def relock_refusals(locked: Mapping[str, LockedTask], current: Mapping[str, LockedTask]) -> list[str]:
    """The changes a re-lock must not accept without ``--force``: data changed under an unchanged version."""
    return [p for p in lock_problems(locked, current) if "data changed since version" in p]
