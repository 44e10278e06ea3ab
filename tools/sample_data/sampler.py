"""Random scene sampling: pick a setting, entities, attributes, relations and activities.

`sample_scene` only draws from its `random.Random`, so the same seed always gives the same
scene. It never iterates over a set, so the result does not depend on PYTHONHASHSEED.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace

from .activities import add_activities
from .phrases import clashes
from .scene import Coref, Entity, Relation, Scene
from .spots import assign_spots
from .vocab_entities import ALL_TYPES, PEOPLE, EntityType
from .vocab_settings import SETTINGS, Setting
from .vocab_world import (
    CAMERA_MOVES,
    COLOUR_SHADES,
    DARK_COLOURS,
    GARMENTS_ANY,
    GARMENTS_TEXT,
    NEUTRALS,
    PATTERNS,
    SIZE_SCALES,
    STATE_SCALES,
    TEXT_POOLS,
    TIMES,
    colours_confusable,
)

UNDERABLE = ("table", "chair", "bench", "stool", "piano", "armchair")


@dataclass(frozen=True)
class SceneSpec:
    """What a scene must contain so that a given statement category can be built from it."""

    video: bool = False
    n_entities: int = 5
    n_people: int = 2
    n_animals: int = 1
    groups: int = 0
    texts: int = 0
    rel_chain: bool = False
    n_events: int = 0
    manner_rate: float = 0.35
    manner_contrast: bool = False
    coref: str = ""
    patient_events: int = 0


def sample_scene(rng: random.Random, sid: str, spec: SceneSpec) -> Scene:
    """Draw one scene that satisfies `spec` as far as the setting allows."""
    setting = rng.choice(SETTINGS)
    types = _pick_types(rng, setting, spec)
    entities = _make_entities(rng, types, spec)
    coref = None
    if spec.coref:
        people = [e.eid for e in entities if e.etype.cls == "person" and e.count == 1]
        coref = Coref(spec.coref, people[0], people[1])
    scene = Scene(sid, setting, spec.video, rng.choice(TIMES), rng.choice(setting.names),
                  tuple(entities), coref=coref,
                  camera=rng.choice(CAMERA_MOVES) if spec.video else "")
    scene = add_activities(rng, scene, spec)
    scene = replace(scene, relations=_relations(rng, scene, spec))
    return replace(scene, entities=assign_spots(rng, scene))


def _pick_types(rng: random.Random, setting: Setting, spec: SceneSpec) -> list[EntityType]:
    fits = [t for t in ALL_TYPES if t.domains & setting.domains]
    people = _pick_people(rng, fits, spec)
    chosen: list[EntityType] = list(people)
    animals = [t for t in fits if t.cls == "animal"]
    _take(rng, chosen, animals, n=spec.n_animals)
    carriers = [t for t in fits if t.text_pool and t.cls != "person"]
    _take(rng, chosen, carriers, n=spec.texts)
    if spec.video or spec.patient_events:
        portable = [t for t in fits if "portable" in t.tags and t.cls == "object"]
        _take(rng, chosen, portable, n=2)
    rest = [t for t in fits if t.cls in ("object", "vehicle", "sign")]
    want = max(spec.n_entities, len(chosen) + 1)
    _take(rng, chosen, rest, n=want - len(chosen))
    return chosen


def _pick_people(rng: random.Random, fits: list[EntityType], spec: SceneSpec) -> list[EntityType]:
    pool = [t for t in fits if t.cls == "person"]
    if spec.coref:
        # Gendered nouns only, so every "she"/"he" in the caption has exactly one reading.
        pool = [t for t in PEOPLE if t.gender]
        first = rng.choice(pool)
        if spec.coref in ("pronoun", "video_pronoun"):
            second = rng.choice([t for t in pool if t.gender != first.gender])
        else:
            second = rng.choice([t for t in pool if t.head != first.head])
        chosen = [first, second]
        if spec.coref == "video_pronoun":
            # Extra people share the giver's gender, so "he"/"she" can only mean the receiver.
            pool = [t for t in pool if t.gender == first.gender]
        _take(rng, chosen, pool, n=spec.n_people - 2)
        return chosen
    chosen = []
    _take(rng, chosen, pool, n=spec.n_people)
    return chosen


def _take(rng: random.Random, chosen: list[EntityType], pool: list[EntityType], *,
          n: int) -> None:
    """Append up to `n` types from `pool` whose head noun is not used yet."""
    order = list(pool)
    rng.shuffle(order)
    heads = [c.head for c in chosen]
    signs = sum(c.cls == "sign" for c in chosen)
    for t in order:
        if n <= 0:
            return
        if t.head in heads or (t.cls == "sign" and signs >= 2) or clashes(t.name, heads):
            continue
        if any(t.head in c.name.split() for c in chosen):
            continue
        chosen.append(t)
        heads.append(t.head)
        signs += t.cls == "sign"
        n -= 1


def _make_entities(rng: random.Random, types: list[EntityType], spec: SceneSpec) -> list[Entity]:
    used: list[str] = []
    entities = [_attributes(rng, eid, t, used=used) for eid, t in enumerate(types)]
    entities = _assign_counts(rng, entities, spec)
    return _assign_texts(rng, entities, spec)


def _attributes(rng: random.Random, eid: int, etype: EntityType, *, used: list[str]) -> Entity:
    colour = ""
    if etype.colours and (etype.cls == "person" or rng.random() < 0.85):
        fresh = [c for c in etype.colours if not any(colours_confusable(c, u) for u in used)]
        colour = rng.choice(fresh or list(etype.colours))
        used.append(colour)
    material = rng.choice(etype.materials) if etype.materials and rng.random() < 0.6 else ""
    size = ""
    if etype.size_scale and rng.random() < 0.3:
        scale = SIZE_SCALES[etype.size_scale]
        size = rng.choice((scale.low[0], scale.high[0]))
    state = ""
    if etype.state_scale and rng.random() < 0.3:
        scale = STATE_SCALES[etype.state_scale]
        state = rng.choice((scale.low[0], scale.high[0]))
    pattern = rng.choice(PATTERNS[:-1]) if etype.patterns and rng.random() < 0.35 else ""
    garment = rng.choice(GARMENTS_ANY) if etype.cls == "person" else ""
    shade = ""
    plain = NEUTRALS + DARK_COLOURS
    if colour and etype.cls != "animal" and colour not in plain and rng.random() < 0.15:
        shade = rng.choice(COLOUR_SHADES)
    return Entity(eid, etype, colour=colour, material=material, size=size, state=state,
                  pattern=pattern, garment=garment, shade=shade)


def _assign_counts(rng: random.Random, entities: list[Entity], spec: SceneSpec) -> list[Entity]:
    protected = 2 if spec.coref else 0
    if spec.video:
        protected = sum(e.etype.cls == "person" for e in entities)
    pool = [e for e in entities[protected:] if e.etype.countable and not e.etype.text_pool
            and e.etype.cls != "sign"]
    rng.shuffle(pool)
    counts = rng.sample(range(2, 8), k=min(spec.groups, len(pool)))
    out = list(entities)
    for entity, n in zip(pool, counts, strict=False):
        out[entity.eid] = replace(entity, count=n, state="")
    return out


def _assign_texts(rng: random.Random, entities: list[Entity], spec: SceneSpec) -> list[Entity]:
    out = list(entities)
    used: list[str] = []
    for e in entities:
        pool_name = e.etype.text_pool
        if e.etype.cls == "person" and e.count == 1 and rng.random() < 0.12:
            pool_name = "name"
        if not pool_name or e.count > 1 or (not spec.texts and rng.random() < 0.5):
            continue
        text = rng.choice([t for t in TEXT_POOLS[pool_name] if t not in used])
        used.append(text)
        garment = rng.choice(GARMENTS_TEXT) if e.etype.cls == "person" else e.garment
        out[e.eid] = replace(e, text=text, garment=garment)
    return out


def _relations(rng: random.Random, scene: Scene, spec: SceneSpec) -> tuple[Relation, ...]:
    busy = scene.busy()
    static = [e for e in scene.entities if e.eid not in busy]
    rng.shuffle(static)
    if scene.coref is not None:
        static.sort(key=lambda e: e.eid not in (scene.coref.x, scene.coref.y))  # type: ignore[union-attr]
    rels: list[Relation] = []
    if spec.rel_chain and len(static) >= 3:
        rel = rng.choice(("left", "right", "front", "behind"))
        a, b, c = static[0], static[1], static[2]
        if not (a.etype.hangs or b.etype.hangs or c.etype.hangs) or rel in ("left", "right"):
            rels += [Relation(b.eid, rel, a.eid), Relation(c.eid, rel, b.eid)]
    linked = {r.a for r in rels} | {r.b for r in rels}
    for i, ent in enumerate(static[1:], start=1):
        if ent.eid in linked or rng.random() < 0.15:
            continue
        if scene.coref is not None and ent.eid == scene.coref.y:
            continue  # the coreference pair is introduced together, with no relation
        anchor = static[rng.randrange(i)]
        rels.append(_relation_between(rng, ent, anchor))
        linked.update((ent.eid, anchor.eid))
    return tuple(rels)


def _relation_between(rng: random.Random, new: Entity, anchor: Entity) -> Relation:
    options: list[Relation] = []
    for x, y in ((new, anchor), (anchor, new)):
        if x.etype.hangs and not y.etype.hangs:
            options += [Relation(x.eid, "above", y.eid)] * 3
        if x.etype.small and y.etype.surface and not x.etype.hangs and x.count <= 3:
            options += [Relation(x.eid, "on", y.eid)] * 2
            if y.etype.name in UNDERABLE:
                options.append(Relation(x.eid, "under", y.eid))
    flat = ("left", "right") if new.etype.hangs or anchor.etype.hangs else (
        "left", "right", "left", "right", "front", "behind")
    options += [Relation(new.eid, rng.choice(flat), anchor.eid)] * 3
    return rng.choice(options)
