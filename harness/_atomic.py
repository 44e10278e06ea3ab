"""Atomic output files: every file a command writes goes through here (temp name, then rename).

A private core module so that the writers in every layer (results, report, correlate, pairs,
build-data, the CLI) share one mechanism without importing the CLI.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from harness._exceptions import ConfigError

__all__ = ["OutputError", "atomic_path", "atomic_write", "umask"]


class OutputError(ConfigError):
    """An output place that failed while being written; ``reason`` is the operating system's word."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A unique temporary name beside ``path`` to write; renamed over ``path`` when the block ends
    normally, removed when it fails (disk full, ``ulimit -f``, an exception, Ctrl-C).  An `OSError`
    becomes one `OutputError` naming ``path``."""
    final = Path(path)
    fd, name = tempfile.mkstemp(dir=final.parent, prefix=f".{final.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~umask())  # mkstemp makes it private; outputs are for reading
        os.replace(tmp, final)
    except OSError as exc:  # disk full, `ulimit -f`, the folder gone: one line, and nothing half-written
        raise OutputError(f"cannot write {str(final)!r} ({exc.strerror or exc}); nothing was written there",
                          str(exc.strerror or exc)) from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def atomic_write(path: str | Path, data: str | bytes) -> Path:
    """Write ``data`` (text as UTF-8, or bytes) to ``path`` through `atomic_path`; return ``path``."""
    with atomic_path(path) as tmp:
        if isinstance(data, bytes):
            tmp.write_bytes(data)
        else:
            tmp.write_text(data, encoding="utf-8")
    return Path(path)
