"""How much disk the feature cache will need, decided before anything is encoded.

For every role's texts (``evaluation``; ``training`` pairs, which may be truncated at
their own length) and every view the extractors read, `estimate_views` counts the
texts not cached yet and their tokens, and prices them at the view's bytes per token
(layers in the view x width x itemsize of the feature dtype) plus a small per-entry
overhead.  Tokens are counted with the encoder's own tokenizer when it exposes an
HF-style one (``encoder.tokenizer``; nothing is added to the `harness.Encoder`
protocol), capped at the truncation length: that is exact up to dropped prefix
tokens.  Otherwise each text is priced at an upper bound: its UTF-8 byte count plus
`SPECIAL_TOKENS`, capped at the truncation length (no tokenizer makes more tokens
than bytes, besides its special tokens).

`plan_disk` checks the total against the room the cache may use: the free space of
its folder (``shutil.disk_usage``) less a safety margin, and ``--cache-budget`` when
given (bytes this run may add).  Views that read one layer or a mean of layers must
fit, or `CacheError` says what is needed and what to do.  A stack view (the
``learned`` extractor's ``[L, T, D]`` per text) that does not fit is not cached: its
features are computed by the encoder batch by batch, in the loop
(`harness.features.sources.EncoderInTheLoop`).  Nothing here imports torch.

Without ``--cache-budget`` a run has a default budget (`default_budget`): 10% of the
free space left after the margin, at most 5 GB (`DEFAULT_BUDGET_FRACTION`,
`DEFAULT_BUDGET_CAP`), less what earlier encoders of the same run planned to write.
Layer stacks are cached only while everything this run writes stays within it; views
that must be cached (one layer, a mean) are not held to it, only to the free space,
and the plan says when they exceed it.  Why these numbers:

- Only the stacks have another place to go, and that place costs compute, not accuracy:
  `learned` with the encoder in the loop gives the same per-instance results.  Stacks are
  L x larger than one layer (MiniLM 7x, a 36-layer LLM 36x), so they are what fills a disk
  unasked: ``harness run --extract learned --train-pairs demo --max-pairs 0`` on the
  270-instance sample wrote 9.9 GB with no budget, 9.3 GB of it the training pairs' stack;
  under this default it writes 627 MB, every instance scored alike (25.2%), in 1,466 s of
  CPU against 1,777 s (user + system, same busy 2-core machine and session).
- A cache nobody sized should stay in the range of the caches of other developer tools
  (ccache's default maximum is 5 GB), and small next to the disk it is on (a tenth of the
  free space: under 2 GB when 20 GB are free).  A 10-20 GB cap would still have
  let the run above write its 9.9 GB.
- A larger cap would only matter for small encoders: the stacks of the encoders the project
  targets are hundreds of GB for TED-6K alone (docs/scale.md) and fit no default; for small
  ones the pass the cache saves is cheap.
- The views that must be cached are not limited by it: at scale they are tens of GB to TB
  (docs/scale.md), the alternative is ``--no-cache`` (all of it in RAM), and stopping such a
  run by default would trade a surprise for a failure.

``--cache-budget SIZE`` replaces the default (larger or smaller), for every view.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from harness._exceptions import CacheError, ConfigError
from harness.types import Encoder, EncoderInfo
from harness.features.views import View, view_bytes_per_token

__all__ = [
    "CACHED",
    "ENTRY_OVERHEAD",
    "IN_LOOP",
    "IN_RAM",
    "ITEMSIZE",
    "SPECIAL_TOKENS",
    "DEFAULT_BUDGET_CAP",
    "DEFAULT_BUDGET_FRACTION",
    "DEFAULT_BUDGET_RULE",
    "DiskPlan",
    "ViewNeed",
    "bytes_per_token",
    "count_tokens",
    "default_budget",
    "encoder_on_cuda",
    "estimate_views",
    "format_bytes",
    "plan_disk",
    "resolve_feature_dtype",
    "safety_margin",
    "token_limit",
]

CACHED, IN_LOOP, IN_RAM = "cache", "encoder-in-the-loop", "ram"
ITEMSIZE = {"float32": 4, "bfloat16": 2, "float16": 2, "float64": 8}
ENTRY_OVERHEAD = 128  # bytes per cached entry besides its tensor: its header row (key, offset, shape, crc), padding
SPECIAL_TOKENS = 8  # added to a text's UTF-8 byte count in the upper bound (BOS/EOS/CLS/SEP and the like)
MIN_MARGIN = 1 << 30  # free space never planned away: 1 GiB, or 2% of the filesystem when larger
DEFAULT_BUDGET_FRACTION = 0.10  # without --cache-budget: this share of the free space after the margin,
DEFAULT_BUDGET_CAP = 5 * 10**9  # at most this (5 GB); see the module docstring for why
DEFAULT_BUDGET_RULE = (f"{DEFAULT_BUDGET_FRACTION:.0%} of the free space after the margin, "
                       f"at most {DEFAULT_BUDGET_CAP // 10**9} GB")
_CHUNK = 4096  # texts per tokenizer call when counting


class _Keyed(Protocol):
    """What the plan needs of a `harness.features.cache.FeatureCache`: keys and membership."""

    def key(self, view_key: str, text: str) -> str: ...

    def __contains__(self, key: str) -> bool: ...


def encoder_on_cuda(encoder: Encoder) -> bool:
    """Whether ``encoder`` runs on CUDA: its model's parameters when it exposes a torch ``model``
    (as the built-in encoders do), else its recorded ``device`` / ``device_map`` options."""
    model = getattr(encoder, "model", None)
    params = getattr(model, "parameters", None)
    if callable(params):
        try:
            first = next(iter(params()))
        except (StopIteration, TypeError):
            first = None
        if first is not None:
            return str(getattr(getattr(first, "device", None), "type", "")) == "cuda"
    opts = encoder.info.options
    if str(opts.get("device") or "").startswith("cuda"):
        return True
    if opts.get("device_map"):
        import sys

        torch = sys.modules.get("torch")
        return bool(torch is not None and torch.cuda.is_available())
    return False


def resolve_feature_dtype(requested: str, encoder: Encoder) -> str:
    """``--feature-dtype``: ``auto`` is bfloat16 when the encoder runs on CUDA, float32 otherwise."""
    if requested == "auto":
        return "bfloat16" if encoder_on_cuda(encoder) else "float32"
    if requested not in ITEMSIZE:
        raise ConfigError(f"feature dtype {requested!r} is not one of auto, float32, bfloat16, float16")
    return requested


def bytes_per_token(view: View, width: int, dtype: str) -> int:
    """Bytes one token of ``view`` takes: layers in the view (1 unless a stack) x width x itemsize."""
    return view_bytes_per_token(view, width, ITEMSIZE[dtype])


def token_limit(info: EncoderInfo, max_length: int | None) -> int | None:
    """The truncation length texts encoded with ``max_length`` get (None: the evaluation length), as
    the encoder decided it at load time (`EncoderInfo.length` / `train_length`: the asked length
    capped by the model), else as asked; None when unknown."""
    if max_length is None:
        value = info.length
    elif max_length == info.options.get("train_max_length"):
        value = info.train_length
    else:
        value = max_length
    return int(value) if isinstance(value, int) and value > 0 else None


def count_tokens(encoder: Encoder, texts: Sequence[str], *, limit: int | None) -> tuple[list[int], bool]:
    """Tokens each text will keep (capped at ``limit``), and whether that count is exact.

    Exact with the encoder's HF-style ``tokenizer`` (``tokenizer(texts)["input_ids"]``, as
    `harness.encoding.tokenize` counts them), less ``drop_prefix_tokens``; otherwise the upper
    bound UTF-8 bytes + `SPECIAL_TOKENS`.
    """
    drop = encoder.info.options.get("drop_prefix_tokens") or 0
    cap = limit if limit is not None else float("inf")
    tokenizer = getattr(encoder, "tokenizer", None)
    if callable(tokenizer) and texts:
        lengths: list[int] = []
        try:
            for start in range(0, len(texts), _CHUNK):
                out = tokenizer(list(texts[start:start + _CHUNK]), add_special_tokens=True, truncation=False,
                                verbose=False)
                ids = out.get("input_ids") if isinstance(out, Mapping) else None
                if ids is None:  # not an HF-style tokenizer (open_clip's returns a tensor): use the bound
                    break
                lengths.extend(len(x) for x in ids)
        except (TypeError, KeyError, ValueError, AttributeError, IndexError, RuntimeError):
            lengths = []  # a tokenizer that does not take these arguments: use the bound
        if len(lengths) == len(texts):
            return [int(max(0, min(n, cap) - drop)) for n in lengths], True
    return [int(min(len(t.encode()) + SPECIAL_TOKENS, cap)) for t in texts], False


@dataclass(frozen=True)
class ViewNeed:
    """What one view of one role's texts needs in the cache, and what was decided for it."""

    role: str  # "evaluation" | "training"
    view: View
    extractors: tuple[str, ...]  # the extractors that read this view
    n_texts: int  # texts of this role not cached yet (they need space)
    n_cached: int  # texts of this role already in the cache (they need none)
    tokens: int  # tokens of the texts not cached yet
    exact: bool  # tokens counted with the tokenizer (else an upper bound)
    nbytes: int
    dtype: str
    decision: str = CACHED  # CACHED | IN_LOOP | IN_RAM

    @property
    def stack(self) -> bool:
        return self.view.op == "stack"

    def line(self) -> str:
        """``evaluation view learned/stack: 12,345 texts, ~3.1M tokens, 9.4 GB at float32 -> cache``."""
        names = ",".join(self.extractors)
        tokens = f"~{_count(self.tokens)}" if self.exact else f"<= {_count(self.tokens)}"
        cached = f" ({self.n_cached:,} already cached)" if self.n_cached else ""
        where = {CACHED: "cache", IN_LOOP: "NOT cached: encoder in the loop", IN_RAM: "RAM (--no-cache)"}
        return (f"{self.role} view {names}/{self.view.op}: {self.n_texts:,} texts{cached}, {tokens} tokens, "
                f"{format_bytes(self.nbytes)} at {self.dtype} -> {where[self.decision]}")

    def as_dict(self) -> dict[str, Any]:
        return {"role": self.role, "view": self.view.key, "extractors": list(self.extractors),
                "n_texts": self.n_texts, "n_cached": self.n_cached, "tokens": self.tokens,
                "tokens_exact": self.exact, "bytes": self.nbytes, "dtype": self.dtype, "decision": self.decision}


