"""Propositions about a scene and their truth given what a caption actually stated.

`truth` returns True (the caption entails it), False (the caption contradicts it) or None
(the caption does not decide it). A positive must be True and every negative False; the
evidence is the scene graph restricted to the facts the realiser marked as stated.
Stated-fact keys: ("colour"|"material"|"size"|"state"|"pattern"|"count"|"text", eid),
("rel", index), ("act", index), ("manner", index) and ("order",).
"""

from __future__ import annotations

from dataclasses import dataclass

from .scene import AXIS, Activity, Scene
from .vocab_verbs import VERBS, compatible
from .vocab_world import (
    SIZE_SCALES,
    STATE_SCALES,
    colours_confusable,
    manner_scale,
    materials_confusable,
)

Stated = frozenset[tuple[object, ...]]


@dataclass(frozen=True)
class Attr:
    eid: int
    kind: str  # colour | material | size | state | pattern
    value: str


@dataclass(frozen=True)
class Rel:
    a: int
    rel: str  # left | right | front | behind | above | below
    b: int


@dataclass(frozen=True)
class Count:
    eid: int
    n: int


@dataclass(frozen=True)
class Act:
    """`eid` does `verb` (to `thing`, or to entity `patient`, giving it to `recipient`)."""

    eid: int
    verb: str
    thing: str = ""
    patient: int = -1
    recipient: int = -1

    @staticmethod
    def of(activity: Activity) -> Act:
        return Act(activity.agent, activity.verb, activity.thing, activity.patient,
                   activity.recipient)


@dataclass(frozen=True)
class Manner:
    act: Act
    adverb: str


@dataclass(frozen=True)
class Order:
    """`first` happens before `second`."""

    first: Act
    second: Act


@dataclass(frozen=True)
class Text:
    eid: int
    text: str


@dataclass(frozen=True)
class Both:
    left: Prop
    right: Prop


Prop = Attr | Rel | Count | Act | Manner | Order | Text | Both


def truth(prop: Prop, scene: Scene, stated: Stated) -> bool | None:
    """Whether the caption that stated `stated` about `scene` entails/contradicts `prop`."""
    if isinstance(prop, Both):
        left, right = truth(prop.left, scene, stated), truth(prop.right, scene, stated)
        if left is False or right is False:
            return False
        return True if left and right else None
    if isinstance(prop, Attr):
        return _attr_truth(prop, scene, stated)
    if isinstance(prop, Rel):
        return _rel_truth(prop, scene, stated)
    if isinstance(prop, Count):
        return prop.n == scene.entity(prop.eid).count if ("count", prop.eid) in stated else None
    if isinstance(prop, Text):
        return prop.text == scene.entity(prop.eid).text if ("text", prop.eid) in stated else None
    if isinstance(prop, Act):
        return _act_truth(prop, scene, stated)
    if isinstance(prop, Manner):
        return _manner_truth(prop, scene, stated)
    return _order_truth(prop, scene, stated)


def _attr_truth(prop: Attr, scene: Scene, stated: Stated) -> bool | None:
    if (prop.kind, prop.eid) not in stated:
        return None
    entity = scene.entity(prop.eid)
    true = str(getattr(entity, prop.kind))
    if prop.kind in ("colour", "material"):
        if true == prop.value:
            return True
        similar = colours_confusable if prop.kind == "colour" else materials_confusable
        return None if similar(true, prop.value) else False
    if prop.kind in ("size", "state"):
        table = SIZE_SCALES if prop.kind == "size" else STATE_SCALES
        key = entity.etype.size_scale if prop.kind == "size" else entity.etype.state_scale
        scale = table[key]
        got, want = scale.pole(true), scale.pole(prop.value)
        return None if want < 0 else got == want
    return true == prop.value


def _rel_truth(prop: Rel, scene: Scene, stated: Stated) -> bool | None:
    axis, sign = AXIS[prop.rel]
    edges: dict[int, list[int]] = {}
    for i, rel in enumerate(scene.relations):
        if ("rel", i) not in stated or AXIS[rel.rel][0] != axis:
            continue
        lo, hi = (rel.a, rel.b) if AXIS[rel.rel][1] < 0 else (rel.b, rel.a)
        edges.setdefault(lo, []).append(hi)
    lo, hi = (prop.a, prop.b) if sign < 0 else (prop.b, prop.a)
    if _reaches(edges, lo, hi):
        return True
    return False if _reaches(edges, hi, lo) else None


def _reaches(edges: dict[int, list[int]], start: int, goal: int) -> bool:
    todo, seen = [start], {start}
    while todo:
        node = todo.pop()
        for nxt in edges.get(node, []):
            if nxt == goal:
                return True
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return False


def stated_acts(scene: Scene, stated: Stated) -> list[tuple[int, Activity]]:
    return [(i, a) for i, a in enumerate(scene.activities) if ("act", i) in stated]


def matches(prop: Act, act: Activity) -> bool:
    """Whether `prop` describes exactly `act` (an empty thing matches any thing)."""
    return (prop.eid, prop.verb, prop.patient, prop.recipient) == (
        act.agent, act.verb, act.patient, act.recipient) and prop.thing in ("", act.thing)


def _act_truth(prop: Act, scene: Scene, stated: Stated) -> bool | None:
    acts = stated_acts(scene, stated)
    if any(matches(prop, a) for _, a in acts):
        return True
    verb = VERBS[prop.verb]
    mine = [a for _, a in acts if a.agent == prop.eid]
    if any(a.verb != prop.verb and compatible(a.verb, prop.verb) and a.patient == prop.patient
           for a in mine):
        return None  # an overlapping description ("sniffs the box" vs "sniffs the air")
    for _, act in acts:
        # Closed world: one agent does one thing per verb group in what the caption shows.
        same_slot = act.agent == prop.eid and act.v.group == verb.group
        if same_slot and not compatible(act.verb, prop.verb):
            return False
        # Someone else did this (or the contrasting) thing to the same patient.
        if act.verb in (prop.verb, verb.contrast) and prop.patient >= 0 and (
                set(act.participants()) & ({prop.patient, prop.recipient} - {-1})):
            return False
    return None


def _manner_truth(prop: Manner, scene: Scene, stated: Stated) -> bool | None:
    for i, act in stated_acts(scene, stated):
        if not matches(prop.act, act) or ("manner", i) not in stated:
            continue
        scale = manner_scale(act.manner)
        if scale is None or scale.pole(prop.adverb) < 0:
            return None
        return scale.pole(prop.adverb) == scale.pole(act.manner)
    return None


def _order_truth(prop: Order, scene: Scene, stated: Stated) -> bool | None:
    if ("order",) not in stated:
        return None
    acts = stated_acts(scene, stated)
    first = [i for i, a in acts if matches(prop.first, a)]
    second = [i for i, a in acts if matches(prop.second, a)]
    if len(first) != 1 or len(second) != 1 or first == second:
        return None
    return first[0] < second[0]
