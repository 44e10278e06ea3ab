"""argparse value types shared by every ``harness`` sub-command: a bad value is one line, exit 2."""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable
from typing import Any

__all__ = ["MAX_DIM", "MAX_EPOCHS", "MAX_TOKENS", "MAX_RESAMPLES", "MAX_SEED", "batch_size", "byte_size", "csv_list", "int_list",
           "non_negative_int", "number", "positive_int", "positive_int_list", "resamples", "seed_list"]

# Bounds on counts and sizes, so a typo (or a pasted 20-digit number) is refused at parse time instead
# of allocating, hanging or overflowing after the model has loaded.
MAX_SEED = 2**32 - 1  # numpy's seed range; torch takes any of these too
MAX_DIM = 65536  # --dim-out, --heads: the aggregator's width
MAX_EPOCHS = 10_000
MAX_TOKENS = 1 << 24  # --max-length, --drop-prefix-tokens (and an encoder's [max_length=...]): 16M tokens
MAX_RESAMPLES = 100_000  # --bootstrap, --null-resamples (default 1000 and 100)

_SIZE = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([kmgtp]?)(i?)b?\s*", re.IGNORECASE)


def csv_list(text: str) -> tuple[str, ...]:
    """A non-empty comma-separated list (blank items dropped)."""
    items = tuple(x.strip() for x in text.split(",") if x.strip())
    if not items:
        raise argparse.ArgumentTypeError(f"{text!r} names nothing; give a comma-separated list")
    return items


def encoder_list(text: str) -> tuple[str, ...]:
    """``--encoders``: comma-separated, a comma inside ``[...]`` or quotes belonging to one encoder's arguments."""
    from harness._encoder_args import split_encoder_list

    try:
        items = tuple(split_encoder_list(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{exc}; write NAME[key=value,...],NAME2") from None
    if not items:
        raise argparse.ArgumentTypeError(f"{text!r} names nothing; give a comma-separated list")
    return items


def int_list(text: str) -> tuple[int, ...]:
    """A non-empty comma-separated list of integers."""
    try:
        return tuple(int(x) for x in csv_list(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of integers") from None


def positive_int_list(text: str) -> tuple[int, ...]:
    """A non-empty comma-separated list of positive integers (widths, sizes)."""
    try:
        values = int_list(text)
    except argparse.ArgumentTypeError:
        values = ()
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of positive integers")
    return values


def seed_list(text: str) -> tuple[int, ...]:
    """A non-empty comma-separated list of seeds, each in 0..2**32-1 (what numpy and torch accept)."""
    seeds = int_list(text)
    bad = next((s for s in seeds if not 0 <= s <= MAX_SEED), None)
    if bad is not None:
        raise argparse.ArgumentTypeError(f"seed {bad} is outside 0..{MAX_SEED} (2**32-1); give seeds such as 0,1,2")
    return seeds


def _plain(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def number(kind: type, *, low: float, strict: bool = False, high: float | None = None, what: str = "",
           why: str = "") -> Callable[[str], Any]:
    """An argparse type: ``kind`` >= ``low`` (> ``low`` when ``strict``) and <= ``high`` when given; NaN and
    infinities (``nan``, ``inf``, ``1e999``) are refused.  ``why`` ends the message of a value over ``high``."""
    noun = what or ("an integer" if kind is int else "a number")
    bound = (f"> {_plain(low)}" if strict else f">= {_plain(low)}") + (f" and <= {_plain(high)}" if high is not None else "")

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except (ValueError, OverflowError):
            raise argparse.ArgumentTypeError(f"{text!r:.60} is not {noun} {bound}") from None
        if isinstance(value, float) and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text!r:.60} is not finite; give {noun} {bound}")
        if value <= low if strict else value < low:
            raise argparse.ArgumentTypeError(f"{text!r:.60} is not {noun} {bound}")
        if high is not None and value > high:
            raise argparse.ArgumentTypeError(f"{text!r:.60} is over the bound {_plain(high)}"
                                             + (f" ({why})" if why else ""))
        return value
    return parse


positive_int = number(int, low=0, strict=True)
non_negative_int = number(int, low=0)
resamples = number(int, low=0, high=MAX_RESAMPLES, why="a bound against typos: 1000 is usual, 0 turns them off")


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
