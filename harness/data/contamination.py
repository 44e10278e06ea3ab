"""Do the training pairs share captions (or images/videos) with the instances a run evaluates?

An aggregator trained on captions of the images the benchmark asks about scores higher than it
should, and nothing in the numbers shows it.  `check_contamination` counts, before training:

* **by text**: pairs with a side whose normalised text (`normalize`: Unicode NFKC, lower-cased,
  punctuation and symbols to spaces, whitespace collapsed) *equals* a normalised evaluated text
  (a caption, one line of a caption, a positive or a negative), or is *contained* in a caption or
  statement at word boundaries when it has at least ``min_words`` words (`MIN_CONTAINED_WORDS`);
* **by group**: pairs whose ``group`` equals an instance's ``group`` (the image or video both
  describe) when both are known.

Why ``min_words`` = 8: a short phrase inside a ~190-word dense caption ("a dog", "a man is
playing a guitar") is coincidence, not a copied caption; a whole caption of 8 or more words found
verbatim inside an evaluated text is not.  (lm-eval's decontamination looks for 13-gram overlaps
between a document and a benchmark; here the *whole* pair text must occur, which is stricter per
match, so a shorter length suffices.)  Equality counts at any length.

The search is a word n-gram index over the pair texts: each pair text of ``min_words`` or more
words is keyed by its first ``min_words`` words, every window of that many words of every distinct
evaluated text is looked up once, and a hit is confirmed by comparing the whole pair text at that
position.  The cost is one lookup per word of the evaluated texts plus one normalisation per pair
text, never pairs x captions.  No torch, no third-party imports.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from harness.types import CaptionPair, Instance

__all__ = ["MIN_CONTAINED_WORDS", "ContaminationHit", "ContaminationReport", "check_contamination",
           "describe", "normalize"]

MIN_CONTAINED_WORDS = 8
_NOT_WORD = re.compile(r"[\W_]+")  # punctuation, symbols and whitespace (and '_', which \w keeps)
# The same for ASCII text (NFKC leaves ASCII as it is), twice as fast: every non-alphanumeric to a space.
_ASCII_NOT_WORD = str.maketrans({c: " " for c in map(chr, range(128)) if not c.isalnum()})


def normalize(text: str) -> str:
    """``text`` as compared: NFKC, lower-cased, every run of non-word characters one space, trimmed."""
    if text.isascii():
        return " ".join(text.lower().translate(_ASCII_NOT_WORD).split())
    return _NOT_WORD.sub(" ", unicodedata.normalize("NFKC", text).lower()).strip()


@dataclass(frozen=True)
class ContaminationHit:
    """One training pair that overlaps an evaluated instance, as an example for messages."""

    pair: int  # 1-based position among the pairs used (after --max-pairs): line N of a JSONL file without blank lines
    text: str  # the pair's side that matched (its group for a group match), verbatim
    instance: str  # the id of the instance it hit
    how: str  # "equal" | "contained" | "group"


@dataclass(frozen=True)
class ContaminationReport:
    """What `check_contamination` found; recorded in ``results.json`` (``provenance.contamination``)."""

    n_pairs: int  # pairs checked
    n_contaminated: int  # pairs overlapping by text or by group (each pair counted once)
    n_by_text: int
    n_by_group: int
    n_instances: int  # instances checked against
    n_instances_with_group: int  # instances that name their image/video (0: no group check possible)
    n_pairs_with_group: int
    min_words: int
    rule: str
    examples: list[ContaminationHit] = field(default_factory=list)
    seconds: float = 0.0


def _rule(min_words: int) -> str:
    return (f"text: a pair caption equal (NFKC, lower-cased, punctuation to spaces, whitespace collapsed) to an "
            f"evaluated caption, caption line, positive or negative, or contained in a caption or statement at "
            f"word boundaries when it has >= {min_words} words; group: a pair's group equal to an instance's group")


class _Targets:
    """The evaluated texts, normalised and deduplicated, each with the first instance that holds it."""

    def __init__(self, instances: Iterable[Instance]) -> None:
        self.equal: dict[str, str] = {}  # normalised caption / caption line / statement -> instance id
        self.contain: dict[str, str] = {}  # normalised caption / statement -> instance id
        self.groups: dict[str, str] = {}  # group -> instance id
        self.n = self.n_grouped = 0
        for inst in instances:
            self.n += 1
            if inst.group is not None:
                self.n_grouped += 1
                self.groups.setdefault(inst.group, inst.id)
            for text in (inst.caption, *inst.candidates):
                key = normalize(text)
                self.equal.setdefault(key, inst.id)
                self.contain.setdefault(key, inst.id)
            for line in inst.caption.splitlines():
                self.equal.setdefault(normalize(line), inst.id)
        self.equal.pop("", None)
        self.contain.pop("", None)


def _contained(keyed: dict[str, list[str]], targets: dict[str, str], min_words: int) -> dict[str, str]:
    """Normalised pair text -> instance id for every keyed pair text found inside a target text."""
    found: dict[str, str] = {}
    for text, inst in targets.items():
        words = text.split(" ")
        for i in range(len(words) - min_words + 1):
            cands = keyed.get(" ".join(words[i:i + min_words]))
            if cands is None:
                continue
            for norm in cands:
                n = norm.count(" ") + 1
                if norm not in found and i + n <= len(words) and " ".join(words[i:i + n]) == norm:
                    found[norm] = inst
    return found


def check_contamination(pairs: Sequence[CaptionPair], instances: Iterable[Instance], *,
                        min_words: int = MIN_CONTAINED_WORDS, max_examples: int = 3) -> ContaminationReport:
    """Count the ``pairs`` that overlap ``instances`` by text or by group (module docstring)."""
    import time

    if min_words < 1:
        raise ValueError(f"min_words must be >= 1, got {min_words}")
    t0 = time.perf_counter()
    targets = _Targets(instances)
    norm_of: dict[str, str] = {}  # verbatim side -> normalised (a caption recurs in every pair of its item)
    sides: dict[str, list[int]] = {}  # normalised side -> the pairs (0-based) that have it
    for i, p in enumerate(pairs):
        for side in (p.a, p.b):
            norm = norm_of.get(side)
            if norm is None:
                norm = norm_of[side] = normalize(side)
            at = sides.setdefault(norm, [])
            if not at or at[-1] != i:
                at.append(i)
    matched: dict[str, tuple[str, str]] = {}  # normalised side -> (instance id, how)
    keyed: dict[str, list[str]] = {}  # the first min_words words -> normalised sides starting so
    for norm in sides:
        inst = targets.equal.get(norm)
        if inst is not None:
            matched[norm] = (inst, "equal")
        elif norm.count(" ") + 1 >= min_words:
            keyed.setdefault(" ".join(norm.split(" ", min_words)[:min_words]), []).append(norm)
    matched.update((norm, (inst, "contained")) for norm, inst in _contained(keyed, targets.contain, min_words).items())
    by_text: dict[int, ContaminationHit] = {}
    for norm, (inst, how) in matched.items():
        for i in sides[norm]:
            side = pairs[i].a if norm_of[pairs[i].a] == norm else pairs[i].b
            if i not in by_text or (how == "equal" and by_text[i].how != "equal"):
                by_text[i] = ContaminationHit(i + 1, side, inst, how)
    by_group = {i: ContaminationHit(i + 1, p.group, targets.groups[p.group], "group")
                for i, p in enumerate(pairs) if p.group is not None and p.group in targets.groups}
    hits = {**by_group, **by_text}  # a pair matching both is shown by its text
    examples = [hits[i] for i in sorted(hits)[:max_examples]]
    return ContaminationReport(
        n_pairs=len(pairs), n_contaminated=len(hits), n_by_text=len(by_text), n_by_group=len(by_group),
        n_instances=targets.n, n_instances_with_group=targets.n_grouped,
        n_pairs_with_group=sum(p.group is not None for p in pairs), min_words=min_words, rule=_rule(min_words),
        examples=examples, seconds=round(time.perf_counter() - t0, 3))


def _short(text: str, width: int = 48) -> str:
    one = " ".join(text.split())
    return one if len(one) <= width else one[: width - 1].rstrip() + "…"


def describe(report: ContaminationReport, label: Callable[[str], str] = str) -> str:
    """One line for the terminal: the counts, and the first overlapping pair with the instance it hit
    (``label`` turns an instance id into what to print, e.g. ``task/id``)."""
    n, total = report.n_contaminated, f"{report.n_pairs:,}"
    if report.n_instances_with_group == 0:
        ids = "; image/video ids not checked: the evaluated instances name none (JSONL field 'group')"
    elif report.n_pairs_with_group == 0:
        ids = "; image/video ids not checked: the pairs name none (field 'group')"
    else:
        ids = ""
    if n == 0:
        what = "by text or image/video id" if not ids else "by text"
        return (f"no overlap: none of {total} train pairs matches the {report.n_instances:,} evaluated instances "
                f"{what}{ids}")
    hit = report.examples[0]
    kind = "image/video id" if hit.how == "group" else f"text, {hit.how}"
    return (f"{n:,} of {total} train pairs overlap the evaluated instances ({report.n_by_text:,} by text, "
            f"{report.n_by_group:,} by image/video id), e.g. pair {hit.pair} {_short(hit.text)!r} ({kind}) in "
            f"{label(hit.instance)}{ids}")
