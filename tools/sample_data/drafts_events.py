"""Statement drafts for the categories about doing: action, adverb, temporal, coreference
and basic_event. See drafts.py for what a draft is."""

from __future__ import annotations

import random

from .activities import can_do
from .drafts import Draft, false_only
from .props import Act, Attr, Both, Manner, Order, Prop, Stated, stated_acts
from .scene import Activity, Scene
from .statements import is_unique, unique_act
from .vocab_verbs import ALL_VERBS, VERBS
from .vocab_world import COLOURS, colours_confusable, manner_scale


def _swap_agent(act: Act, eid: int) -> Act:
    return Act(eid, act.verb, act.thing, act.patient, act.recipient)


def _same_object_verbs(act: Act, scene: Scene) -> list[Act]:
    """Other verbs the agent could apply to the same object ("reads" -> "folds" a map)."""
    agent = scene.entity(act.eid)
    group = VERBS[act.verb].group
    out = []
    for v in ALL_VERBS:
        if v.vid == act.verb or v.group != group or not can_do(v, agent, scene):
            continue
        if act.patient >= 0 and v.ptag and v.ptag in scene.entity(act.patient).tags:
            if bool(v.prep) == (act.recipient >= 0):
                out.append(Act(act.eid, v.vid, patient=act.patient, recipient=act.recipient))
        elif act.thing and act.thing in v.things:
            out.append(Act(act.eid, v.vid, thing=act.thing))
    return out


def _borrowed(act: Act, scene: Scene, stated: Stated) -> list[Act]:
    """Other agents' activities given to this agent: a verb-object binding distractor."""
    agent = scene.entity(act.eid)
    out = []
    for _, other in stated_acts(scene, stated):
        if other.agent == act.eid or not can_do(other.v, agent, scene):
            continue
        if act.eid in (other.patient, other.recipient):
            continue
        out.append(Act(act.eid, other.verb, other.thing, other.patient, other.recipient))
    return out


def _random_verbs(act: Act, scene: Scene, rng: random.Random) -> list[Act]:
    agent = scene.entity(act.eid)
    group = VERBS[act.verb].group
    verbs = [v for v in ALL_VERBS if v.group == group and not v.takes_entity and v.things
             and v.vid != act.verb and can_do(v, agent, scene)]
    rng.shuffle(verbs)
    return [Act(act.eid, v.vid, thing=rng.choice(v.things)) for v in verbs[:4]]


def draft_action(scene: Scene, stated: Stated, rng: random.Random) -> Draft | None:
    acts = [Act.of(a) for _, a in stated_acts(scene, stated)]
    rng.shuffle(acts)
    drafts = []
    for act in acts:
        same, borrowed = _same_object_verbs(act, scene), _borrowed(act, scene, stated)
        rng.shuffle(same)
        rng.shuffle(borrowed)
        cands: list[Prop] = [*borrowed[:1], *same[:2], *borrowed[1:2],
                             *_random_verbs(act, scene, rng)]
        drafts.append(Draft(act, tuple(false_only(cands, scene, stated)), "act"))
    return _richest(drafts)


def _richest(drafts: list[Draft]) -> Draft | None:
    """The first draft with three negatives, else the first with two."""
    for need in (3, 2):
        for draft in drafts:
            if len(draft.negatives) >= need:
                return draft
    return None


def draft_adverb(scene: Scene, stated: Stated, rng: random.Random) -> Draft | None:
    acts = [(Act.of(a), a.manner) for i, a in stated_acts(scene, stated) if ("manner", i) in stated]
    if not acts:
        return None
    rng.shuffle(acts)
    pairs = [(x, y) for x in acts for y in acts if x[0] != y[0] and _opposed(x[1], y[1])]
    if pairs and rng.random() < 0.75:
        (a, ma), (b, mb) = pairs[0]
        wa, wb = _synonym(ma, rng), _synonym(mb, rng)
        negs: list[Prop] = [Both(Manner(a, wb), Manner(b, wa)),
                            Both(Manner(a, _antonym(ma, rng)), Manner(b, wb)),
                            Both(Manner(a, wa), Manner(b, _antonym(mb, rng)))]
        return Draft(Both(Manner(a, wa), Manner(b, wb)), tuple(negs), "manner")
    act, manner = acts[0]
    scale = manner_scale(manner)
    assert scale is not None
    opposite = list(scale.words(1 - scale.pole(manner)))
    rng.shuffle(opposite)
    negs = [Manner(act, w) for w in opposite[:3]]
    return Draft(Manner(act, _synonym(manner, rng)), tuple(negs), "manner")


def _opposed(m1: str, m2: str) -> bool:
    scale = manner_scale(m1)
    return scale is not None and scale.pole(m2) == 1 - scale.pole(m1)


def _synonym(manner: str, rng: random.Random) -> str:
    scale = manner_scale(manner)
    assert scale is not None
    return rng.choice(scale.words(scale.pole(manner)))


def _antonym(manner: str, rng: random.Random) -> str:
    scale = manner_scale(manner)
    assert scale is not None
    return rng.choice(scale.words(1 - scale.pole(manner)))


