"""Caption pairs for contrastive training: two realisations of the same sampled scene.

Scenes come from seeds disjoint from the benchmark's ("pairs:..." vs "bench:..."). About a
third of scenes are *twins* of the previous scene with one binding-level change (two
colours swapped, a relation flipped, a count or the event order changed ...), so the same
bag of words appears under two groups and only attribute binding tells them apart.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import replace

from .drafts import letter_edit
from .phrases import word_count
from .realise import realise
from .sampler import SceneSpec, sample_scene
from .scene import CONVERSE, Scene

PAIR_WORDS = (40, 160)
TWIN_RATE = 0.3
SECOND_PAIR_RATE = 0.2


def build_pairs(seed: int, n_scenes: int) -> list[dict[str, str]]:
    """`n_scenes` groups of one pair each (two pairs for about 20% of them)."""
    rows: list[dict[str, str]] = []
    prev: Scene | None = None
    for k in range(n_scenes):
        rng = random.Random(f"pairs:{seed}:{k}")
        sid = f"scene-{k:06d}"
        scene = twin(prev, sid, rng) if prev is not None and rng.random() < TWIN_RATE else None
        if scene is None:
            scene = sample_scene(rng, sid, random_spec(rng))
        n_pairs = 2 if rng.random() < SECOND_PAIR_RATE else 1
        texts = _realisations(scene, rng, 2 * n_pairs)
        for i in range(0, len(texts) - 1, 2):
            rows.append({"a": texts[i], "b": texts[i + 1], "group": sid,
                         "caption_type": "video" if scene.video else "image"})
        prev = scene
    return rows


def random_spec(rng: random.Random) -> SceneSpec:
    """A spec that varies every dimension the benchmark tests."""
    video = rng.random() < 0.4
    coref = ""
    if rng.random() < 0.2:
        modes = ("pronoun", "former_latter", "respectively")
        coref = "video_pronoun" if video else rng.choice(modes)
    return SceneSpec(video=video, n_entities=rng.randint(4, 7), n_people=rng.randint(1, 3),
                     n_animals=rng.randint(0, 2), groups=rng.randint(0, 2),
                     texts=rng.randint(0, 2), rel_chain=rng.random() < 0.3,
                     n_events=rng.randint(3, 5) if video else 0,
                     manner_rate=rng.uniform(0.2, 0.6), manner_contrast=rng.random() < 0.2,
                     coref=coref, patient_events=rng.randint(0, 1))


def _realisations(scene: Scene, rng: random.Random, n: int) -> list[str]:
    """`n` distinct captions of `scene`, mixing brief and full detail levels."""
    out: list[str] = []
    for _ in range(40 * n):
        if len(out) == n:
            break
        text = realise(scene, rng, brief=rng.random() < 0.6).text
        if PAIR_WORDS[0] <= word_count(text) <= PAIR_WORDS[1] and text not in out:
            out.append(text)
    return out[: n - n % 2]


def twin(scene: Scene, sid: str, rng: random.Random) -> Scene | None:
    """`scene` with one minimal change that alters attribute/relation/event binding."""
    ops: list[Callable[[Scene, random.Random], Scene | None]] = [
        _swap_colours, _flip_relation, _change_count, _swap_events, _swap_texts, _flip_manner]
    rng.shuffle(ops)
    for op in ops:
        changed = op(scene, rng)
        if changed is not None:
            return replace(changed, sid=sid)
    return None


def _swap_colours(scene: Scene, rng: random.Random) -> Scene | None:
    coloured = [e for e in scene.entities if e.colour and e.etype.cls != "animal"]
    if len(coloured) < 2:
        return None
    a, b = rng.sample(coloured, 2)
    if a.colour == b.colour:
        return None
    ents = list(scene.entities)
    ents[a.eid], ents[b.eid] = replace(a, colour=b.colour), replace(b, colour=a.colour)
    return replace(scene, entities=tuple(ents))


def _flip_relation(scene: Scene, rng: random.Random) -> Scene | None:
    flat = [i for i, r in enumerate(scene.relations)
            if r.rel in ("left", "right", "front", "behind")]
    if not flat:
        return None
    i = rng.choice(flat)
    rels = list(scene.relations)
    rels[i] = replace(rels[i], rel=CONVERSE[rels[i].rel])
    return replace(scene, relations=tuple(rels))


def _change_count(scene: Scene, rng: random.Random) -> Scene | None:
    groups = [e for e in scene.entities if e.count > 1]
    if not groups:
        return None
    e = rng.choice(groups)
    ents = list(scene.entities)
    ents[e.eid] = replace(e, count=rng.choice([n for n in range(2, 8) if n != e.count]))
    return replace(scene, entities=tuple(ents))


def _swap_events(scene: Scene, rng: random.Random) -> Scene | None:
    acts = list(scene.activities)
    if not scene.video or len(acts) < 3 or scene.coref is not None:
        return None
    i = rng.randrange(len(acts) - 1)
    acts[i], acts[i + 1] = acts[i + 1], acts[i]
    return replace(scene, activities=tuple(acts))


def _swap_texts(scene: Scene, rng: random.Random) -> Scene | None:
    carriers = [e for e in scene.entities if e.text]
    if not carriers:
        return None
    ents = list(scene.entities)
    if len(carriers) >= 2:
        a, b = rng.sample(carriers, 2)
        ents[a.eid], ents[b.eid] = replace(a, text=b.text), replace(b, text=a.text)
    else:
        e = carriers[0]
        ents[e.eid] = replace(e, text=letter_edit(e.text, rng))
    return replace(scene, entities=tuple(ents))


def _flip_manner(scene: Scene, rng: random.Random) -> Scene | None:
    from .vocab_world import manner_scale

    acts = list(scene.activities)
    with_manner = [i for i, a in enumerate(acts) if a.manner]
    if not with_manner:
        return None
    i = rng.choice(with_manner)
    scale = manner_scale(acts[i].manner)
    assert scale is not None
    acts[i] = replace(acts[i], manner=scale.words(1 - scale.pole(acts[i].manner))[0])
    return replace(scene, activities=tuple(acts))
