"""Statement drafts for the static categories: spatial, quantity, adjective and ocr.

A draft is a true proposition plus candidate negatives in priority order (binding-style
distractors that reuse another entity's value come first). Candidates are only proposals:
bench.py keeps a negative only if `props.truth` says the caption contradicts it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from .props import Attr, Both, Count, Prop, Rel, Stated, Text, truth
from .scene import CONVERSE, Entity, Scene
from .vocab_world import (
    COLOURS,
    LETTER_SWAPS,
    PATTERNS,
    SIZE_SCALES,
    STATE_SCALES,
    TEXT_POOLS,
    TEXT_SWAP_WORDS,
    colours_confusable,
    materials_confusable,
)

GENERIC_REL = {"on": "above", "under": "below"}


@dataclass(frozen=True)
class Draft:
    positive: Prop
    negatives: tuple[Prop, ...]
    family: str


def false_only(props: list[Prop], scene: Scene, stated: Stated) -> list[Prop]:
    """Keep candidates the caption contradicts, dropping repeats, in their given order."""
    out: list[Prop] = []
    for p in props:
        if p not in out and truth(p, scene, stated) is False:
            out.append(p)
    return out


def draft_spatial(scene: Scene, stated: Stated, rng: random.Random) -> Draft | None:
    rels = [r for i, r in enumerate(scene.relations) if ("rel", i) in stated]
    rng.shuffle(rels)
    fallback = None
    for r in rels:
        a, word, b = r.a, GENERIC_REL.get(r.rel, r.rel), r.b
        if rng.random() < 0.5:
            a, word, b = b, CONVERSE[word], a
        third: list[Prop] = []
        for c in scene.entities:
            if c.eid not in (a, b):
                third += [Rel(c.eid, word, b), Rel(a, word, c.eid)]
        third = false_only(third, scene, stated)
        rng.shuffle(third)
        flips: list[Prop] = [Rel(a, CONVERSE[word], b), Rel(b, word, a)]
        rng.shuffle(flips)
        draft = Draft(Rel(a, word, b), tuple(flips[:1] + third[:2] + flips[1:]), "rel")
        if third:
            return draft
        fallback = fallback or draft
    return fallback


def draft_quantity(scene: Scene, stated: Stated, rng: random.Random) -> Draft | None:
    groups = [e for e in scene.entities if ("count", e.eid) in stated and e.count >= 2]
    if not groups:
        return None
    rng.shuffle(groups)
    if len(groups) >= 2 and rng.random() < 0.35:
        one, two = groups[0], groups[1]
        n1, n2 = one.count, two.count
        d1, d2 = rng.choice((-1, 1)), rng.choice((-1, 1))
        negs: list[Prop] = [Both(Count(one.eid, n2), Count(two.eid, n1)),
                            Both(Count(one.eid, n1 + d1), Count(two.eid, n2)),
                            Both(Count(one.eid, n1), Count(two.eid, n2 + d2))]
        negs = [p for p in negs if _counts_ok(p)]
        return Draft(Both(Count(one.eid, n1), Count(two.eid, n2)), tuple(negs), "count")
    target = groups[0]
    n = target.count
    others = [g.count for g in groups[1:]]
    near = [n + 1, n - 1, n + 2, n - 2, n + 3]
    rng.shuffle(near)
    alts = [m for m in others + near if 1 <= m <= 9 and m != n]
    return Draft(Count(target.eid, n), tuple(Count(target.eid, m) for m in alts), "count")


def _counts_ok(prop: Prop) -> bool:
    assert isinstance(prop, Both) and isinstance(prop.left, Count) and isinstance(prop.right, Count)
    return all(2 <= c.n <= 9 for c in (prop.left, prop.right))


ATTR_WEIGHTS = {"colour": 3.0, "material": 2.0, "pattern": 1.5, "size": 0.8, "state": 0.5}


def draft_adjective(scene: Scene, stated: Stated, rng: random.Random) -> Draft | None:
    options = [(e, k) for e in scene.entities for k in ATTR_WEIGHTS
               if (k, e.eid) in stated and getattr(e, k)]
    if not options:
        return None
    # Weighted shuffle (Efraimidis-Spirakis keys), then the first option with 2+ negatives.
    options.sort(key=lambda ek: -rng.random() ** (1.0 / ATTR_WEIGHTS[ek[1]]))
    drafts = []
    for entity, kind in options:
        both = (entity.etype.cls != "person" and ("colour", entity.eid) in stated
                and ("material", entity.eid) in stated and rng.random() < 0.3)
        if both:
            return _draft_colour_material(scene, entity, rng)
        alts = _attr_alternatives(scene, entity, kind, rng=rng)
        negs = tuple(Attr(entity.eid, kind, v) for v in alts)
        drafts.append(Draft(Attr(entity.eid, kind, str(getattr(entity, kind))), negs, "attr"))
        if len(negs) >= 2:
            return drafts[-1]
    return drafts[0]


def _attr_alternatives(scene: Scene, e: Entity, kind: str, *, rng: random.Random) -> list[str]:
    true = str(getattr(e, kind))
    others = [str(getattr(o, kind)) for o in scene.entities if o.eid != e.eid and getattr(o, kind)]
    if kind == "colour":
        allowed = list(e.etype.colours) if e.etype.cls == "animal" else list(COLOURS)
        pool = [c for c in others if c in allowed] + rng.sample(allowed, len(allowed))
        return _distinct([c for c in pool if not colours_confusable(c, true)])
    if kind == "material":
        pool = [m for m in others if m in e.etype.materials] + list(e.etype.materials)
        return _distinct([m for m in pool if not materials_confusable(m, true)])
    if kind == "pattern":
        pool = others + rng.sample(PATTERNS, len(PATTERNS))
        return _distinct([p for p in pool if p != true])
    table = SIZE_SCALES[e.etype.size_scale] if kind == "size" else STATE_SCALES[e.etype.state_scale]
    opposite = list(table.words(1 - table.pole(true)))
    rng.shuffle(opposite)
    return opposite


def _distinct(values: list[str]) -> list[str]:
    out: list[str] = []
    for v in values:
        if v not in out:
            out.append(v)
    return out


def _draft_colour_material(scene: Scene, e: Entity, rng: random.Random) -> Draft:
    colours = _attr_alternatives(scene, e, "colour", rng=rng)
    materials = _attr_alternatives(scene, e, "material", rng=rng)
    pos = Both(Attr(e.eid, "colour", e.colour), Attr(e.eid, "material", e.material))
    negs: list[Prop] = []
    if colours:
        negs.append(Both(Attr(e.eid, "colour", colours[0]), Attr(e.eid, "material", e.material)))
    if materials:
        negs.append(Both(Attr(e.eid, "colour", e.colour), Attr(e.eid, "material", materials[0])))
    if colours and materials:
        negs.append(Both(Attr(e.eid, "colour", colours[-1]),
                         Attr(e.eid, "material", materials[-1])))
    return Draft(pos, tuple(negs), "attr")


def draft_ocr(scene: Scene, stated: Stated, rng: random.Random) -> Draft | None:
    carriers = [e for e in scene.entities if ("text", e.eid) in stated]
    if not carriers:
        return None
    rng.shuffle(carriers)
    target = carriers[0]
    text = target.text
    negs: list[Prop] = [Text(target.eid, letter_edit(text, rng)),
                        Text(target.eid, word_edit(text, target, rng))]
    negs += [Text(o.eid, text) for o in carriers[1:2]]
    second = letter_edit(text, rng)
    negs.append(Text(target.eid, second))
    rng.shuffle(negs)
    return Draft(Text(target.eid, text), tuple(negs), "text")


def letter_edit(text: str, rng: random.Random) -> str:
    """Swap one character for a look-alike ("CAFE" -> "CAPE"-style misreadings)."""
    spots = [i for i, ch in enumerate(text) if ch in LETTER_SWAPS]
    i = rng.choice(spots)
    return text[:i] + LETTER_SWAPS[text[i]] + text[i + 1:]


def word_edit(text: str, carrier: Entity, rng: random.Random) -> str:
    """Replace one word (or, for one-word text, the whole text) with another real-looking one."""
    words = text.split()
    alpha = [i for i, w in enumerate(words) if w.isalpha() and len(w) > 1]
    if len(words) > 1 and alpha:
        i = rng.choice(alpha)
        words[i] = rng.choice([w for w in TEXT_SWAP_WORDS if w not in words])
        return " ".join(words)
    pool = TEXT_POOLS[carrier.etype.text_pool or "name"]
    return rng.choice([t for t in pool if t != text])
