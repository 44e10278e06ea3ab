"""Captions and their facts, both from one scene graph.

A `Fact` is one checkable claim of a caption, in one category: ``adjective`` (colour or size of
the object of a shape), ``spatial`` (left/right/above/below between two objects, by centroid),
``quantity`` (how many objects of a shape) and ``ocr`` (the word).  `fact_holds` is the fact's
meaning on a scene graph; the checker (`harness_plugins.generator._checker`) reads it off pixels.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np

from harness_plugins.generator._render import shape_mask
from harness_plugins.generator._scene import SLOTS, Group, Scene

__all__ = ["CATEGORIES", "MARGIN", "Caption", "Fact", "caption_scene", "fact_holds", "scene_facts"]

CATEGORIES = ("adjective", "spatial", "quantity", "ocr")
MARGIN = 2.0  # pixels (32-pixel canvas) a centroid must differ by for left/right/above/below
NUMBERS = {1: "one", 2: "two", 3: "three"}
PLACES = {"left": "on the left", "right": "on the right", "top": "at the top", "bottom": "at the bottom",
          "center": "in the center"}


@dataclass(frozen=True)
class Fact:
    """``kind``: colour | size | relation | count | word.  Objects are named by ``shape``."""

    category: str
    kind: str
    shape: str = ""
    value: str = ""  # colour, size, relation (left/right/above/below) or word
    other: str = ""  # the second shape of a relation
    count: int = 0


@dataclass(frozen=True)
class Caption:
    text: str
    facts: tuple[Fact, ...]


def _centroid(g: Group) -> tuple[float, float]:
    """Centroid of the group's pixels as drawn (a triangle's sits below its slot centre)."""
    ys, xs = np.nonzero(np.any([shape_mask(g.shape, g.size, SLOTS[s]) for s in g.slots], axis=0))
    return float(xs.mean()), float(ys.mean())


def _relation(a: tuple[float, float], b: tuple[float, float], rel: str) -> bool:
    dx, dy = a[0] - b[0], a[1] - b[1]
    return {"left": dx < -MARGIN, "right": dx > MARGIN, "above": dy < -MARGIN, "below": dy > MARGIN}[rel]


def fact_holds(fact: Fact, scene: Scene) -> bool:
    """What ``fact`` means on ``scene`` (the checker must agree on rendered images)."""
    if fact.kind == "word":
        return scene.word == fact.value
    by_shape = {g.shape: g for g in scene.groups}
    g = by_shape.get(fact.shape)
    if fact.kind == "count":
        return (g.count if g else 0) == fact.count
    if g is None:
        return False
    if fact.kind == "colour":
        return g.colour == fact.value
    if fact.kind == "size":
        return g.size == fact.value
    if fact.kind == "relation":
        o = by_shape.get(fact.other)
        return o is not None and _relation(_centroid(g), _centroid(o), fact.value)
    raise ValueError(f"unknown fact kind {fact.kind!r}")


def scene_facts(scene: Scene) -> list[Fact]:
    """Every fact a caption of ``scene`` states, in a fixed order."""
    facts: list[Fact] = []
    for g in scene.groups:
        facts += [Fact("adjective", "colour", g.shape, g.colour), Fact("adjective", "size", g.shape, g.size),
                  Fact("quantity", "count", g.shape, count=g.count)]
    single = [g for g in scene.groups if g.count == 1]  # relations between single objects only
    for i, a in enumerate(single):
        for b in single[i + 1:]:
            for rel in ("left", "above"):
                for x, y, r in ((a, b, rel), (b, a, rel)):
                    if _relation(_centroid(x), _centroid(y), r):
                        facts.append(Fact("spatial", "relation", x.shape, r, other=y.shape))
    if scene.word:
        facts.append(Fact("ocr", "word", value=scene.word))
    return facts


def _group_phrase(g: Group, style: int) -> str:
    noun = g.shape + ("s" if g.count > 1 else "")
    num = ("a" if g.count == 1 else NUMBERS[g.count]) if style != 2 else NUMBERS[g.count]
    place = " " + PLACES[g.slots[0]] if g.count == 1 else ""
    if style == 1:
        return f"{num} {noun} that {'is' if g.count == 1 else 'are'} {g.size} and {g.colour}{place}"
    return f"{num} {g.size} {g.colour} {noun}{place}"


def _fact_phrase(f: Fact) -> str:
    rel = {"left": "left of", "right": "right of", "above": "above", "below": "below"}[f.value]
    return f"the {f.shape} is {rel} the {f.other}"


def caption_scene(scene: Scene, rng: random.Random | None = None, *, style: int | None = None) -> Caption:
    """A caption of ``scene`` in one of three phrasings (``style`` 0-2, or drawn from ``rng``)."""
    rng = rng or random.Random(0)
    style = rng.randrange(3) if style is None else style
    facts = scene_facts(scene)
    parts = [_group_phrase(g, style) for g in scene.groups]
    objects = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    lead = ("", "an image of ", "there are ")[style] if style != 2 else "a picture with "
    sentences = [lead + objects]
    sentences += [_fact_phrase(f) for f in facts if f.kind == "relation"]
    if scene.word:
        sentences.append((f'the word "{scene.word}" is written at the bottom', f"with the text {scene.word}",
                          f'it says "{scene.word}"')[style])
    text = ". ".join(sentences) + "."
    return Caption(text, tuple(facts))