@dataclass(frozen=True)
class DiskPlan:
    """Every view's need, the room the cache had, and which stack views go in the loop."""

    needs: tuple[ViewNeed, ...]
    folder: str | None = None  # the cache folder measured (None: --no-cache)
    free: int | None = None  # its free bytes
    margin: int = 0  # free bytes never planned away
    budget: int | None = None  # --cache-budget (what is left of it for this encoder)
    writable: bool = True  # False: a read-only cache folder, nothing new can be cached
    notes: tuple[str, ...] = field(default_factory=tuple)
    # without --cache-budget: the run's default budget (`default_budget`) less what earlier encoders of the
    # run planned to write; it bounds the layer stacks only.  None with --cache-budget or --no-cache.
    default_budget: int | None = None
    spent: int = 0  # bytes earlier encoders of the run planned to write (taken from the default)

    @property
    def room(self) -> int | None:
        """Bytes the cache may take: free space less the margin, and at most the budget (None: no limit)."""
        limits = [n for n in ((None if self.free is None else max(0, self.free - self.margin)), self.budget,
                              None if self.writable else 0) if n is not None]
        return min(limits) if limits else None

    @property
    def stack_room(self) -> int | None:
        """Bytes everything cached may take when layer stacks are cached too: `room`, and at most the default
        budget when no --cache-budget was given (None: no limit)."""
        room = self.room
        if self.default_budget is None:
            return room
        return self.default_budget if room is None else min(room, self.default_budget)

    @property
    def to_write(self) -> int:
        """Bytes the views that will be cached still need."""
        return sum(n.nbytes for n in self.needs if n.decision == CACHED)

    def in_loop(self, role: str, view: View) -> bool:
        return any(n.role == role and n.view == view and n.decision == IN_LOOP for n in self.needs)

    def lines(self) -> list[str]:
        out = [n.line() for n in self.needs]
        if self.folder is not None:
            budget = "" if self.budget is None else f", --cache-budget {format_bytes(self.budget)}"
            if self.default_budget is not None:
                left = f" left (earlier encoders took {format_bytes(self.spent)})" if self.spent else ""
                budget = (f"; default budget {format_bytes(self.default_budget)}{left} ({DEFAULT_BUDGET_RULE}, for "
                          "this run; --cache-budget SIZE sets another)")
            out.append(f"feature cache {self.folder}: {format_bytes(self.to_write)} to write; "
                       f"{format_bytes(self.free or 0)} free (keeping {format_bytes(self.margin)}){budget}")
        return out + list(self.notes)

    def as_dict(self) -> dict[str, Any]:
        return {"folder": self.folder, "free": self.free, "margin": self.margin, "budget": self.budget,
                "default_budget": self.default_budget,
                "default_budget_rule": None if self.default_budget is None else DEFAULT_BUDGET_RULE,
                "spent_by_earlier_encoders": self.spent,
                "writable": self.writable, "room": self.room, "stack_room": self.stack_room,
                "to_write": self.to_write, "views": [n.as_dict() for n in self.needs]}


