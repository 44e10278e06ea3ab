"""Video captions: opener, cast and props, the static background, then events in order."""

from __future__ import annotations

from . import phrases as ph
from .image_caption import _intro
from .realise import Writer

VIDEO_OPENERS = (
    "The video opens on {s} {t}.", "This clip takes place {p} {s} {t}.",
    "Filmed {t}, the video shows {s}.", "A short video set {p} {s} {t}.",
    "The footage was shot {p} {s} {t}.",
)
FIRST = ("first,", "to begin,", "at the start of the clip,", "early on,")
MIDDLE = ("then", "next,", "after that,", "a moment later,", "shortly afterwards,", "soon after,")
LAST = ("finally,", "at the end,", "in the last seconds,", "to finish,")


def write_video(w: Writer) -> None:
    """Write a video caption; events are told strictly in the order they happen."""
    scene = w.scene
    opener = w.rng.choice(VIDEO_OPENERS)
    w.say(opener.format(s=scene.place, p=scene.setting.prep, t=scene.time))
    cast: list[int] = []
    for act in scene.activities:
        cast += [p for p in act.participants() if p not in cast]
    _introduce_cast(w, [e for e in cast if scene.entity(e).etype.cls in ("person", "animal")])
    for eid in cast:
        if eid not in w.introduced:
            e = scene.entity(eid)
            w.say(f"{w.np(e)} {ph.posture(e, w.rng)} {w.spot(e) or 'nearby'}.")
    background = [e for e in scene.entities if e.eid not in w.introduced and e.eid not in w.dropped]
    w.rng.shuffle(background)
    for e in background:
        for sentence in _intro(w, e):
            w.say(sentence)
    if w.rng.random() < 0.5:
        w.say(scene.camera)
    _narrate(w)
    w.stated.add(("order",))
    if scene.camera not in w.sentences and not w.brief:
        w.say(scene.camera)


def _introduce_cast(w: Writer, cast: list[int]) -> None:
    scene = w.scene
    pair = [scene.entity(e) for e in cast[:2]]
    if len(pair) == 2 and pair[0].spot == pair[1].spot and w.rng.random() < 0.7:
        first, second = pair
        where = first.spot or "in the middle of the frame"
        w.say(f"at the start, {w.np(first)} and {w.np(second)} are {where}.")
        cast = cast[2:]
    for eid in cast:
        e = scene.entity(eid)
        w.say(f"{w.np(e)} {ph.posture(e, w.rng)} {w.spot(e) or 'in the frame'}.")


def _subject(w: Writer, i: int, forced: int) -> str:
    acts = w.scene.activities
    agent = w.scene.entity(acts[i].agent)
    pron = ph.pronoun(agent)
    if i == forced:
        return pron
    if i > 0 and pron and acts[i - 1].agent == agent.eid and w.rng.random() < 0.5:
        others = [w.scene.entity(p) for p in acts[i - 1].participants() if p != agent.eid]
        if all(ph.pronoun(o) != pron for o in others):
            return pron
    return w.ref(agent.eid)


def _clause(w: Writer, i: int, forced: int) -> str:
    return f"{_subject(w, i, forced)} {w.activity_vp(i, 'third')}"


def _narrate(w: Writer) -> None:
    n = len(w.scene.activities)
    forced = w.scene.pronoun_event()
    used: list[str] = []
    i = 0
    while i < n:
        if i + 1 < n and w.rng.random() < 0.35:
            a, b = _clause(w, i, forced), _clause(w, i + 1, forced)
            w.say(w.rng.choice((f"after {a}, {b}.", f"{a}, and then {b}.",
                                f"{a} before {b}.", f"once {a}, {b}.")))
            i += 2
            continue
        pool = FIRST if i == 0 else (LAST if i == n - 1 else MIDDLE)
        fresh = [c for c in pool if c not in used] or list(pool)
        used.append(w.rng.choice(fresh))
        w.say(f"{used[-1]} {_clause(w, i, forced)}.")
        i += 1
