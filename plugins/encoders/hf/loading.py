"""Build an `HFEncoder` from a transformers checkpoint, following one `Family` recipe.

Every family goes through `load_hf_encoder`: resolve the checkpoint, load the
model class the recipe names with ``output_loading_info=True`` (refusing
missing or unexpected weights), merge a PEFT adapter if asked, keep the text
submodule, load the tokenizer, record everything that affects the numbers.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from harness import ConfigError, EncoderError, EncoderSpec, resolve_path
from harness.api import check_loading_info, check_template, make_encoder_info, require, resolve_dtype
from harness_plugins.encoders.hf.checkpoints import Checkpoint, hf_error, resolve_checkpoint
from harness_plugins.encoders.hf.encoder import HFEncoder

if TYPE_CHECKING:
    from harness_plugins.encoders.hf.families import Family

__all__ = ["from_pretrained", "infer_family", "load_hf_encoder", "wrap_hf_model"]

_ROBERTA_LIKE = {"roberta", "xlm-roberta", "xlm-roberta-xl", "camembert", "altclip_text_model", "roberta-prelayernorm"}


def from_pretrained(
    cls: Any, spec: EncoderSpec, ckpt: Checkpoint, *, dtype: Any, ignore: tuple[str, ...] = ()
) -> tuple[Any, dict[str, int]]:
    """``cls.from_pretrained`` with loading info checked (see `check_loading_info`)."""
    kwargs = {**ckpt.kwargs(spec), "dtype": dtype, "output_loading_info": True}
    if spec.options.device_map:
        kwargs["device_map"] = spec.options.device_map
    from transformers.utils import logging as hf_logging

    bar: bool = hf_logging.is_progress_bar_enabled()
    if bar and not sys.stderr.isatty():  # a batch log gets no "Loading weights" bar, only what went wrong
        hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    try:
        model, info = cls.from_pretrained(ckpt.path, **kwargs)
    except (OSError, ValueError, KeyError) as exc:
        raise hf_error(spec, ckpt, exc) from exc
    finally:
        if bar:
            hf_logging.enable_progress_bar()  # type: ignore[no-untyped-call]
    name = type(model).__name__
    return model, check_loading_info(info, spec=spec, model_class=name, ignore=ignore)


def load_hf_encoder(spec: EncoderSpec, family: Family) -> HFEncoder:
    """Load ``spec`` with ``family``'s recipe and wrap it as an `HFEncoder`."""
    require(spec, "transformers", extra="hf")
    from transformers import AutoConfig

    ckpt = resolve_checkpoint(spec)
    dtype = resolve_dtype(spec)
    try:
        config = AutoConfig.from_pretrained(ckpt.path, **ckpt.kwargs(spec))
    except (OSError, ValueError, KeyError) as exc:
        raise hf_error(spec, ckpt, exc) from exc
    full, report = family.build(spec, ckpt, config=config, dtype=dtype)
    full_class = type(full).__name__
    if spec.options.adapter:
        full = _merge_adapter(full, spec)
    model = family.select(full)
    del full  # frees the parts not selected (vision tower, LM head)
    model.eval().requires_grad_(False)
    if not spec.options.device_map:
        model.to(spec.options.device)
    tokenizer = _load_tokenizer(spec, ckpt)
    check_template(spec, has_chat_template=bool(getattr(tokenizer, "chat_template", None)))
    cap = _length_cap(model.config, family=family)
    if spec.options.max_length < 1 or (spec.options.train_max_length or 1) < 1:
        raise ConfigError(f"Encoder {spec.name!r}: max_length and train_max_length must be >= 1")
    max_length = min(spec.options.max_length, cap) if cap is not None else spec.options.max_length
    train_max_length = spec.options.train_max_length or spec.options.max_length
    train_max_length = min(train_max_length, cap) if cap is not None else train_max_length
    info = make_encoder_info(
        spec,
        num_layers=_num_layers(spec, model.config),
        width=_width(model),
        include_embedding_default=family.include_embedding,
        last_layer_note=family.last_layer_note,
        local=ckpt.local,
        max_length=max_length,
        train_max_length=train_max_length,
        options_extra={
            "resolved_checkpoint": ckpt.path,
            "torch_dtype": str(dtype).replace("torch.", ""),
            "loaded_class": full_class,
            "model_class": type(model).__name__,
            "tokenizer_class": type(tokenizer).__name__,
            "padding_side": tokenizer.padding_side,
            "max_length_effective": max_length,
            "train_max_length_effective": train_max_length,
            "loaded_revision": getattr(model.config, "_commit_hash", None),  # the hub commit actually loaded
            "loading_report": report,
            "transformers_version": _transformers_version(),
        },
    )
    return HFEncoder(
        spec, info, model=model, tokenizer=tokenizer, max_length=max_length, length_cap=cap,
        forward_kwargs=dict(family.forward_kwargs)
    )


def _transformers_version() -> str:
    import transformers

    return str(transformers.__version__)


def _load_tokenizer(spec: EncoderSpec, ckpt: Checkpoint) -> Any:
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(ckpt.path, **ckpt.kwargs(spec))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise hf_error(spec, ckpt, exc) from exc
    # Right padding: real tokens of decoder-only models then sit at positions 0..n-1
    # whatever else is in the batch.  Core gathers tokens by the mask either way.
    tokenizer.padding_side = "right"
    if tokenizer.pad_token is None:
        fallback = tokenizer.eos_token or tokenizer.unk_token
        if fallback is None:
            raise EncoderError(f"Encoder {spec.name!r}: the tokenizer has no pad, eos or unk token to pad with")
        tokenizer.pad_token = fallback
    return tokenizer


