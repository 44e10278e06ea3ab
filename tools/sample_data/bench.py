"""Build the TED-format benchmark sample: one verified instance per (category, index)."""

from __future__ import annotations

import random
from collections.abc import Callable

from harness.data.categories import CATEGORIES

from .drafts import Draft, draft_adjective, draft_ocr, draft_quantity, draft_spatial
from .drafts_events import (
    draft_action,
    draft_adverb,
    draft_basic_event,
    draft_coreference,
    draft_temporal,
)
from .phrases import word_count
from .props import Stated, truth
from .realise import Caption, realise
from .sampler import SceneSpec, sample_scene
from .scene import Scene
from .statements import Style, render

PER_CATEGORY = 30
# Per-category settings, keyed by every name in harness.data.categories.CATEGORIES (a test checks).
# How many of the 30 instances per category are video captions (about 40% overall).
VIDEO_COUNT = {"temporal": 30, "adverb": 26, "action": 15, "basic_event": 18,
               "coreference": 9, "spatial": 2, "ocr": 2, "adjective": 2, "quantity": 2}
DRAFTERS: dict[str, Callable[[Scene, Stated, random.Random], Draft | None]] = {
    "action": draft_action, "spatial": draft_spatial, "temporal": draft_temporal,
    "coreference": draft_coreference, "adjective": draft_adjective, "adverb": draft_adverb,
    "quantity": draft_quantity, "ocr": draft_ocr, "basic_event": draft_basic_event,
}
CAPTION_WORDS = (80, 160)
MAX_ATTEMPTS = 400


def build_benchmark(seed: int) -> list[dict[str, object]]:
    """All benchmark rows, category by category, in a fixed order."""
    rows = []
    for category in CATEGORIES:
        rng = random.Random(f"bench:{seed}:{category}")
        videos = set(rng.sample(range(PER_CATEGORY), VIDEO_COUNT[category]))
        for k in range(PER_CATEGORY):
            rows.append(build_instance(category, k, video=k in videos, seed=seed))
    return rows


def build_instance(category: str, k: int, *, video: bool, seed: int) -> dict[str, object]:
    """Sample scenes until one yields a caption and a verified statement set."""
    for attempt in range(MAX_ATTEMPTS):
        rng = random.Random(f"bench:{seed}:{category}:{k}:{attempt}")
        scene = sample_scene(rng, f"bench-{category}-{k:03d}", spec_for(category, video, rng))
        caption = realise(scene, rng)
        if not CAPTION_WORDS[0] <= word_count(caption.text) <= CAPTION_WORDS[1]:
            continue
        draft = DRAFTERS[category](scene, caption.stated, rng)
        made = finalize(draft, scene, caption, rng=rng) if draft is not None else None
        if made is not None:
            positive, negatives = made
            return {"id": f"sample-{category}-{k:03d}", "category": category,
                    "caption": caption.text, "positive": positive, "negatives": negatives,
                    "caption_type": "video" if video else "image"}
    raise RuntimeError(f"No instance for category {category!r} #{k} after {MAX_ATTEMPTS} "
                       "attempts; loosen spec_for() for this category.")


def spec_for(category: str, video: bool, rng: random.Random) -> SceneSpec:
    """Scene requirements that make `category` statements possible (and varied)."""
    base = {"video": video, "n_entities": rng.randint(5, 7), "n_people": rng.randint(1, 3),
            "n_animals": rng.randint(0, 2), "n_events": rng.randint(3, 5) if video else 0}
    table: dict[str, dict[str, object]] = {
        "spatial": {"rel_chain": True, "n_entities": rng.randint(6, 7)},
        "quantity": {"groups": rng.randint(2, 3)},
        "ocr": {"texts": rng.randint(2, 3)},
        "action": {"n_people": rng.randint(2, 3), "n_animals": rng.randint(1, 2)},
        "adverb": {"manner_contrast": rng.random() < 0.7, "manner_rate": 0.6,
                   "n_people": rng.randint(1, 2), "n_animals": 1},
        "temporal": {"n_events": rng.randint(4, 5), "n_people": rng.randint(1, 2)},
        "coreference": {"coref": _coref_mode(video, rng), "n_people": rng.randint(2, 3)},
        "basic_event": {"patient_events": 2, "n_people": rng.randint(2, 3)},
        "adjective": {"groups": rng.randint(0, 1)},
    }
    return SceneSpec(**{**base, **table.get(category, {})})  # type: ignore[arg-type]


def _coref_mode(video: bool, rng: random.Random) -> str:
    if video:
        return "video_pronoun"
    return rng.choice(("pronoun", "pronoun", "former_latter", "respectively"))


def finalize(draft: Draft, scene: Scene, caption: Caption, *,
             rng: random.Random) -> tuple[str, list[str]] | None:
    """Render the draft; every kept negative is re-checked to be false given the caption."""
    if truth(draft.positive, scene, caption.stated) is not True:
        raise AssertionError(f"positive not entailed in {scene.sid}: {draft.positive!r}")
    negatives = [p for p in draft.negatives if truth(p, scene, caption.stated) is False]
    want = rng.choices((2, 3, 4), weights=(0.15, 0.7, 0.15))[0]
    ctx = rng.choice(("clip", "video") if scene.video else ("image", "picture", "photo"))
    digits = rng.random() < 0.2
    variants = list(range(4))
    rng.shuffle(variants)
    for variant in variants:
        style = Style(draft.family, variant, ctx, digits)
        positive = render(draft.positive, scene, style)
        if not 8 <= word_count(positive) <= 20 or _verbatim(positive, caption.text):
            continue
        kept: list[str] = []
        for prop in negatives:
            text = render(prop, scene, style)
            if text != positive and text not in kept and word_count(text) <= 22:
                kept.append(text)
            if len(kept) == want:
                break
        if kept:
            return positive, kept
    return None


def _verbatim(statement: str, caption: str) -> bool:
    return statement.rstrip(".").lower() in caption.lower()
