"""argparse value types shared by every ``harness`` sub-command: a bad value is one line, exit 2."""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable
from typing import Any

__all__ = ["batch_size", "byte_size", "csv_list", "int_list", "non_negative_int", "number", "positive_int"]

_SIZE = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([kmgtp]?)(i?)b?\s*", re.IGNORECASE)


def csv_list(text: str) -> tuple[str, ...]:
    """A non-empty comma-separated list (blank items dropped)."""
    items = tuple(x.strip() for x in text.split(",") if x.strip())
    if not items:
        raise argparse.ArgumentTypeError(f"{text!r} names nothing; give a comma-separated list")
    return items


def int_list(text: str) -> tuple[int, ...]:
    """A non-empty comma-separated list of integers."""
    try:
        return tuple(int(x) for x in csv_list(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of integers") from None


def number(kind: type, *, low: float, strict: bool = False, what: str = "") -> Callable[[str], Any]:
    """An argparse type: ``kind`` >= ``low`` (> ``low`` when ``strict``); NaN is refused."""
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or value != value or (value <= low if strict else value < low):
            bound = f"> {low:g}" if strict else f">= {low:g}"
            noun = what or ("an integer" if kind is int else "a number")
            raise argparse.ArgumentTypeError(f"{text!r} is not {noun} {bound}")
        return value
    return parse


positive_int = number(int, low=0, strict=True)
non_negative_int = number(int, low=0)


def batch_size(text: str) -> int | str:
    """A positive integer or ``auto``."""
    if text == "auto":
        return text
    try:
        return int(positive_int(text))
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer or 'auto'") from None


def byte_size(text: str) -> int:
    """A number of bytes: ``500M``, ``3G``, ``1.5T``, ``2GB`` (K/M/G/T/P = powers of 1000), ``4GiB``
    (Ki/Mi/Gi/Ti/Pi = powers of 1024) or a plain byte count; 0 is allowed."""
    m = _SIZE.fullmatch(text)
    if m is None or (m.group(3) and not m.group(2)):
        raise argparse.ArgumentTypeError(f"{text!r} is not a size; write e.g. 500M, 3G, 1.5T "
                                         "(K/M/G/T = powers of 1000, Ki/Mi/Gi/Ti = powers of 1024)")
    power = " KMGTP".index(m.group(2).upper() or " ")
    value = float(m.group(1)) * (1024 if m.group(3) else 1000) ** power
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is too large a size")
    return int(value)
