"""``toy-t2i``: a small text-to-image generator that closes the loop on one machine.

Seeded scene graphs (`sample_scene`) are rendered (`render`) and captioned (`caption_scene`); a
deterministic checker (`check_facts`, `score_caption`) reads the facts back from pixels.  The
scorer trains a diffusers UNet on one (encoder, extractor) row's features and reports checker
accuracy.  Importing this package loads numpy only: torch and diffusers come in when a model is
built (`harness_plugins.generator._model`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from harness import ConfigError, hookimpl
from harness_plugins.generator._captions import CATEGORIES, Caption, Fact, caption_scene, fact_holds, scene_facts
from harness_plugins.generator._checker import check_facts, find_blobs, read_word, score_caption
from harness_plugins.generator._render import render, to_pil
from harness_plugins.generator._scene import PALETTE, Group, Scene, sample_scene, sample_scenes, variants
from harness_plugins.generator._scorer import BENCHMARK, CONFIGS, ToyT2IScorer, make_config, row_slug

__all__ = ["BENCHMARK", "CATEGORIES", "CONFIGS", "PALETTE", "Caption", "Fact", "Group", "Scene", "ToyT2IScorer",
           "caption_scene", "check_facts", "fact_holds", "find_blobs", "make_config", "read_word", "render",
           "row_slug", "sample_scene", "sample_scenes", "scene_facts", "score_caption", "to_pil", "variants"]

_FLAGS = ("arg", "config", "unconditioned", "baseline", "encoders", "out_dir", "progress", "cache_dir", "tensorboard")


@hookimpl(trylast=True)
def harness_scorer_names() -> list[str]:
    return [BENCHMARK]


@hookimpl(trylast=True)
def harness_make_scorer(name: str, options: Mapping[str, Any]) -> ToyT2IScorer | None:
    """``toy-t2i[:CONFIG]`` (``smoke``, ``cpu`` or ``gpu``; default ``cpu``).  Options: ``unconditioned``,
    ``baseline``, ``encoders`` (name -> loaded encoder), ``out_dir`` (grids, ω), ``progress`` (a bar
    factory), ``cache_dir`` (feature cache; "none": RAM), ``tensorboard`` (a folder: each trained model's
    TensorBoard events go to ``tensorboard/<row>/``) and any `GeneratorConfig` field as an override (``steps``, ``n1``, ``layer_weights``, ...;
    text values, as from ``harness score --option steps=300``, are converted to the field's type)."""
    if name != BENCHMARK:
        return None
    overrides = {k: v for k, v in options.items() if k not in _FLAGS and k != "path" and v is not None}
    cfg = make_config(str(options.get("config") or options.get("arg") or "cpu"), **overrides)
    return ToyT2IScorer(cfg, unconditioned=_flag(options.get("unconditioned")), baseline=_flag(options.get("baseline")),
                        encoders=options.get("encoders"), out_dir=options.get("out_dir"),
                        progress=options.get("progress"), cache_dir=options.get("cache_dir"),
                        tensorboard=options.get("tensorboard"))


def _flag(value: Any) -> bool:
    if isinstance(value, str):
        if value.lower() not in ("true", "false", "1", "0", "yes", "no", ""):
            raise ConfigError(f"toy-t2i: {value!r} is not true or false")
        return value.lower() in ("true", "1", "yes")
    return bool(value)
