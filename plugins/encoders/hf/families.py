"""THE family table: one `Family` recipe per transformers-based encoder family.

A new family is one `Family` entry in `FAMILIES`; the plugin's hooks read the
names from its keys.  (open-clip is its own plugin: `harness_plugins.encoders.open_clip`.)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from harness import ConfigError, EncoderError, EncoderSpec
from harness_plugins.encoders.hf.checkpoints import Checkpoint
from harness_plugins.encoders.hf.loading import from_pretrained

__all__ = ["FAMILIES", "Builder", "Family", "Selector", "language_model", "t5_encoder_class"]


class Builder(Protocol):
    """Loads the full model object of a family, returning it and its loading report."""

    def __call__(
        self, spec: EncoderSpec, ckpt: Checkpoint, *, config: Any, dtype: Any
    ) -> tuple[Any, dict[str, int]]: ...


# Picks the text transformer out of the full model (after any adapter is merged).
Selector = Callable[[Any], Any]


@dataclass(frozen=True)
class Family:
    """How one family is loaded and what its hidden states mean."""

    name: str
    build: Builder
    select: Selector
    include_embedding: bool
    last_layer_note: str
    forward_kwargs: tuple[tuple[str, Any], ...] = ()
    absolute_positions: bool = True  # cap max_length at the position table


# Checkpoint keys a family's class drops on purpose: heads that hidden states never use.
_HEADS = (r"^lm_head\.", r"^cls\.", r"^pooler\.")
_CLIP_OTHER_TOWER = (r"^vision_model\.", r"^visual_projection\.", r"^text_projection\.", r"^logit_scale$")
_T5_CLASSES = {"t5": "T5EncoderModel", "mt5": "MT5EncoderModel", "umt5": "UMT5EncoderModel"}
_LANGUAGE_MODEL_PATHS = ("model.language_model", "language_model", "llm", "model.llm", "model.text_model")


def _transformers_class(name: str) -> Any:
    import transformers

    return getattr(transformers, name)


def _identity(model: Any) -> Any:
    return model


def _base_model(model: Any) -> Any:
    """The transformer under a task head (``Qwen3ForCausalLM.model``); a base model is itself."""
    return model.base_model


def _build_auto(spec: EncoderSpec, ckpt: Checkpoint, *, config: Any, dtype: Any) -> tuple[Any, dict[str, int]]:
    return from_pretrained(_transformers_class("AutoModel"), spec, ckpt, dtype=dtype, ignore=_HEADS)


def t5_encoder_class(config: Any) -> str:
    """The encoder-only class for a T5-style config, chosen by ``model_type``.

    ``T5EncoderModel`` on a UMT5 checkpoint would silently keep only layer 0's
    relative position bias (UMT5 has one per layer), so the type decides.
    """
    model_type = getattr(config, "model_type", None)
    if model_type not in _T5_CLASSES:
        raise ConfigError(
            f"family 't5' needs a T5, mT5 or UMT5 checkpoint, got model_type {model_type!r}; "
            "use family 'hf' for other encoders"
        )
    return _T5_CLASSES[model_type]


def _build_t5(spec: EncoderSpec, ckpt: Checkpoint, *, config: Any, dtype: Any) -> tuple[Any, dict[str, int]]:
    cls = _transformers_class(t5_encoder_class(config))
    model, report = from_pretrained(cls, spec, ckpt, dtype=dtype, ignore=(r"^decoder\.", r"^lm_head\."))
    if config.model_type == "umt5" and type(model).__name__ != "UMT5EncoderModel":  # belt and braces
        raise EncoderError(f"Encoder {spec.name!r}: UMT5 checkpoint loaded as {type(model).__name__}")
    return model, report


def _build_causal_lm(spec: EncoderSpec, ckpt: Checkpoint, *, config: Any, dtype: Any) -> tuple[Any, dict[str, int]]:
    # The base model skips the LM head's memory; an adapter trained on the CausalLM
    # names its modules from the top, so then the full model is loaded and merged first.
    auto_map = getattr(config, "auto_map", None) or {}
    auto_model = _transformers_class("AutoModel")
    has_base = type(config) in auto_model._model_mapping or "AutoModel" in auto_map
    if spec.options.adapter or not has_base:
        cls = _transformers_class("AutoModelForCausalLM")
        return from_pretrained(cls, spec, ckpt, dtype=dtype)
    return from_pretrained(auto_model, spec, ckpt, dtype=dtype, ignore=(r"^lm_head\.",))


def _build_mllm(spec: EncoderSpec, ckpt: Checkpoint, *, config: Any, dtype: Any) -> tuple[Any, dict[str, int]]:
    # The full conditional-generation class maps every key; a text-only class on the
    # full folder would leave the language model randomly initialised.
    auto_map = getattr(config, "auto_map", None) or {}
    for name in ("AutoModelForImageTextToText", "AutoModelForCausalLM", "AutoModel"):
        cls = _transformers_class(name)
        if name in auto_map or type(config) in cls._model_mapping:
            return from_pretrained(cls, spec, ckpt, dtype=dtype)
    raise EncoderError(
        f"Encoder {spec.name!r}: no transformers class loads model_type {config.model_type!r} "
        "(remote-code models need options.trust_remote_code: true)"
    )


def language_model(model: Any) -> Any:
    """The text transformer inside a vision-language model (Qwen-VL, MiMo-VL, Ovis, InternVL)."""
    for path in _LANGUAGE_MODEL_PATHS:
        obj = model
        for part in path.split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                break
        if obj is not None:
            # Ovis (llm) and InternVL (language_model) hold a ForCausalLM: keep its base model.
            return obj.base_model if hasattr(obj, "lm_head") else obj
    raise EncoderError(
        f"{type(model).__name__} has none of {', '.join(_LANGUAGE_MODEL_PATHS)}; "
        "cannot find its language model (use family 'causal-lm' or 'hf')"
    )


def _build_clip(spec: EncoderSpec, ckpt: Checkpoint, *, config: Any, dtype: Any) -> tuple[Any, dict[str, int]]:
    cls = _transformers_class("CLIPTextModel")
    return from_pretrained(cls, spec, ckpt, dtype=dtype, ignore=_CLIP_OTHER_TOWER)


def _build_altclip(spec: EncoderSpec, ckpt: Checkpoint, *, config: Any, dtype: Any) -> tuple[Any, dict[str, int]]:
    # AltCLIPTextModel alone on the full folder maps no key (every weight random).
    return from_pretrained(_transformers_class("AltCLIPModel"), spec, ckpt, dtype=dtype)


def _altclip_text(model: Any) -> Any:
    return model.text_model


_NO_CACHE = (("use_cache", False),)

FAMILIES: dict[str, Family] = {
    "bert": Family(
        "bert", _build_auto, _identity, include_embedding=True,
        last_layer_note="output of the last layer (post-LN blocks: no separate final norm)",
    ),
    "t5": Family(
        "t5", _build_t5, _identity, include_embedding=True, absolute_positions=False,
        last_layer_note="after the encoder's final RMS layer norm (T5 applies final_layer_norm to the last block)",
    ),
    "causal-lm": Family(
        "causal-lm", _build_causal_lm, _base_model, include_embedding=False, absolute_positions=False,
        last_layer_note="after the final norm", forward_kwargs=_NO_CACHE,
    ),
    "mllm": Family(
        "mllm", _build_mllm, language_model, include_embedding=False, absolute_positions=False,
        last_layer_note="after the final norm (language model only, text-only input)", forward_kwargs=_NO_CACHE,
    ),
    "clip": Family(
        "clip", _build_clip, _identity, include_embedding=True,
        last_layer_note="output of the last layer, BEFORE the final LayerNorm (final_layer_norm not applied)",
    ),
    "altclip": Family(
        "altclip", _build_altclip, _altclip_text, include_embedding=True,
        last_layer_note="output of the last XLM-R layer (post-LN block); AltCLIP's pre_LN and projection not applied",
    ),
    "hf": Family(
        "hf", _build_auto, _identity, include_embedding=True,
        last_layer_note="as the model's output_hidden_states gives it (check whether a final norm is applied)",
    ),
}
