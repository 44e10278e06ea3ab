"""Checks on what the LLM wrote: a positive statement (or null) and exactly three minimal-edit negatives."""

from __future__ import annotations

import re
from typing import Any

__all__ = ["MIN_WORD_SLACK", "check_negatives", "check_positive", "normalize", "words"]

MIN_WORD_SLACK = 2  # a negative of a 4-word positive may still differ by 2 words ("two" -> "three red")


def normalize(text: str) -> str:
    """Case- and space-insensitive form, trailing punctuation dropped: what 'the same statement' means."""
    return " ".join(text.lower().split()).rstrip(" .!?;:")


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def check_positive(parsed: Any) -> tuple[str | None, str | None]:
    """(statement or None for null, problem or None).  A problem means the answer must be asked again."""
    if not isinstance(parsed, dict):
        return None, 'the answer is not a JSON object; reply with {"statement": "..."} or {"statement": null}'
    if "statement" not in parsed:
        return None, 'the JSON object has no "statement" field'
    value = parsed["statement"]
    if value is None:
        return None, None
    if not isinstance(value, str) or not value.strip():
        return None, '"statement" must be a non-empty string, or null if the caption holds nothing of this category'
    return " ".join(value.split()), None


def check_negatives(parsed: Any, positive: str, *, max_length_change: float = 0.4,
                    min_overlap: float = 0.3) -> tuple[list[str], str | None]:
    """(the three negatives, problem or None).

    Each negative must be a non-empty string, differ from the positive and from the others
    (`normalize`), and be a minimal edit of the positive: its word count within
    ``max_length_change`` x the positive's (at least `MIN_WORD_SLACK` words) and a word-set
    Jaccard overlap of at least ``min_overlap``.
    """
    if not isinstance(parsed, dict) or not isinstance(parsed.get("negatives"), list):
        return [], 'the answer is not a JSON object with a "negatives" list'
    raw = parsed["negatives"]
    if len(raw) != 3:
        return [], f'"negatives" holds {len(raw)} statements; exactly three are needed'
    if not all(isinstance(n, str) and n.strip() for n in raw):
        return [], 'every negative must be a non-empty string'
    negs = [" ".join(n.split()) for n in raw]
    pos_norm, pos_words = normalize(positive), words(positive)
    if any(normalize(n) == pos_norm for n in negs):
        return negs, "a negative repeats the true statement; each must contradict the caption"
    if len({normalize(n) for n in negs}) < 3:
        return negs, "two negatives are the same; the three must differ from each other"
    slack = max(MIN_WORD_SLACK, max_length_change * len(pos_words))
    for i, neg in enumerate(negs, 1):
        neg_words = words(neg)
        if abs(len(neg_words) - len(pos_words)) > slack:
            return negs, (f"negative {i} has {len(neg_words)} words against the true statement's {len(pos_words)}; "
                          "change only the tested detail and keep the length")
        a, b = set(neg_words), set(pos_words)
        if len(a & b) / max(1, len(a | b)) < min_overlap:
            return negs, f"negative {i} rewrites the true statement; keep its wording and change only the tested detail"
    return negs, None
