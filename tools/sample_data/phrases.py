"""Small English helpers shared by caption and statement realisation."""

from __future__ import annotations

import functools
import random
from collections.abc import Callable, Sequence

from .scene import Activity, Entity, Scene
from .vocab_world import ANIMAL_COLOUR_WORDS, MATERIALS, SIZE_SCALES, STATE_SCALES

NUM_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")

# Caption-side relation phrases ("{}" is the anchor's reference).
REL_CAPTION: dict[str, tuple[str, ...]] = {
    "left": ("to the left of {}", "on the left side of {}", "just left of {}"),
    "right": ("to the right of {}", "on the right side of {}", "just right of {}"),
    "front": ("in front of {}", "just in front of {}", "directly in front of {}"),
    "behind": ("behind {}", "just behind {}", "partly hidden behind {}"),
    "on": ("on top of {}", "on {}", "resting on top of {}"),
    "under": ("under {}", "beneath {}", "underneath {}"),
    "above": ("above {}", "high above {}", "mounted above {}"),
    "below": ("below {}", "beneath {}", "directly below {}"),
}
# Statement-side phrases: generic wording, so a statement paraphrases the caption.
REL_STATEMENT: dict[str, tuple[str, ...]] = {
    "left": ("to the left of", "on the left of", "further left than"),
    "right": ("to the right of", "on the right of", "further right than"),
    "front": ("in front of", "closer to the camera than", "nearer the viewer than"),
    "behind": ("behind", "farther from the camera than", "further back than"),
    "above": ("above", "higher up than", "positioned higher than"),
    "below": ("below", "lower down than", "positioned lower than"),
}
PLURAL_PARTS = {"its paw": "their paws", "its back": "their backs", "its tail": "their tails",
                "its ear": "their ears", "its ": "their "}
POSTURES: dict[str, tuple[tuple[str, str], ...]] = {
    # (singular, plural) verbs for an entity that is not doing anything
    "person": (("stands", "stand"), ("waits", "wait"), ("lingers", "linger")),
    "animal": (("is", "are"), ("can be seen", "can be seen"), ("appears", "appear")),
    "object": (("sits", "sit"), ("stands", "stand"), ("is", "are")),
    "small": (("sits", "sit"), ("rests", "rest"), ("is", "are")),
    "hangs": (("hangs", "hang"), ("is mounted", "are mounted")),
    "vehicle": (("is", "are"), ("can be seen", "can be seen")),
}


def article(phrase: str) -> str:
    """`phrase` with "a" or "an" in front."""
    return ("an " if phrase[:1].lower() in "aeiou" else "a ") + phrase


def cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def quote(text: str) -> str:
    return f'"{text}"'


def be(entity: Entity) -> str:
    return "are" if entity.plural else "is"


def colour_word(entity: Entity, colour: str) -> str:
    if entity.etype.cls == "animal":
        return ANIMAL_COLOUR_WORDS.get(colour, colour)
    return colour


def size_words(entity: Entity, value: str) -> tuple[str, ...]:
    scale = SIZE_SCALES[entity.etype.size_scale]
    return scale.words(scale.pole(value))


def state_words(entity: Entity, value: str) -> tuple[str, ...]:
    scale = STATE_SCALES[entity.etype.state_scale]
    return scale.words(scale.pole(value))


def material_noun(material: str) -> str:
    return MATERIALS[material]


def posture(entity: Entity, rng: random.Random) -> str:
    key = "hangs" if entity.etype.hangs else entity.etype.cls
    key = "object" if key == "sign" else key
    key = "small" if key == "object" and entity.etype.small else key
    sing, plural = rng.choice(POSTURES[key])
    return plural if entity.plural else sing


def pronoun(entity: Entity) -> str:
    """Subject pronoun for a gendered person or a single animal, else ""."""
    if entity.count > 1:
        return ""
    if entity.etype.cls == "animal":
        return "it"
    return {"f": "she", "m": "he"}.get(entity.etype.gender, "")


def the(entity: Entity) -> str:
    return "the " + entity.noun


def verb_phrase(act: Activity, scene: Scene, form: str, *,
                ref: Callable[[int], str] | None = None) -> str:
    """ "slices a loaf of bread" / "handing the mug to the boy"; `form` is third|ing|base."""
    ref = ref or (lambda eid: the(scene.entity(eid)))
    verb = act.v
    plural = scene.entity(act.agent).plural
    head = {"third": verb.base if plural else verb.third, "ing": verb.ing,
            "base": verb.base}[form]
    if act.patient < 0:
        thing = act.thing
        if plural:
            for one, many in PLURAL_PARTS.items():
                thing = thing.replace(one, many)
        return f"{head} {thing}".strip()
    text = f"{head} {ref(act.patient)}"
    if act.recipient >= 0:
        text += f" {verb.prep} {ref(act.recipient)}"
    return text


def with_manner(phrase: str, manner: str, rng: random.Random) -> str:
    """Put a manner adverb before the verb (one-word adverbs, sometimes) or after the phrase."""
    if " " not in manner and rng.random() < 0.4:
        return f"{manner} {phrase}"
    return f"{phrase} {manner}"


def word_count(text: str) -> int:
    return len(text.split())


def clashes(text: str, heads: Sequence[str]) -> bool:
    """True if `text` mentions one of the entity head nouns (or its plural)."""
    return not _banned(tuple(heads)).isdisjoint(_words(text))


@functools.cache
def _words(text: str) -> frozenset[str]:
    return frozenset(text.lower().replace(",", " ").replace(".", " ").split())


@functools.lru_cache(maxsize=4096)
def _banned(heads: tuple[str, ...]) -> frozenset[str]:
    return frozenset(w for h in heads for w in (h, h + "s", h + "es"))
