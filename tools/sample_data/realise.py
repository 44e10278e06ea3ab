"""Turn a scene graph into a caption, recording every fact the caption states.

`realise` is used twice per training scene with different style seeds (and once, in full
detail, per benchmark scene). A brief realisation may leave facts out but never adds one
that is not in the scene, so two realisations of a scene never contradict each other.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from . import phrases as ph
from .scene import CONVERSE, Activity, Entity, Scene

IMAGE_OPENERS = (
    "A photograph of {s} {t}.", "This image shows {s} {t}.", "The scene is set {p} {s} {t}.",
    "A detailed, realistic view of {s} {t}.", "{T}, {s} is captured in a wide shot.",
    "A candid snapshot taken {p} {s} {t}.",
)
SMALL_GARMENTS = ("cap", "beanie", "scarf")
DARK_TIMES = ("at dusk", "late at night", "in the evening")
DAYLIGHT_WORDS = ["sunlight", "daylight", "sun", "sunny", "skylight"]
CLOSERS = (
    "The image is sharp, with natural colours and soft shadows.",
    "It looks like an ordinary, unposed moment.",
    "The framing is wide enough to take in the whole space.",
    "The photo has a slightly warm tone overall.",
)


@dataclass(frozen=True)
class Caption:
    text: str
    stated: frozenset[tuple[object, ...]]


class Writer:
    """Builds one caption for one scene; `stated` collects what has been said."""

    def __init__(self, scene: Scene, rng: random.Random, *, brief: bool = False) -> None:
        self.scene, self.rng, self.brief = scene, rng, brief
        self.stated: set[tuple[object, ...]] = set()
        self.introduced: set[int] = set()
        self.sentences: list[str] = []
        self.dropped = self._pick_dropped() if brief else set()
        self.heads = [e.etype.head for e in scene.entities]

    def _pick_dropped(self) -> set[int]:
        """Entities a brief caption leaves out: only ones nothing else depends on."""
        needed = {p for a in self.scene.activities for p in a.participants()}
        if self.scene.coref is not None:
            needed |= {self.scene.coref.x, self.scene.coref.y}
        return {e.eid for e in self.scene.entities
                if e.eid not in needed and self.rng.random() < 0.3}

    def keep(self, kind: str) -> bool:
        """Brief captions drop minor attributes at random; colour is kept more often."""
        if not self.brief:
            return True
        return self.rng.random() < (0.8 if kind in ("colour", "text", "count") else 0.45)

    def say(self, sentence: str) -> None:
        self.sentences.append(ph.cap(sentence))

    def np(self, e: Entity) -> str:
        """Introduce `e` with its attributes ("three small blue ceramic mugs")."""
        self.introduced.add(e.eid)
        if e.etype.cls == "person":
            return self._person_np(e)
        pre, post = self._modifiers(e)
        core = " ".join(pre + [e.noun])
        if e.count > 1 and self.keep("count"):
            self.stated.add(("count", e.eid))
            if e.count == 2 and e.etype.cls != "person" and self.rng.random() < 0.3:
                head = f"a pair of {core}"
            else:
                head = f"{ph.NUM_WORDS[e.count]} {core}"
        elif e.count > 1:
            head = f"several {core}"
        else:
            head = ph.article(core)
        return " ".join([head] + post)

    def _modifiers(self, e: Entity) -> tuple[list[str], list[str]]:
        pre: list[str] = []
        post: list[str] = []
        if e.size and self.keep("size"):
            pre.append(self.rng.choice(ph.size_words(e, e.size)))
            self.stated.add(("size", e.eid))
        if e.state and self.keep("state"):
            pre.append(self.rng.choice(ph.state_words(e, e.state)).replace(" ", "-"))
            self.stated.add(("state", e.eid))
        if e.pattern and self.keep("pattern"):
            pre.append(e.pattern)
            self.stated.add(("pattern", e.eid))
        if e.colour and self.keep("colour"):
            shade = e.shade + " " if e.shade and self.rng.random() < 0.7 else ""
            pre.append(shade + ph.colour_word(e, e.colour))
            self.stated.add(("colour", e.eid))
        if e.material and self.keep("material"):
            if self.rng.random() < 0.3:
                post.insert(0, f"made of {ph.material_noun(e.material)}")
            else:
                pre.append(e.material)
            self.stated.add(("material", e.eid))
        if e.text and self.keep("text"):
            post.append(e.etype.text_phrase.format(t=ph.quote(e.text)))
            self.stated.add(("text", e.eid))
        return pre, post

    def _person_np(self, e: Entity) -> str:
        pre = []
        if e.size and self.keep("size"):
            pre.append(e.size)
            self.stated.add(("size", e.eid))
        core = " ".join(pre + [e.noun])
        if e.count > 1:
            self.stated.add(("count", e.eid))
            core = f"{ph.NUM_WORDS[e.count]} {core}"
        else:
            core = ph.article(core)
        if not (e.colour and self.keep("colour")) and not e.text:
            return core
        self.stated.add(("colour", e.eid))
        links = ("in", "wearing") + (() if e.garment in SMALL_GARMENTS else ("dressed in",))
        link = self.rng.choice(links) if e.count == 1 else "in"
        garment = f"{e.colour} {e.garment}" + ("s" if e.count > 1 else "")
        garment = ph.article(garment) if e.count == 1 else garment
        text = ""
        if e.text:
            text = f" printed with {ph.quote(e.text)}"
            self.stated.add(("text", e.eid))
        return f"{core} {link} {garment}{text}"

    def ref(self, eid: int) -> str:
        return ph.the(self.scene.entity(eid))

    def rel_phrases(self, e: Entity) -> list[str]:
        """Relations between `e` and entities already introduced, from `e`'s side."""
        out = []
        for i, rel in enumerate(self.scene.relations):
            if rel.a == e.eid and rel.b in self.introduced:
                word, other = rel.rel, rel.b
            elif rel.b == e.eid and rel.a in self.introduced:
                word, other = CONVERSE[rel.rel], rel.a
            else:
                continue
            # From the lower object's side, "on"/"under" read as "below"/"above".
            word = {"under": "below", "on": "above"}.get(word, word) if rel.b == e.eid else word
            out.append(self.rng.choice(ph.REL_CAPTION[word]).format(self.ref(other)))
            self.stated.add(("rel", i))
        return out

    def spot(self, e: Entity) -> str:
        """The entity's flavour location ("by the window"); the same in every caption."""
        return e.spot

    def activity_vp(self, act_index: int, form: str) -> str:
        """Verb phrase for an activity, with its manner when kept; marks both as stated."""
        act = self.scene.activities[act_index]
        phrase = ph.verb_phrase(act, self.scene, "ing" if form == "ing" else "third")
        self.stated.add(("act", act_index))
        if act.manner and (not self.brief or self.rng.random() < 0.6):
            word = self.rng.choice(_manner_synonyms(act.manner))
            phrase = ph.with_manner(phrase, word, self.rng)
            self.stated.add(("manner", act_index))
        return phrase

    def finish(self, *, lo: int, hi: int) -> Caption:
        """Pad with flavour sentences up to `lo` words (never past `hi`) and join."""
        ambient = [a for a in self.scene.setting.ambient if not _clash(a, self.heads)
                   and not _time_clash(a, self.scene.time)]
        self.rng.shuffle(ambient)
        extra = list(ambient) + ([] if self.scene.video else [self.rng.choice(CLOSERS)])
        if not self.brief or self.rng.random() < 0.5:
            self._insert_flavour(extra.pop(0) if extra else "")
        while extra and ph.word_count(" ".join(self.sentences)) < lo:
            nxt = extra.pop(0)
            if ph.word_count(" ".join(self.sentences) + " " + nxt) > hi:
                break
            self._insert_flavour(nxt)
        return Caption(" ".join(self.sentences), frozenset(self.stated))

    def _insert_flavour(self, sentence: str) -> None:
        if sentence:
            at = self.rng.randrange(1, len(self.sentences) + 1)
            self.sentences.insert(at, sentence)


