"""Render propositions as one-sentence statements.

A positive and its negatives are rendered with the same `Style`, so a negative differs from
its positive only where its proposition differs (a minimal edit of the same sentence).
"""

from __future__ import annotations

from dataclasses import dataclass

from . import phrases as ph
from .props import Act, Attr, Both, Count, Manner, Order, Prop, Rel, Text
from .scene import Activity, Scene


@dataclass(frozen=True)
class Style:
    """Which template family and variant to use; `ctx` names the medium ("image", "clip")."""

    family: str  # rel | count | attr | act | coref_act | coref_attr | manner | order | text
    variant: int
    ctx: str
    digits: bool = False


def render(prop: Prop, scene: Scene, style: Style) -> str:
    """One sentence for `prop`, capitalised and ending with a full stop."""
    fn = {"rel": _rel, "count": _count, "attr": _attr, "act": _act, "coref_act": _coref_act,
          "coref_attr": _coref_attr, "manner": _manner, "order": _order, "text": _text}
    return ph.cap(fn[style.family](prop, scene, style)).rstrip(".") + "."


def ref(scene: Scene, eid: int, *, desc: bool = False) -> str:
    """ "the man" or, with `desc`, "the man in the green coat" / "the blue mug"."""
    e = scene.entity(eid)
    if not desc or not e.colour:
        return ph.the(e)
    if e.etype.cls == "person":
        return f"the {e.noun} in the {e.colour} {e.garment}"
    return f"the {ph.colour_word(e, e.colour)} {e.noun}"


def _vp(act: Act, scene: Scene, form: str) -> str:
    activity = Activity(act.eid, act.verb, act.thing, act.patient, act.recipient)
    return ph.verb_phrase(activity, scene, form)


def _be(scene: Scene, eid: int) -> str:
    return ph.be(scene.entity(eid))


def _rel(prop: Prop, scene: Scene, st: Style) -> str:
    assert isinstance(prop, Rel)
    a, b = ref(scene, prop.a), ref(scene, prop.b)
    phrase = ph.REL_STATEMENT[prop.rel][st.variant % 3]
    be = _be(scene, prop.a)
    return (f"{a} {be} {phrase} {b} in the {st.ctx}", f"in this {st.ctx}, {a} {be} {phrase} {b}",
            f"{a} can be seen {phrase} {b} in the {st.ctx}",
            f"looking at the {st.ctx}, {a} {be} {phrase} {b}")[st.variant % 4]


def _n(n: int, st: Style) -> str:
    return str(n) if st.digits else ph.NUM_WORDS[n]


def _count(prop: Prop, scene: Scene, st: Style) -> str:
    if isinstance(prop, Both):
        assert isinstance(prop.left, Count) and isinstance(prop.right, Count)
        one, two = (_counted(c, scene, st) for c in (prop.left, prop.right))
        return (f"the {st.ctx} shows {one} and {two}",
                f"in this {st.ctx} there are {one} and {two}")[st.variant % 2]
    assert isinstance(prop, Count)
    what = _counted(prop, scene, st)
    verb = "is" if prop.n == 1 else "are"
    return (f"there {verb} exactly {what} in the {st.ctx}", f"the {st.ctx} shows {what} in total",
            f"exactly {what} can be seen in the {st.ctx}",
            f"you can count {what} in this {st.ctx}")[st.variant % 4]


def _counted(prop: Count, scene: Scene, st: Style) -> str:
    e = scene.entity(prop.eid)
    return f"{_n(prop.n, st)} {e.etype.name if prop.n == 1 else e.etype.plural}"


def _attr_value(prop: Attr, scene: Scene, st: Style) -> str:
    e = scene.entity(prop.eid)
    if prop.kind == "colour":
        return ph.colour_word(e, prop.value)
    if prop.kind == "material":
        return f"made of {ph.material_noun(prop.value)}"
    if prop.kind == "pattern":
        return f"decorated with a {prop.value} pattern"
    words = ph.size_words(e, prop.value) if prop.kind == "size" else ph.state_words(e, prop.value)
    return words[st.variant % len(words)]


def _attr(prop: Prop, scene: Scene, st: Style) -> str:
    if isinstance(prop, Both):
        assert isinstance(prop.left, Attr) and isinstance(prop.right, Attr)
        e = scene.entity(prop.left.eid)
        value = f"{_attr_value(prop.left, scene, st)} and {_attr_value(prop.right, scene, st)}"
    else:
        assert isinstance(prop, Attr)
        e = scene.entity(prop.eid)
        if e.etype.cls == "person" and prop.kind == "colour":
            return _garment(prop, scene, st)
        value = _attr_value(prop, scene, st)
    be = ph.be(e)
    return (f"the {e.noun} in the {st.ctx} {be} {value}",
            f"in this {st.ctx}, the {e.noun} {be} {value}",
            f"the {e.noun} shown in the {st.ctx} {be} {value}",
            f"looking closely, the {e.noun} in this {st.ctx} {be} {value}")[st.variant % 4]


