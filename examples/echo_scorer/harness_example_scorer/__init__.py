"""Example ted-harness plugin: the downstream scorer ``ted-echo``.

A real scorer trains or queries a generator built on a row (see the built-in ``toy-t2i``); this one
scores a row by a fixed rule -- its TED accuracy times ``scale`` -- so the wiring of ``harness score``
and ``harness correlate`` can be tried in seconds (the correlation it gives is exactly 1).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from harness import ConfigError, DownstreamMetric, ScoredRow, hookimpl

NAME = "ted-echo"
# What `harness score` adds to every scorer's options; a scorer may ignore them.
_GIVEN_BY_HARNESS = {"out_dir", "progress"}


class EchoScorer:
    """Satisfies `harness.Scorer`: ``name``, ``rows()`` and ``score(row)``."""

    name = NAME

    def __init__(self, scale: float) -> None:
        self.scale = scale

    def rows(self) -> Sequence[ScoredRow]:
        return []  # it scores any row on demand: it holds no recorded rows

    def score(self, row: ScoredRow) -> list[DownstreamMetric]:
        if row.ted is None:
            return []  # no TED accuracy known for this row: no number
        return [DownstreamMetric(benchmark="echo", metric="ted", value=row.ted * self.scale, n=1,
                                 source=f"{NAME}: {row.encoder}/{row.extractor} TED x {self.scale:g}")]


@hookimpl
def harness_scorer_names() -> list[str]:
    return [NAME]


@hookimpl
def harness_make_scorer(name: str, options: Mapping[str, Any]) -> EchoScorer | None:
    if name != NAME:
        return None  # not ours
    unknown = set(options) - {"arg", "scale", *_GIVEN_BY_HARNESS}
    if unknown:
        raise ConfigError(f"scorer {NAME!r} takes only the option scale (ted-echo:SCALE or --option scale=X); "
                          f"got {', '.join(sorted(unknown))}")
    raw = options.get("scale", options.get("arg", 1.0))
    try:
        scale = float(raw)
    except (TypeError, ValueError):
        raise ConfigError(f"scorer {NAME!r}: scale {raw!r} is not a number") from None
    if not math.isfinite(scale) or scale <= 0:
        raise ConfigError(f"scorer {NAME!r}: scale must be a positive number, got {raw!r}")
    return EchoScorer(scale)
