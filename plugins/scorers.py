"""Built-in downstream scorers for ``harness correlate``: ``recorded`` reads numbers someone measured.

A scorer that runs a generator would live in its own plugin and answer ``harness_make_scorer``
for its name, exactly like this one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from harness import ConfigError, DownstreamMetric, ScoredRow, hookimpl, resolve_path
from harness.api import read_downstream_file

NAMES = ("recorded",)


class RecordedScorer:
    """Downstream results read from a CSV/JSON/JSONL file (`harness.downstream.rows.read_downstream_file`)."""

    name = "recorded"

    def __init__(self, path: str) -> None:
        self.path = path
        self._records = read_downstream_file(path)  # bad records fail now, naming file, line and field

    def rows(self) -> Sequence[ScoredRow]:
        return list({r.key: r for r, _ in self._records}.values())

    def score(self, row: ScoredRow) -> list[DownstreamMetric]:
        return [m for r, m in self._records if r.key == row.key]


@hookimpl(trylast=True)
def harness_scorer_names() -> list[str]:
    return list(NAMES)


@hookimpl(trylast=True)
def harness_make_scorer(name: str, options: Mapping[str, Any]) -> RecordedScorer | None:
    """``recorded`` takes ``{"path": FILE}`` (or ``recorded:FILE``, as ``{"arg": FILE}``)."""
    if name != "recorded":
        return None
    path = options.get("path") or options.get("arg")
    if not path:
        raise ConfigError("scorer 'recorded' needs a file of downstream scores: --scorer recorded:FILE.csv "
                          "(or -O path=FILE.csv)")
    return RecordedScorer(resolve_path(str(path)))
