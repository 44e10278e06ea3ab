"""Flavour locations ("by the window"): one per group of related entities, fixed per scene.

Entities linked by a spatial relation, by an activity in a still image, or introduced
together as a coreference pair share a location, so a caption can never put a mug "on the
windowsill" and also on top of a crate that stands "by the door".
"""

from __future__ import annotations

import random
from dataclasses import replace

from .phrases import clashes
from .scene import Entity, Scene

HIGH_SPOTS = ("on the far wall", "above the doorway", "near the ceiling", "on the back wall")
HIGH_SPOTS_OUT = ("on a tall post", "overhead", "above the entrance", "on a metal pole")


def assign_spots(rng: random.Random, scene: Scene) -> tuple[Entity, ...]:
    """`scene.entities` with a `spot` each; related entities share one."""
    parent = list(range(len(scene.entities)))

    def root(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    links = [(r.a, r.b) for r in scene.relations]
    if not scene.video:  # in a still, whoever acts on something is where that thing is
        links += [(a.agent, p) for a in scene.activities for p in a.participants()]
    if scene.coref is not None:
        links.append((scene.coref.x, scene.coref.y))
    for a, b in links:
        parent[root(a)] = root(b)
    groups: dict[int, list[Entity]] = {}
    for e in scene.entities:
        groups.setdefault(root(e.eid), []).append(e)
    heads = [e.etype.head for e in scene.entities]
    out = list(scene.entities)
    for members in groups.values():
        options = [p for p in _pool(scene, members) if not clashes(p, heads)]
        spot = rng.choice(options) if options else ""
        for e in members:
            out[e.eid] = replace(e, spot=spot)
    return tuple(out)


def _pool(scene: Scene, members: list[Entity]) -> tuple[str, ...]:
    if len(members) == 1 and members[0].etype.hangs:
        return HIGH_SPOTS if scene.setting.indoor else HIGH_SPOTS_OUT
    if all(e.etype.small for e in members):
        return scene.setting.surfaces
    return scene.setting.spots