def _garment(prop: Attr, scene: Scene, st: Style) -> str:
    e = scene.entity(prop.eid)
    return (f"the {e.noun}'s {e.garment} is {prop.value} in this {st.ctx}",
            f"in the {st.ctx}, the {e.noun} wears {ph.article(prop.value)} {e.garment}",
            f"the {e.noun} in the {st.ctx} has on {ph.article(prop.value)} {e.garment}",
            f"the {e.garment} worn by the {e.noun} is {prop.value}")[st.variant % 4]


def _act(prop: Prop, scene: Scene, st: Style) -> str:
    assert isinstance(prop, Act)
    a = ref(scene, prop.eid)
    if st.ctx in ("clip", "video"):
        return (f"at one point in the {st.ctx}, {a} {_vp(prop, scene, 'third')}",
                f"during the {st.ctx}, {a} {_vp(prop, scene, 'third')}",
                f"the {st.ctx} shows {a} {_vp(prop, scene, 'ing')}",
                f"in the {st.ctx}, we see {a} {_vp(prop, scene, 'ing')}")[st.variant % 4]
    be = _be(scene, prop.eid)
    return (f"in the {st.ctx}, {a} {be} {_vp(prop, scene, 'ing')}",
            f"{a} can be seen {_vp(prop, scene, 'ing')} in the {st.ctx}",
            f"the {st.ctx} shows {a} {_vp(prop, scene, 'ing')}",
            f"in this {st.ctx}, we see {a} {_vp(prop, scene, 'ing')}")[st.variant % 4]


def _coref_act(prop: Prop, scene: Scene, st: Style) -> str:
    assert isinstance(prop, Act)
    who = ref(scene, prop.eid, desc=True)
    if st.ctx in ("clip", "video"):
        vp = _vp(prop, scene, "third")
        return (f"{who} is the one who {vp}", f"it is {who} who {vp}",
                f"in the {st.ctx}, {who} is the person who {vp}")[st.variant % 3]
    vp = _vp(prop, scene, "ing")
    return (f"{who} is the one who is {vp}", f"it is {who} who is {vp}",
            f"the person {vp} is {who}")[st.variant % 3]


def _coref_attr(prop: Prop, scene: Scene, st: Style) -> str:
    assert isinstance(prop, Attr)
    e = scene.entity(prop.eid)
    act = unique_act(scene, prop.eid)
    assert act is not None, "coref_attr needs an act only this person does"
    wear = f"{ph.article(prop.value)} {e.garment}"
    if st.ctx in ("clip", "video"):
        return (f"the person who {_vp(act, scene, 'third')} is wearing {wear}",
                f"whoever {_vp(act, scene, 'third')} has on {wear}")[st.variant % 2]
    return (f"the person who is {_vp(act, scene, 'ing')} is wearing {wear}",
            f"the one {_vp(act, scene, 'ing')} has on {wear}")[st.variant % 2]


def _manner(prop: Prop, scene: Scene, st: Style) -> str:
    if isinstance(prop, Both):
        assert isinstance(prop.left, Manner) and isinstance(prop.right, Manner)
        left, right = _manner_clause(prop.left, scene, st), _manner_clause(prop.right, scene, st)
        return f"{left}, while {right}"
    assert isinstance(prop, Manner)
    clause = _manner_clause(prop, scene, st)
    return (f"in the {st.ctx}, {clause}", f"{clause} in this {st.ctx}",
            f"as the {st.ctx} shows, {clause}")[st.variant % 3]


def _manner_clause(prop: Manner, scene: Scene, st: Style) -> str:
    a = ref(scene, prop.act.eid)
    if st.ctx in ("clip", "video"):
        return f"{a} {_vp(prop.act, scene, 'third')} {prop.adverb}"
    return f"{a} {_be(scene, prop.act.eid)} {_vp(prop.act, scene, 'ing')} {prop.adverb}"


def _clause(act: Act, scene: Scene) -> str:
    return f"{ref(scene, act.eid)} {_vp(act, scene, 'third')}"


def _order(prop: Prop, scene: Scene, st: Style) -> str:
    assert isinstance(prop, Order)
    one, two = _clause(prop.first, scene), _clause(prop.second, scene)
    return (f"{one} before {two}", f"{two} after {one}", f"{one} first, and only later {two}",
            f"{one} earlier in the {st.ctx} than {two}")[st.variant % 4]


def _text(prop: Prop, scene: Scene, st: Style) -> str:
    assert isinstance(prop, Text)
    e = scene.entity(prop.eid)
    where = f"the {e.noun}'s {e.garment}" if e.etype.cls == "person" else f"the {e.noun}"
    t = ph.quote(prop.text)
    return (f"in this {st.ctx}, {where} says {t}",
            f"the words {t} appear on {where} in the {st.ctx}",
            f"in the {st.ctx}, {t} is written on {where}",
            f"on {where} in the {st.ctx}, you can read {t}")[st.variant % 4]


def is_unique(scene: Scene, act: Act) -> bool:
    """No other activity in the scene has the same verb and objects as `act`."""
    key = (act.verb, act.thing, act.patient, act.recipient)
    return sum((a.verb, a.thing, a.patient, a.recipient) == key for a in scene.activities) == 1


def unique_act(scene: Scene, eid: int) -> Act | None:
    """An act of `eid` that no other agent does, so "the person who ..." names `eid`."""
    for i in scene.acts_of(eid):
        act = Act.of(scene.activities[i])
        if is_unique(scene, act):
            return act
    return None
