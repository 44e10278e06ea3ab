"""The scene graph: entities with attributes, spatial relations, activities and events.

A `Scene` is the single source of truth. Captions are realised from it, statements are
checked against it (see props.py), and nothing else is ever used to decide what is true.
"""

from __future__ import annotations

from dataclasses import dataclass

from .vocab_entities import EntityType
from .vocab_settings import Setting
from .vocab_verbs import VERBS, Verb

# Relation words and their converses. "on"/"above" both put `a` higher than `b`.
CONVERSE: dict[str, str] = {
    "left": "right", "right": "left", "front": "behind", "behind": "front",
    "on": "under", "under": "on", "above": "below", "below": "above",
}
# Which ordering axis a relation speaks about, and in which direction.
AXIS: dict[str, tuple[str, int]] = {
    "left": ("x", -1), "right": ("x", 1), "front": ("z", -1), "behind": ("z", 1),
    "on": ("y", 1), "above": ("y", 1), "under": ("y", -1), "below": ("y", -1),
}


@dataclass(frozen=True)
class Entity:
    """One entity (or a group of identical ones when `count` > 1)."""

    eid: int
    etype: EntityType
    count: int = 1
    colour: str = ""
    material: str = ""
    size: str = ""
    state: str = ""
    pattern: str = ""
    garment: str = ""
    text: str = ""
    shade: str = ""  # "pale" in "pale blue": fixed per entity so captions agree
    spot: str = ""  # flavour location ("by the window"), fixed per entity for the same reason

    @property
    def noun(self) -> str:
        return self.etype.name if self.count == 1 else self.etype.plural

    @property
    def plural(self) -> bool:
        return self.count > 1

    @property
    def tags(self) -> frozenset[str]:
        extra = {self.etype.cls} | ({"surface"} if self.etype.surface else set())
        return self.etype.tags | frozenset(extra)


@dataclass(frozen=True)
class Relation:
    """`a` is `rel` of `b` (e.g. a=lamp, rel="left", b=sofa)."""

    a: int
    rel: str
    b: int


@dataclass(frozen=True)
class Activity:
    """An agent doing something; in videos the tuple order of activities is time order."""

    agent: int
    verb: str
    thing: str = ""
    patient: int = -1
    recipient: int = -1
    manner: str = ""

    @property
    def v(self) -> Verb:
        return VERBS[self.verb]

    def participants(self) -> tuple[int, ...]:
        return tuple(e for e in (self.agent, self.patient, self.recipient) if e >= 0)


@dataclass(frozen=True)
class Coref:
    """How the caption must refer to two people: pronouns, former/latter, respectively."""

    mode: str
    x: int
    y: int


@dataclass(frozen=True)
class Scene:
    """A full sampled scene; `video` scenes have ordered events in `activities`."""

    sid: str
    setting: Setting
    video: bool
    time: str
    place: str  # one of setting.names
    entities: tuple[Entity, ...]
    relations: tuple[Relation, ...] = ()
    activities: tuple[Activity, ...] = ()
    coref: Coref | None = None
    camera: str = ""

    def entity(self, eid: int) -> Entity:
        return self.entities[eid]

    def acts_of(self, eid: int) -> list[int]:
        """Indices of activities whose agent is `eid`."""
        return [i for i, a in enumerate(self.activities) if a.agent == eid]

    def busy(self) -> set[int]:
        """Entities taking part in an activity as patient or recipient (they may move)."""
        out: set[int] = set()
        for act in self.activities:
            out.update(e for e in (act.patient, act.recipient) if e >= 0)
            if self.video:
                out.add(act.agent)
        return out

    def pronoun_event(self) -> int:
        """In a "video_pronoun" scene, the event whose agent the caption names as he/she."""
        if self.coref is None or self.coref.mode != "video_pronoun":
            return -1
        for i in range(1, len(self.activities)):
            prev, act = self.activities[i - 1], self.activities[i]
            handover = prev.agent == self.coref.x and prev.recipient == self.coref.y
            if handover and act.agent == self.coref.y:
                return i
        return -1
