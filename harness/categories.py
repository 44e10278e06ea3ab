"""The TED-6K question categories: the one list every module, tool and test reads.

``CATEGORIES`` is the benchmark's nine categories in report order.
``OFFICIAL_TYPE_NAMES`` maps the question-type names found in the official
TED-6K file to these slugs, and :func:`category_slug` applies it to any name.
Standard library only, so the sample-data generator can import it too.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

__all__ = ["CATEGORIES", "OFFICIAL_TYPE_NAMES", "category_slug"]

CATEGORIES: tuple[str, ...] = (
    "action", "spatial", "temporal", "coreference", "adjective",
    "adverb", "quantity", "ocr", "basic_event",
)
# Question-type names used by the official TED-6K file -> our slugs.
OFFICIAL_TYPE_NAMES: Mapping[str, str] = {
    "action recognition": "action", "action": "action",
    "spatial relationship": "spatial", "spatial relation": "spatial", "spatial": "spatial",
    "temporal": "temporal", "temporal relationship": "temporal", "temporal order": "temporal",
    "coreference": "coreference", "coreference resolution": "coreference",
    "adjective": "adjective", "attribute": "adjective", "adverb": "adverb",
    "quantity": "quantity", "counting": "quantity", "count": "quantity",
    "ocr": "ocr", "text recognition": "ocr", "basic event": "basic_event", "event": "basic_event",
}


def category_slug(name: str) -> str:
    """Map an official question-type name to our slug; unknown names become their own slug."""
    key = re.sub(r"[\s_-]+", " ", name.strip().lower())
    return OFFICIAL_TYPE_NAMES.get(key, re.sub(r"[^a-z0-9]+", "_", key).strip("_") or "unknown")