def _time_clash(sentence: str, time: str) -> bool:
    """Flavour text must not mention a time of day (or sunlight) the scene is not set in."""
    if _clash(sentence, ["morning"]) and "morning" not in time and "sunrise" not in time:
        return True
    if _clash(sentence, ["afternoon"]) and "afternoon" not in time and "noon" not in time:
        return True
    return time in DARK_TIMES and _clash(sentence, DAYLIGHT_WORDS)


def _manner_synonyms(manner: str) -> tuple[str, ...]:
    from .vocab_world import manner_scale

    scale = manner_scale(manner)
    assert scale is not None, manner
    return scale.words(scale.pole(manner))


def _clash(text: str, heads: list[str]) -> bool:
    return ph.clashes(text, heads)


def realise(scene: Scene, rng: random.Random, *, brief: bool = False) -> Caption:
    """Realise `scene` as one caption (40-160 words when brief, 80-160 otherwise)."""
    from .image_caption import write_image
    from .narrate import write_video

    writer = Writer(scene, rng, brief=brief)
    (write_video if scene.video else write_image)(writer)
    lo = rng.randint(45, 90) if brief else 95
    return writer.finish(lo=lo, hi=160)


def acts_by_agent(scene: Scene) -> dict[int, int]:
    """Agent eid -> index of its activity (images have at most one per agent)."""
    return {a.agent: i for i, a in enumerate(scene.activities)}


def subject_of(act: Activity, scene: Scene) -> Entity:
    return scene.entity(act.agent)
