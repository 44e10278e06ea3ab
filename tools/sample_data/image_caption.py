"""Image captions: an opener, the coreference pair (if any), then one sentence per entity."""

from __future__ import annotations

from . import phrases as ph
from .realise import IMAGE_OPENERS, Writer, acts_by_agent
from .scene import Entity


def write_image(w: Writer) -> None:
    """Write the whole image caption into `w` (flavour text is added by `w.finish`)."""
    scene = w.scene
    opener = w.rng.choice(IMAGE_OPENERS)
    w.say(opener.format(s=scene.place, p=scene.setting.prep,
                        t=scene.time, T=ph.cap(scene.time)))
    if scene.coref is not None:
        _coref_block(w)
    for eid in _intro_order(w):
        if eid not in w.introduced:
            for sentence in _intro(w, scene.entity(eid)):
                w.say(sentence)


def _intro_order(w: Writer) -> list[int]:
    """Random order, but patients/recipients come before the agents acting on them."""
    order = [e.eid for e in w.scene.entities if e.eid not in w.dropped]
    w.rng.shuffle(order)
    objects = {p for a in w.scene.activities for p in (a.patient, a.recipient) if p >= 0}
    return sorted(order, key=lambda eid: eid not in objects)


def _intro(w: Writer, e: Entity) -> list[str]:
    act = acts_by_agent(w.scene).get(e.eid)
    np = w.np(e)
    locs = w.rel_phrases(e)
    # At most two relations in the introduction; the rest get sentences of their own.
    extra = [f"{ph.the(e)} {ph.be(e)} also {phrase}." for phrase in locs[2:]]
    loc = " and ".join(locs[:2]) if locs else (w.spot(e) if w.rng.random() < 0.85 else "")
    if act is not None:
        return _intro_active(w, e, np, loc=loc, act=act) + extra
    return [_intro_static(w, e, np, loc=loc)] + extra


def _intro_active(w: Writer, e: Entity, np: str, *, loc: str, act: int) -> list[str]:
    vp = w.activity_vp(act, "ing")
    aux = ph.be(e)
    if not loc:
        return [w.rng.choice((f"{np} {aux} {vp}.", f"there {aux} {np} {vp}."))]
    options = [f"{loc}, {np} {aux} {vp}."]
    if not _has_postmodifier(np):
        options.append(f"{np} {aux} {vp}, {loc}.")
    if w.scene.activities[act].v.group == "body":
        return [w.rng.choice(options)]
    options.append(f"{np} {ph.posture(e, w.rng)} {loc}, {vp}.")
    pron = ph.pronoun(e)
    if pron and e.etype.cls == "person" and _sole_referent(w, e) and w.rng.random() < 0.35:
        # One list item, so no flavour sentence can come between the name and the pronoun.
        return [f"{ph.cap(np)} {ph.posture(e, w.rng)} {loc}. {ph.cap(pron)} {aux} {vp}."]
    return [w.rng.choice(options)]


def _sole_referent(w: Writer, e: Entity) -> bool:
    """No other introduced entity could be the antecedent of `e`'s pronoun."""
    pron = ph.pronoun(e)
    return all(ph.pronoun(w.scene.entity(o)) != pron for o in w.introduced if o != e.eid)


def _intro_static(w: Writer, e: Entity, np: str, *, loc: str) -> str:
    aux = ph.be(e)
    post = ph.posture(e, w.rng)
    if e.etype.cls != "person" and any(e.eid == a.patient for a in w.scene.activities):
        # Something being thrown or carried does not "sit" anywhere.
        where = f" {loc}" if loc else ""
        return w.rng.choice((f"there {aux} {np}{where}.", f"the frame also includes {np}."))
    if loc and _has_postmodifier(np):
        return w.rng.choice((f"{loc} {post} {np}.", f"{loc}, there {aux} {np}."))
    if loc:
        return w.rng.choice((f"{np} {post} {loc}.", f"{loc} {post} {np}.",
                             f"there {aux} {np} {loc}.", f"{loc}, there {aux} {np}."))
    options = [f"nearby, there {aux} {np}.", f"{np} {post} nearby.", f"{np} {aux} also in view."]
    if len(w.introduced) > 1:
        options += [f"there {aux} also {np} in the frame.", f"the frame also includes {np}."]
    return w.rng.choice(options)


def _coref_block(w: Writer) -> None:
    """Introduce the pair together, then say what each does via pronouns or "the former"."""
    scene = w.scene
    assert scene.coref is not None
    x, y = scene.entity(scene.coref.x), scene.entity(scene.coref.y)
    acts = acts_by_agent(scene)
    both = f"{w.np(x)} and {w.np(y)}"
    spot = w.spot(x) or "side by side"
    vx, vy = w.activity_vp(acts[x.eid], "ing"), w.activity_vp(acts[y.eid], "ing")
    if scene.coref.mode == "respectively":
        w.say(w.rng.choice((f"{both}, {spot}, are {vx} and {vy}, respectively.",
                            f"{both} are {vx} and {vy}, respectively, {spot}.")))
        return
    first = f"{both} {w.rng.choice(('are', 'stand', 'can be seen'))} {spot}."
    if scene.coref.mode == "former_latter":
        second = w.rng.choice((f"the former is {vx}, while the latter is {vy}.",
                               f"the latter is {vy}; the former is {vx}."))
    else:
        px, py = ph.pronoun(x), ph.pronoun(y)
        second = w.rng.choice((f"{px} is {vx}, while {py} is {vy}.",
                               f"{py} is {vy}, and {px} is {vx}.",
                               f"{px} is busy {vx}; {py}, meanwhile, is {vy}."))
    # One item, so flavour text never separates the pair from "she"/"the former".
    w.say(f"{ph.cap(first)} {ph.cap(second)}")


def _has_postmodifier(np: str) -> bool:
    """A noun phrase ending in a clause reads badly with a location glued after it."""
    return '"' in np or " made of " in np
