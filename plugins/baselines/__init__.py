"""Built-in baselines (``harness list baselines``): the paper's QA-style baseline, ``qa`` (free answer
judged by an LLM) and ``qa-choice`` (option letter), run as ``harness run --aggregator qa|qa-choice``.

This module holds the hooks and the flags; `qa_baseline` (the command) and `qa` (the engine) are
imported only when a QA baseline is built.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

from harness import Baseline, hookimpl
from harness import non_negative_int, positive_int

__all__ = ["NAMES", "harness_add_baseline_options", "harness_baseline_names", "harness_make_baseline"]

NAMES = ("qa", "qa-choice")  # --aggregator name; its default --qa-mode is open / choice


@hookimpl(trylast=True)
def harness_baseline_names() -> list[str]:
    return list(NAMES)


@hookimpl(trylast=True)
def harness_make_baseline(name: str, options: Mapping[str, Any]) -> Baseline | None:
    if name not in NAMES:
        return None
    from harness_plugins.baselines.qa_baseline import QABaseline

    return QABaseline.from_options(name, options)


@hookimpl(trylast=True)
def harness_add_baseline_options(parser: argparse.ArgumentParser) -> None:
    """The ``--qa-*`` and ``--llm-*`` flags of ``harness run``."""
    g = parser.add_argument_group("QA baseline (--aggregator qa or qa-choice)")
    g.add_argument("--qa-rewriter", metavar="MODEL",
                   help="LLM that turns statements into questions, served at --llm-base-url (hf:PATH: a local model)")
    g.add_argument("--qa-judge", metavar="MODEL", help="LLM that judges open answers (default: the rewriter)")
    g.add_argument("--qa-answer-base-url", metavar="URL",
                   help="OpenAI-compatible server serving each encoder's checkpoint, to answer with instead of "
                        "loading it here (needed for families that cannot generate locally)")
    g.add_argument("--llm-base-url", metavar="URL", help="OpenAI-compatible server of the rewriter and judge "
                   "(default: $OPENAI_BASE_URL)")
    g.add_argument("--llm-api-key", help="API key (default: $OPENAI_API_KEY)")
    g.add_argument("--llm-concurrency", type=positive_int, default=8, help="requests in flight at once")
    g.add_argument("--qa-questions", metavar="FILE", help="questions JSONL to reuse and extend (edit it freely; an "
                   "edited question wins). Default: OUTPUT/qa-questions.jsonl, else in the cache folder")
    g.add_argument("--qa-mode", choices=["open", "choice"],
                   help="open: free answer + LLM judge (default for --aggregator qa); choice: option letter")
    g.add_argument("--qa-shuffle-control", action="store_true",
                   help="paper §4.4: the same option questions with captions shuffled across instances, per seed "
                        "(>= 5 seeds; choice mode). Not the similarity control --control shuffled-captions")
    g.add_argument("--qa-retries", type=non_negative_int, default=2,
                   help="re-asks of a malformed answer before it is unanswerable")
