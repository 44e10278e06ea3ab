"""Progress bars for long steps: rich bars in a terminal, plain timed lines otherwise.

`progress_bars(console)` yields a `ProgressFactory` (``(description, total) -> bar`` with
``bar.advance(n)``), the shape `harness.evaluation.runner.run`, the QA-style baseline and ``harness score`` take.
Public so that plugins (a baseline, a scorer) show progress the way ``harness run`` does.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

__all__ = ["PLAIN_PROGRESS_S", "PlainBar", "progress_bars"]

PLAIN_PROGRESS_S = 5.0  # seconds between progress lines when output is not a terminal


@contextmanager
def progress_bars(console: Console) -> Iterator[Any]:
    """Bars in a terminal; plain progress lines every few seconds otherwise (batch jobs, CI logs)."""
    if not console.is_terminal:
        yield functools.partial(PlainBar, console)
        return
    cols = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*cols, console=console, transient=False) as prog:
        class _Bar:
            def __init__(self, desc: str, total: int) -> None:
                self.id = prog.add_task(desc, total=total or None)

            def advance(self, n: int) -> None:
                prog.advance(self.id, n)
        yield _Bar


class PlainBar:
    """A progress line at most every ``PLAIN_PROGRESS_S`` seconds, and one when the total is reached."""

    def __init__(self, console: Console, desc: str, total: int) -> None:
        self.console, self.desc, self.total = console, desc, total
        self.done, self.t0 = 0, time.monotonic()
        self.last = self.t0

    def advance(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        finished = bool(self.total) and self.done >= self.total
        if now - self.last >= PLAIN_PROGRESS_S or finished:
            self.last = now
            of = f"/{self.total} ({100 * self.done / self.total:.0f}%)" if self.total else ""
            self.console.print(f"{self.desc}: {self.done}{of} {now - self.t0:.0f}s", markup=False, highlight=False)