def draft_temporal(scene: Scene, stated: Stated, rng: random.Random) -> Draft | None:
    if ("order",) not in stated:
        return None
    acts = [Act.of(a) for _, a in stated_acts(scene, stated)]
    n = len(acts)
    if n < 3:
        return None
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
    rng.shuffle(pairs)
    pairs.sort(key=lambda ij: -(ij[0] > 0) - (ij[1] < n - 1))
    i, j = pairs[0]
    a, b = acts[i], acts[j]
    negs: list[Prop] = [Order(b, a)]
    negs += [Order(acts[k], b) for k in range(j + 1, n)][:1]
    negs += [Order(a, acts[k]) for k in range(i)][-1:]
    if rng.random() < 0.3:
        negs += [Order(acts[k], a) for k in range(j + 1, n)][-1:]
    return Draft(Order(a, b), tuple(negs), "order")


def draft_coreference(scene: Scene, stated: Stated, rng: random.Random) -> Draft | None:
    if scene.coref is None:
        return None
    x, y = scene.coref.x, scene.coref.y
    if scene.video:
        target, other = y, x
        idx = scene.pronoun_event()
        own = Act.of(scene.activities[idx]) if idx >= 0 else None
        if own is not None and not is_unique(scene, own):
            own = None
    else:
        target, other = (x, y) if rng.random() < 0.5 else (y, x)
        own = unique_act(scene, target)
    if own is None:
        return None
    if not scene.video and rng.random() < 0.4:
        return _coref_attr(scene, stated, target=target, other=other, rng=rng)
    people = [e.eid for e in scene.entities if e.etype.cls == "person" and e.eid not in (x, y)]
    cands: list[Prop] = [_swap_agent(own, other)]
    mate = unique_act(scene, other)
    if mate is not None and not scene.video:
        cands.append(_swap_agent(mate, target))
    cands += [_swap_agent(own, z) for z in people]
    cands += _same_object_verbs(own, scene)[:1] + _borrowed(own, scene, stated)[:1]
    sane = [c for c in cands if isinstance(c, Act) and c.eid not in (c.patient, c.recipient)]
    negs = false_only(list(sane), scene, stated)
    if len(negs) < 2:  # top up with plain verb swaps so few instances have a single negative
        negs += false_only(list(_random_verbs(own, scene, rng)), scene, stated)[:2 - len(negs)]
    return Draft(own, tuple(negs), "coref_act")


def _coref_attr(scene: Scene, stated: Stated, *, target: int, other: int,
                rng: random.Random) -> Draft | None:
    if unique_act(scene, other) is None:
        return None
    mine, theirs = scene.entity(target).colour, scene.entity(other).colour
    spare = [c for c in rng.sample(COLOURS, len(COLOURS))
             if not colours_confusable(c, mine) and not colours_confusable(c, theirs)]
    cands: list[Prop] = [Attr(target, "colour", theirs), Attr(other, "colour", mine),
                         Attr(target, "colour", spare[0])]
    negs = tuple(false_only(cands, scene, stated))
    return Draft(Attr(target, "colour", mine), negs, "coref_attr")


def draft_basic_event(scene: Scene, stated: Stated, rng: random.Random) -> Draft | None:
    acts = [a for _, a in stated_acts(scene, stated)
            if scene.entity(a.agent).etype.cls in ("person", "animal")]
    rng.shuffle(acts)
    acts.sort(key=lambda a: a.patient < 0)
    drafts = [Draft(Act.of(a), tuple(false_only(_event_negatives(a, scene, rng), scene, stated)),
                    "act") for a in acts]
    return _richest(drafts)


def _event_negatives(act: Activity, scene: Scene, rng: random.Random) -> list[Prop]:
    base = Act.of(act)
    verb = act.v
    out: list[Prop] = []
    if act.recipient >= 0:
        out.append(Act(act.recipient, act.verb, patient=act.patient, recipient=act.agent))
    elif act.patient >= 0 and can_do(verb, scene.entity(act.patient), scene) and (
            verb.ptag in scene.entity(act.agent).tags):
        out.append(Act(act.patient, act.verb, patient=act.agent))
    if verb.contrast:
        out.append(Act(act.agent, verb.contrast, patient=act.patient, recipient=act.recipient))
    if act.patient >= 0:
        swaps = [e.eid for e in scene.entities if verb.ptag in e.tags and e.count == 1
                 and e.eid not in act.participants() and not e.etype.hangs]
        out += [Act(act.agent, act.verb, patient=p, recipient=act.recipient) for p in swaps[:1]]
    if act.recipient >= 0:
        others = [e.eid for e in scene.entities if e.etype.cls == "person" and e.count == 1
                  and e.eid not in act.participants()]
        out += [Act(act.agent, act.verb, patient=act.patient, recipient=o) for o in others[:1]]
    other_things = [t for t in verb.things if act.thing and t != act.thing]
    out += [Act(act.agent, act.verb, thing=t) for t in other_things[:1]]
    agents = [e.eid for e in scene.entities if e.count == 1 and e.eid not in act.participants()
              and e.etype.cls == scene.entity(act.agent).etype.cls and can_do(verb, e, scene)]
    out += [_swap_agent(base, a) for a in agents[:3]]
    out += _same_object_verbs(base, scene)[:1]
    head, tail = out[:1], out[1:]
    rng.shuffle(tail)
    return head + tail