def estimate_views(encoder: Encoder, role: str, texts: Sequence[str], views: Mapping[View, Sequence[str]], *,
                   dtype: str, cache: _Keyed | None, max_length: int | None = None,
                   skip: Iterable[str] = ()) -> list[ViewNeed]:
    """One `ViewNeed` per view (``views`` maps each to the extractors reading it) for ``texts``.

    Texts already in ``cache`` (or in ``skip``: counted under another role of the same cache)
    need no space.  ``max_length`` is what the store passes to ``encode`` (None: evaluation length).
    """
    if not views:
        return []
    skipped = set(skip)
    missing = {v: [t for t in texts if t not in skipped and (cache is None or cache.key(v.key, t) not in cache)]
               for v in views}
    wanted = sorted({t for ts in missing.values() for t in ts})
    counts, exact = count_tokens(encoder, wanted, limit=token_limit(encoder.info, max_length))
    tokens = dict(zip(wanted, counts))
    out = []
    for view, names in views.items():
        todo = missing[view]
        n_tok = sum(tokens[t] for t in todo)
        nbytes = n_tok * bytes_per_token(view, encoder.info.width, dtype) + ENTRY_OVERHEAD * len(todo)
        out.append(ViewNeed(role=role, view=view, extractors=tuple(names), n_texts=len(todo),
                            n_cached=len(texts) - len(todo), tokens=n_tok, exact=exact, nbytes=nbytes, dtype=dtype,
                            decision=CACHED if cache is not None else IN_RAM))
    return out


