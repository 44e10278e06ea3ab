"""Rewrite tasks/versions.lock.json: each shipped task's version and the sha256 of its data file.

    python tools/lock_task_versions.py           # re-lock (refuses data changed under an unchanged version)
    python tools/lock_task_versions.py --check   # only say what differs from the lock; exit 1 if anything does
    python tools/lock_task_versions.py --force   # re-lock even so (e.g. a data file re-compressed, same rows)

Run it after changing a shipped task: bump `version:` in the YAML that holds the data (tasks/_<group>.yaml)
when its data changes, then re-lock.  tests/test_task_versions.py fails until the lock matches.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness.data.task_versions import LOCK_NAME, compute_lock, lock_problems, read_lock, relock_refusals, write_lock

TASKS = Path(__file__).resolve().parent.parent / "tasks"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--tasks-dir", type=Path, default=TASKS, help="the shipped task folder (default: %(default)s)")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="write nothing; exit 1 if the lock is out of date")
    mode.add_argument("--force", action="store_true",
                      help="re-lock data that changed under an unchanged version (its results are then not comparable)")
    args = ap.parse_args(argv)
    lock_path = args.tasks_dir / LOCK_NAME
    locked, current = read_lock(lock_path), compute_lock(args.tasks_dir)
    problems = lock_problems(locked, current)
    if args.check:
        for line in problems:
            print(line, file=sys.stderr)
        print(f"{lock_path}: {'out of date' if problems else 'up to date'} ({len(current)} tasks)")
        return 1 if problems else 0
    unversioned = [p for p in problems if "has no `version:`" in p]
    refused = [] if args.force else relock_refusals(locked, current)
    for line in unversioned + refused:
        print(f"error: {line}", file=sys.stderr)
    if refused:
        print("error: not re-locked: bump those versions (or pass --force if the data's content did not change)",
              file=sys.stderr)
    if unversioned or refused:
        return 2
    write_lock(lock_path, current)
    n_data = len({t.sha256 for t in current.values() if t.sha256})
    print(f"wrote {lock_path}: {len(current)} tasks, {n_data} data files "
          f"({len(problems)} change(s) since the last lock)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