def _merge_adapter(model: Any, spec: EncoderSpec) -> Any:
    """Apply a PEFT LoRA adapter to ``model`` and merge it into the weights."""
    import warnings

    try:
        from peft import PeftModel
    except ImportError as exc:
        raise EncoderError(f"Encoder {spec.name!r} has an adapter, which needs peft: pip install 'ted-harness[peft]'") from exc
    path = resolve_path(str(spec.options.adapter))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            peft_model = PeftModel.from_pretrained(model, path)
        except (OSError, ValueError, KeyError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise EncoderError(f"Encoder {spec.name!r}: cannot apply adapter {path!r}: {first}") from exc
    missing = [str(w.message) for w in caught if "missing adapter keys" in str(w.message)]
    if missing and not spec.options.allow_missing_weights:
        raise EncoderError(
            f"Encoder {spec.name!r}: adapter {path!r} does not fit {type(model).__name__}: {missing[0][:300]}"
        )
    return peft_model.merge_and_unload()


def _num_layers(spec: EncoderSpec, config: Any) -> int:
    for attr in ("num_hidden_layers", "num_layers", "n_layer"):
        value = getattr(config, attr, None)
        if isinstance(value, int):
            return value
    raise EncoderError(f"Encoder {spec.name!r}: cannot tell the layer count from {type(config).__name__}")


def _width(model: Any) -> int:
    config = model.config
    for attr in ("hidden_size", "d_model", "n_embd"):
        value = getattr(config, attr, None)
        if isinstance(value, int):
            return value
    return int(model.get_input_embeddings().embedding_dim)


def _length_cap(config: Any, *, family: Family) -> int | None:
    """The most tokens a model with learned absolute positions can take (its position table);
    None for relative or rotary positions (T5, LLMs), where the official lengths apply as asked —
    a tokenizer's ``model_max_length`` (512 for T5) is a default, not a limit."""
    positions = getattr(config, "max_position_embeddings", None)
    if not family.absolute_positions or not isinstance(positions, int):
        return None
    if getattr(config, "model_type", "") in _ROBERTA_LIKE:  # positions start after the pad id
        positions -= int(getattr(config, "pad_token_id", 1) or 1) + 1
    return positions


def infer_family(model: Any) -> str:
    """The family whose recipe fits an in-memory transformers ``model`` (see `wrap_hf_model`)."""
    from harness_plugins.encoders.hf.families import _LANGUAGE_MODEL_PATHS

    config = getattr(model, "config", None)
    kind = str(getattr(config, "model_type", ""))
    cls = type(model).__name__
    if kind in ("t5", "mt5", "umt5"):
        return "t5"
    if kind.startswith("altclip"):
        return "altclip"
    if kind.startswith("clip"):
        return "clip"
    if getattr(config, "vision_config", None) is not None:
        return "mllm" if any(_has_path(model, p) for p in _LANGUAGE_MODEL_PATHS) else "hf"
    if cls.endswith("ForCausalLM") or cls.endswith("Model") and getattr(config, "is_decoder", False):
        return "causal-lm"
    return "bert" if kind in _ROBERTA_LIKE or "bert" in kind or kind in ("mpnet", "electra") else "hf"


def _has_path(model: Any, path: str) -> bool:
    obj = model
    for part in path.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return False
    return True


def wrap_hf_model(model: Any, tokenizer: Any, spec: EncoderSpec) -> HFEncoder | None:
    """Wrap a transformers model already in memory (and its tokenizer) as an `HFEncoder`.

    The model is used as it is — same object, same device and dtype, its train/eval mode restored
    after each batch — so a training loop can evaluate the text encoder it is training.  ``spec``
    gives the name and options; an empty ``spec.family`` is inferred from the model.  Returns None
    for an object that is not a transformers model."""
    import copy

    from harness_plugins.encoders.hf.families import FAMILIES

    if not hasattr(model, "config") or not hasattr(model, "forward") or tokenizer is None:
        return None
    name = spec.family or infer_family(model)
    family = FAMILIES.get(name)
    if family is None:
        raise ConfigError(f"Encoder {spec.name!r}: family {name!r} is not one of {', '.join(FAMILIES)}")
    if name == "t5" and not type(model).__name__.endswith("EncoderModel") and hasattr(model, "get_encoder"):
        model = model.get_encoder()  # a full encoder-decoder model: its encoder stack
    else:
        model = family.select(model)
    tokenizer = copy.copy(tokenizer)  # our padding side must not change the caller's tokenizer
    tokenizer.padding_side = "right"
    spec = EncoderSpec(name=spec.name, family=name, checkpoint=spec.checkpoint or f"in-memory:{type(model).__name__}",
                       options=spec.options)
    cap = _length_cap(model.config, family=family)
    max_length = min(spec.options.max_length, cap) if cap is not None else spec.options.max_length
    train = spec.options.train_max_length or spec.options.max_length
    train_max_length = min(train, cap) if cap is not None else train
    info = make_encoder_info(
        spec, num_layers=_num_layers(spec, model.config), width=_width(model),
        include_embedding_default=family.include_embedding, last_layer_note=family.last_layer_note, local=True,
        max_length=max_length, train_max_length=train_max_length,
        options_extra={"in_memory": True, "model_class": type(model).__name__,
                       "tokenizer_class": type(tokenizer).__name__, "padding_side": "right",
                       "max_length_effective": max_length,
                       "train_max_length_effective": train_max_length,
                       "transformers_version": _transformers_version()},
    )
    return HFEncoder(spec, info, model=model, tokenizer=tokenizer, max_length=max_length, length_cap=cap,
                     forward_kwargs=dict(family.forward_kwargs))
