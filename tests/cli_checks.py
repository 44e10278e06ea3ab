"""What the reliability tests share: the fake-encoder run flags and the one-line-refusal check."""

from __future__ import annotations

import errno
import os
from typing import Any

import pytest

__all__ = ["FAKE", "QUICK", "full_disk_after", "refused"]

FAKE = ["-p", "harness.testing"]
QUICK = ["--encoders", "fake", "--aggregator", "mean-pool", "--bootstrap", "0", "--null-resamples", "0",
         "--extract", "last"]


def refused(capsys: pytest.CaptureFixture[str], rc: int, *needles: str) -> str:
    """Exit 2, one ``error:`` line holding every needle, no traceback."""
    err = capsys.readouterr().err
    assert rc == 2, f"exit {rc}, stderr: {err}"
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1 and err.startswith("error: "), err
    for needle in needles:
        assert needle in err, f"{needle!r} not in: {err}"
    return err


def full_disk_after(monkeypatch: pytest.MonkeyPatch, n_ok: int) -> list[str]:
    """A disk that fills up: feature-shard temp files after the first ``n_ok`` fail with ENOSPC after a
    partial write (each once: an fd number is reused after close).  Returns the shard temp files opened."""
    real_open, real_write = os.open, os.write
    opened: list[str] = []
    full: set[int] = set()

    def open_(path: Any, flags: int, *args: Any, **kw: Any) -> int:
        fd = real_open(path, flags, *args, **kw)
        if ".tedf." in str(path) and str(path).endswith(".tmp"):
            opened.append(str(path))
            if len(opened) > n_ok:
                full.add(fd)
        return fd

    def write(fd: int, data: Any) -> int:
        if fd in full:
            full.discard(fd)
            real_write(fd, bytes(data)[:100])  # a partial temp file
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)

    monkeypatch.setattr(os, "open", open_)
    monkeypatch.setattr(os, "write", write)
    return opened
