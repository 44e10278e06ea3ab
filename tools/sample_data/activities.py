"""Give a sampled scene its activities: one per agent in images, an event sequence in videos."""

from __future__ import annotations

import random
from dataclasses import replace
from typing import TYPE_CHECKING

from .phrases import clashes
from .scene import Activity, Entity, Scene
from .vocab_verbs import ALL_VERBS, STILL_SCALES, STILL_VERBS, VERBS, Verb
from .vocab_world import MANNER_SCALES

if TYPE_CHECKING:
    from .sampler import SceneSpec

SOLO_RATE = {"person": 0.9, "animal": 0.75, "vehicle": 0.6}
HANDOVER = ("hand", "throw")  # both in the "hands" group, like the follow-up act


def add_activities(rng: random.Random, scene: Scene, spec: SceneSpec) -> Scene:
    """Return `scene` with activities (and manners) added as `spec` asks."""
    if scene.video:
        acts = _video_events(rng, scene, spec)
    else:
        acts = _image_activities(rng, scene, spec)
    acts = _add_manners(rng, scene, acts, spec=spec)
    return replace(scene, activities=tuple(acts))


def can_do(verb: Verb, entity: Entity, scene: Scene) -> bool:
    """Whether `entity` can be the agent of `verb` in this scene's setting."""
    kind_ok = entity.etype.cls in verb.agents or entity.etype.name in verb.agents
    return kind_ok and bool(verb.domains & scene.setting.domains)


def heads(scene: Scene) -> list[str]:
    return [e.etype.head for e in scene.entities]


def _things(verb: Verb, scene: Scene) -> list[str]:
    return [t for t in verb.things if not clashes(t, heads(scene))]


def _patients(verb: Verb, scene: Scene, *, agent: int, taken: set[int]) -> list[Entity]:
    return [e for e in scene.entities if verb.ptag in e.tags and e.count == 1
            and e.eid != agent and e.eid not in taken and not e.etype.hangs]


def random_activity(rng: random.Random, scene: Scene, agent: Entity, *,
                    groups: tuple[str, ...], entity_rate: float,
                    taken: set[int] | None = None) -> Activity | None:
    """One activity for `agent` from verbs in `groups`, or None if nothing fits."""
    taken = taken or set()
    verbs = [v for v in ALL_VERBS if v.group in groups and can_do(v, agent, scene)]
    if agent.count > 1:
        verbs = [v for v in verbs if v.group != "hands" and not v.takes_entity]
    with_entity = [v for v in verbs if v.takes_entity
                   and _patients(v, scene, agent=agent.eid, taken=taken)]
    things = {v.vid: _things(v, scene) for v in verbs if not v.takes_entity}
    plain = [v for v in verbs if things.get(v.vid)]
    if with_entity and (rng.random() < entity_rate or not plain):
        verb = rng.choice(with_entity)
        patient = rng.choice(_patients(verb, scene, agent=agent.eid, taken=taken))
        recipient = -1
        if verb.prep:
            people = [e for e in scene.entities if e.etype.cls == "person" and e.count == 1
                      and e.eid not in (agent.eid, patient.eid) and e.eid not in taken]
            if not people:
                return None
            recipient = rng.choice(people).eid
        return Activity(agent.eid, verb.vid, patient=patient.eid, recipient=recipient)
    if not plain:
        return None
    verb = rng.choice(plain)
    return Activity(agent.eid, verb.vid, thing=rng.choice(things[verb.vid]))


def _groups_for(entity: Entity) -> tuple[str, ...]:
    return {"person": ("hands", "body", "social"), "animal": ("animal",),
            "vehicle": ("vehicle",)}.get(entity.etype.cls, ())


