"""What the reliability tests share: the fake-encoder run flags and the one-line-refusal check."""

from __future__ import annotations

import pytest

__all__ = ["FAKE", "QUICK", "refused"]

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