def safety_margin(total: int) -> int:
    """Free space never planned away on a filesystem of ``total`` bytes: 1 GiB or 2%, the larger."""
    return max(MIN_MARGIN, total // 50)


def default_budget(free: int, margin: int) -> int:
    """The budget of a run without ``--cache-budget``: `DEFAULT_BUDGET_FRACTION` of the ``free`` bytes left
    after ``margin``, at most `DEFAULT_BUDGET_CAP` (the module docstring says why)."""
    return min(DEFAULT_BUDGET_CAP, int(max(0, free - margin) * DEFAULT_BUDGET_FRACTION))


def plan_disk(needs: Sequence[ViewNeed], *, folder: str | Path | None, budget: int | None = None,
              free: int | None = None, margin: int | None = None, writable: bool = True,
              spent: int = 0) -> DiskPlan:
    """Decide what is cached.  ``folder`` None (--no-cache): everything stays in RAM, nothing is checked.

    ``free`` and ``margin`` default to the folder's ``shutil.disk_usage`` and `safety_margin`;
    ``writable`` False (a read-only cache) leaves no room at all.  ``budget`` None (no
    --cache-budget): the run's `default_budget`, less ``spent`` (bytes earlier encoders of the
    run planned to write), bounds the layer stacks.
    Single-layer and mean views must fit the room, else `CacheError` (one line: needed, room,
    what to do).  Stack views are then cached while everything fits the stack room, training
    first (it is read every epoch), the rest go in the loop.
    """
    if folder is None:
        return DiskPlan(tuple(replace(n, decision=IN_RAM) for n in needs))
    if free is None or margin is None:
        usage = shutil.disk_usage(folder)
        free = usage.free if free is None else free
        margin = safety_margin(usage.total) if margin is None else margin
    default = None if budget is not None else max(0, default_budget(free, margin) - max(0, spent))
    plan = DiskPlan(tuple(needs), folder=str(folder), free=free, margin=margin, budget=budget, writable=writable,
                    default_budget=default, spent=max(0, spent))
    room, stack_room = plan.room, plan.stack_room
    assert room is not None and stack_room is not None
    fixed = [n for n in needs if not n.stack]
    need_fixed = sum(n.nbytes for n in fixed)
    if need_fixed > room:
        raise CacheError(_no_room(plan, fixed, need_fixed))
    left = stack_room - need_fixed  # below 0 when the views that must be cached already exceed the default
    decided: dict[int, ViewNeed] = {}
    stacks = sorted((i for i, n in enumerate(needs) if n.stack), key=lambda i: needs[i].role != "training")
    for i in stacks:
        n = needs[i]
        if n.nbytes <= left:
            left -= n.nbytes
            decided[i] = replace(n, decision=CACHED)
        else:
            decided[i] = replace(n, decision=IN_LOOP)
    out = tuple(decided.get(i, n) for i, n in enumerate(needs))
    notes = tuple(_in_loop_note(n, plan) for n in out if n.decision == IN_LOOP)
    if default is not None and need_fixed > default:
        notes += (f"feature cache: the views that must be cached need {format_bytes(need_fixed)}, more than the "
                  f"default budget {format_bytes(default)}: they are cached anyway (the free space allows it); "
                  "with --cache-budget SIZE they must fit SIZE or the run stops before encoding; --no-cache keeps "
                  "them in RAM",)
    return replace(plan, needs=out, notes=notes)


def _in_loop_note(need: ViewNeed, plan: DiskPlan) -> str:
    what = "trained" if need.role == "training" else "evaluated"
    return (f"{','.join(need.extractors)}: {what} with the encoder in the loop (its {need.role} features are "
            f"encoded batch by batch, not cached): the {need.view.op} view needs {format_bytes(need.nbytes)} and "
            f"does not fit the {_room_words(plan, stacks=True)}")


def _room_words(plan: DiskPlan, *, stacks: bool = False) -> str:
    """What limits the cache: the read-only folder, --cache-budget, the default budget (``stacks``: it bounds
    only them) or the free space."""
    if not plan.writable:
        return f"read-only feature cache {plan.folder}"
    free = max(0, (plan.free or 0) - plan.margin)
    if stacks and plan.default_budget is not None and plan.default_budget <= free:
        return (f"{format_bytes(plan.default_budget)} default cache budget ({DEFAULT_BUDGET_RULE}; --cache-budget "
                "SIZE allows more)")
    if plan.budget is not None and plan.budget <= free:
        return f"{format_bytes(plan.budget)} --cache-budget"
    return f"free space of {plan.folder} ({format_bytes(free)} after a {format_bytes(plan.margin)} margin)"


def _no_room(plan: DiskPlan, fixed: Sequence[ViewNeed], need: int) -> str:
    parts = ", ".join(f"{n.role} {','.join(n.extractors)} {format_bytes(n.nbytes)}" for n in fixed if n.nbytes)
    return (f"feature cache: the features to cache need ~{format_bytes(need)} ({parts}) but only "
            f"{format_bytes(plan.room or 0)} may be used: the {_room_words(plan)}. Raise --cache-budget, point "
            "--cache-dir at a disk with more room, or run with --no-cache (features in RAM)")


def format_bytes(n: int) -> str:
    """``9.4 GB`` (powers of 1000, as ``--cache-budget`` reads them)."""
    for unit, scale in (("TB", 10**12), ("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if abs(n) >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def _count(n: int) -> str:
    for unit, scale in (("G", 10**9), ("M", 10**6), ("K", 10**3)):
        if n >= scale:
            return f"{n / scale:.1f}{unit}"
    return str(n)