def _image_activities(rng: random.Random, scene: Scene, spec: SceneSpec) -> list[Activity]:
    acts: list[Activity] = []
    taken: set[int] = set()
    if scene.coref is not None:
        acts += _coref_pair(rng, scene, taken)
    for _ in range(spec.patient_events or (1 if rng.random() < 0.3 else 0)):
        agents = [e for e in scene.entities if e.etype.cls in ("person", "animal")
                  and e.count == 1 and e.eid not in taken]
        if not agents:
            break
        agent = rng.choice(agents)
        act = random_activity(rng, scene, agent, groups=_groups_for(agent), entity_rate=1.0,
                              taken=taken)
        if act is not None and act.patient >= 0:
            acts.append(act)
            taken.update(act.participants())
    for ent in scene.entities:
        if ent.eid in taken or rng.random() > SOLO_RATE.get(ent.etype.cls, 0.0):
            continue
        for _ in range(5):  # two agents doing the very same thing reads like a copy error
            act = random_activity(rng, scene, ent, groups=_groups_for(ent), entity_rate=0.0)
            if act is not None and all((a.verb, a.thing) != (act.verb, act.thing) for a in acts):
                acts.append(act)
                taken.add(ent.eid)
                break
    return acts


def _coref_pair(rng: random.Random, scene: Scene, taken: set[int]) -> list[Activity]:
    """Distinct hand activities for the two coreference targets (and a third person)."""
    assert scene.coref is not None
    people = [scene.coref.x, scene.coref.y]
    people += [e.eid for e in scene.entities if e.etype.cls == "person" and e.count == 1
               and e.eid not in people][:1]
    acts: list[Activity] = []
    for eid in people:
        for _ in range(20):
            act = random_activity(rng, scene, scene.entity(eid), groups=("hands",),
                                  entity_rate=0.0)
            if act is not None and all(act.verb != a.verb for a in acts):
                acts.append(act)
                taken.add(eid)
                break
    return acts


def _video_events(rng: random.Random, scene: Scene, spec: SceneSpec) -> list[Activity]:
    agents = [e for e in scene.entities if e.etype.cls in ("person", "animal") and e.count == 1]
    events: list[Activity] = []
    pair = _handover_pair(rng, scene) if scene.coref is not None else []
    n_random = max(spec.n_events - len(pair), 1)
    for _ in range(n_random * 6):
        if len(events) >= n_random:
            break
        agent = events[-1].agent if events and rng.random() < 0.3 else rng.choice(agents).eid
        act = random_activity(rng, scene, scene.entity(agent), entity_rate=0.6,
                              groups=_groups_for(scene.entity(agent)))
        if act is not None and _fresh(act, events + pair):
            events.append(act)
    at = rng.randrange(len(events) + 1)
    return events[:at] + pair + events[at:]


def _fresh(act: Activity, events: list[Activity]) -> bool:
    """An agent never repeats a verb, so (agent, verb) names one event."""
    return all((a.agent, a.verb) != (act.agent, act.verb) for a in events)


def _handover_pair(rng: random.Random, scene: Scene) -> list[Activity]:
    """X hands/throws something to Y, then Y (named by a pronoun in the caption) acts."""
    assert scene.coref is not None
    x, y = scene.entity(scene.coref.x), scene.entity(scene.coref.y)
    for _ in range(30):
        verb = VERBS[rng.choice(HANDOVER)]
        patients = _patients(verb, scene, agent=x.eid, taken={y.eid})
        if not patients:
            continue
        first = Activity(x.eid, verb.vid, patient=rng.choice(patients).eid, recipient=y.eid)
        second = random_activity(rng, scene, y, groups=("hands",), entity_rate=0.4)
        if second is not None and second.verb != first.verb and x.eid not in second.participants():
            return [first, second]
    return []


def _add_manners(rng: random.Random, scene: Scene, acts: list[Activity], *,
                 spec: SceneSpec) -> list[Activity]:
    out = []
    for act in acts:
        animate = scene.entity(act.agent).etype.cls in ("person", "animal")
        if animate and rng.random() < spec.manner_rate:
            scales = [s for s in MANNER_SCALES
                      if act.verb not in STILL_VERBS or s.key in STILL_SCALES]
            act = replace(act, manner=rng.choice(scales).words(rng.randrange(2))[0])
        out.append(act)
    movers = [i for i, a in enumerate(out) if a.verb not in STILL_VERBS
              and scene.entity(a.agent).etype.cls in ("person", "animal")]
    if spec.manner_contrast and len(movers) >= 2:
        i, j = rng.sample(movers, 2)
        scale = rng.choice(MANNER_SCALES)
        pole = rng.randrange(2)
        out[i] = replace(out[i], manner=scale.words(pole)[0])
        out[j] = replace(out[j], manner=scale.words(1 - pole)[0])
    return out
