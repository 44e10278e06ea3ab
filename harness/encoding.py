"""Building blocks for encoder plugins: templates, masks, checks, partial forwards, `EncoderInfo`.

The built-in ``hf`` and ``open-clip`` plugins are made of these, and a
third-party encoder plugin can be too::

    from harness.encoding import format_text, forward_up_to, make_encoder_info

    class MyEncoder:
        def format(self, text, *, role="caption", caption_type="image"):
            return format_text(self.spec.options, text, role=role, caption_type=caption_type)

Templates (``EncoderOptions.template`` / ``statement_template``) are one of
`TEMPLATES` or a string with a ``{text}`` (and optionally ``{caption_type}``)
placeholder.  ``chat`` renders through any tokenizer with a ``chat_template``
and ``apply_chat_template`` (transformers' API, duck-typed here).

``import harness.encoding`` does not import torch: every function that needs
it imports it when called.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from harness._exceptions import ConfigError, EncoderError
from harness.types import EncoderInfo, EncoderOptions, EncoderSpec

__all__ = [
    "DTYPES",
    "GRANTED_CAPTION",
    "ROLES",
    "TEMPLATES",
    "apply_template",
    "block_input",
    "block_output",
    "check_finite",
    "check_loading_info",
    "check_template",
    "drop_prefix",
    "format_text",
    "forward_up_to",
    "hub_offline",
    "make_encoder_info",
    "require",
    "resolve_dtype",
    "tokenize",
    "tokenize_flagged",
]

# The official GRAN-TED caption prefix (caption_type is "image" or "video").
GRANTED_CAPTION = "Caption Type: {caption_type}\nCaption: {text}"
TEMPLATES = ("plain", "chat", "granted-caption")
ROLES = ("caption", "statement")
DTYPES = ("float32", "bfloat16", "float16")


# ---------------------------------------------------------------------------------------------
# Templates


def check_template(spec: EncoderSpec, *, has_chat_template: bool) -> None:
    """Fail at load time on a template that `apply_template` would refuse later."""
    for field in ("template", "statement_template"):
        value = getattr(spec.options, field)
        if value not in TEMPLATES and "{text}" not in value:
            raise ConfigError(
                f"Encoder {spec.name!r}: {field} {value!r} is not one of {', '.join(TEMPLATES)} "
                "and has no '{text}' placeholder"
            )
        if value == "chat" and not has_chat_template:
            raise EncoderError(
                f"Encoder {spec.name!r}: {field} is 'chat' but the tokenizer of {spec.checkpoint!r} has no "
                "chat_template; use template granted-caption, plain or a '...{text}...' string"
            )


def apply_template(
    text: str, template: str, *, caption_type: str, tokenizer: Any = None, system_prompt: str | None = None
) -> str:
    """Render one text with ``template`` (see `harness.types.EncoderOptions`)."""
    if template == "plain":
        return text
    if template == "granted-caption":
        return GRANTED_CAPTION.format(caption_type=caption_type, text=text)
    if template == "chat":
        return _apply_chat(text, tokenizer=tokenizer, system_prompt=system_prompt)
    if "{text}" in template:
        return template.format(text=text, caption_type=caption_type)
    raise ConfigError(f"template {template!r} is not one of {', '.join(TEMPLATES)} and has no '{{text}}' placeholder")


def format_text(
    options: EncoderOptions,
    text: str,
    *,
    role: str = "caption",
    caption_type: str = "image",
    tokenizer: Any = None,
) -> str:
    """`harness.types.Encoder.format`, written once: the template ``role`` asks for, applied to ``text``.

    Captions use ``options.template``, statements ``options.statement_template``;
    ``tokenizer`` is only needed for the ``chat`` template.
    """
    if role not in ROLES:
        raise ConfigError(f"role {role!r} is not one of {', '.join(ROLES)}")
    template = options.template if role == "caption" else options.statement_template
    return apply_template(
        text, template, caption_type=caption_type, tokenizer=tokenizer, system_prompt=options.system_prompt
    )


def _apply_chat(text: str, *, tokenizer: Any, system_prompt: str | None) -> str:
    if tokenizer is None or not getattr(tokenizer, "chat_template", None):
        raise EncoderError("template 'chat' needs a tokenizer with a chat_template; this one has none")
    messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
    messages.append({"role": "user", "content": text})
    rendered = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)
    # The tokenizer adds BOS itself when encoding; a rendered BOS would appear twice.
    bos = getattr(tokenizer, "bos_token", None)
    if bos and rendered.startswith(bos) and _adds_bos(tokenizer):
        rendered = rendered[len(bos) :]
    return str(rendered)


def _adds_bos(tokenizer: Any) -> bool:
    ids = tokenizer("x", add_special_tokens=True)["input_ids"]
    return bool(ids) and ids[0] == tokenizer.bos_token_id


# ---------------------------------------------------------------------------------------------
# Tokens and masks


def tokenize(tokenizer: Any, texts: Sequence[str], *, max_length: int) -> tuple[dict[str, Any], int]:
    """Tokenize with an HF-style tokenizer: pad to the longest, truncate at ``max_length``.

    Returns the model inputs (``input_ids``, ``attention_mask`` and, if the
    tokenizer makes them, ``token_type_ids``) and the number of texts truncated.
    """
    inputs, truncated = tokenize_flagged(tokenizer, texts, max_length=max_length)
    return inputs, sum(truncated)


def tokenize_flagged(tokenizer: Any, texts: Sequence[str], *, max_length: int) -> tuple[dict[str, Any], list[bool]]:
    """`tokenize`, with one flag per text (was it truncated) instead of their count."""
    # only counted (never run through the model): no "indexing errors" warning for a long text
    lengths = tokenizer(list(texts), add_special_tokens=True, truncation=False, verbose=False)["input_ids"]
    truncated = [len(ids) > max_length for ids in lengths]
    batch = tokenizer(
        list(texts), padding="longest", truncation=True, max_length=max_length, return_tensors="pt"
    )
    keep = ("input_ids", "attention_mask", "token_type_ids")
    return {k: v for k, v in batch.items() if k in keep}, truncated


def drop_prefix(mask: Any, n: int) -> Any:
    """Zero the first ``n`` real (mask == 1) tokens of each row, whichever side is padded."""
    if n <= 0:
        return mask
    real = mask.bool()
    rank = real.long().cumsum(dim=1)
    return (real & (rank > n)).to(mask.dtype)


def check_finite(hidden_states: Sequence[Any], mask: Any, *, spec: EncoderSpec, dtype: Any) -> None:
    """Raise `EncoderError` if any real token (``mask == 1``) carries NaN or inf in any layer."""
    import torch

    if not hidden_states:
        return
    keep = mask.bool()
    # NaN and inf survive a sum, so a token whose float32 sum is finite has finite values in every
    # dimension: one cheap reduction per layer and one device sync per batch.  Only when some sum is
    # not finite (a NaN, or a sum that overflowed) is each layer checked exactly.
    dev = hidden_states[0].device
    sums = torch.stack([h.sum(-1, dtype=torch.float32).to(dev) for h in hidden_states])  # [L, B, T]
    if not bool((~torch.isfinite(sums) & keep.to(dev)).any()):
        return
    for i, h in enumerate(hidden_states):
        bad = ~torch.isfinite(h).all(dim=-1) & keep.to(h.device)  # [B, T]: no copy of h
        if bool(bad.any()):
            raise EncoderError(
                f"Encoder {spec.name!r} produced NaN/inf in hidden state {i} with dtype "
                f"{str(dtype).replace('torch.', '')}; float16 overflows in T5-style models: "
                "set options.dtype to float32 or bfloat16"
            )


# ---------------------------------------------------------------------------------------------
# Running part of a model


class _Stop(Exception):
    """Raised from a forward hook once the last requested block has run."""


def block_input(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """A block's hidden-state input: its first positional argument, else ``hidden_states=``."""
    return args[0] if args else kwargs["hidden_states"]


def block_output(output: Any) -> Any:
    """A block's hidden-state output: the first item of a tuple or list, else the output itself."""
    return output[0] if isinstance(output, (tuple, list)) else output


def _same(x: Any) -> Any:
    return x


def forward_up_to(
    run_forward: Callable[[], object],
    blocks: Sequence[Any],
    up_to: int,
    *,
    first_input: Callable[[tuple[Any, ...], dict[str, Any]], Any] = block_input,
    output: Callable[[Any], Any] = block_output,
    to_btd: Callable[[Any], Any] = _same,
) -> tuple[Any, ...]:
    """Run ``run_forward()`` and collect hidden states 0..``up_to`` from ``blocks`` through hooks.

    Entry 0 is the input of ``blocks[0]`` (the embedding output) and entry ``i``
    the output of ``blocks[i - 1]``.  The forward pass is stopped right after
    block ``up_to`` has run (before block 0 when ``up_to`` is 0), so layers above
    it cost nothing.  ``first_input`` picks the hidden state out of block 0's
    ``(args, kwargs)``, ``output`` out of a block's return value, and ``to_btd``
    turns each into ``[B, T, D]`` (e.g. a transpose for sequence-first models).
    Call it under ``torch.inference_mode()``; hooks are removed whatever happens.
    """
    if not 0 <= up_to <= len(blocks):
        raise ValueError(f"up_to {up_to!r} is outside 0..{len(blocks)} (the number of blocks)")
    collected: list[Any] = []

    def pre_hook(module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        collected.append(to_btd(first_input(args, kwargs)))
        if up_to == 0:
            raise _Stop

    def make_hook(i: int) -> Callable[[Any, Any, Any], None]:
        def hook(module: Any, args: Any, out: Any) -> None:
            collected.append(to_btd(output(out)))
            if i + 1 >= up_to:
                raise _Stop

        return hook

    handles = [blocks[0].register_forward_pre_hook(pre_hook, with_kwargs=True)]
    handles += [block.register_forward_hook(make_hook(i)) for i, block in enumerate(blocks[:up_to])]
    try:
        run_forward()
    except _Stop:
        pass
    finally:
        for handle in handles:
            handle.remove()
    if len(collected) != up_to + 1:
        raise EncoderError(
            f"forward_up_to: the forward pass produced {len(collected)} of {up_to + 1} hidden states; "
            "`blocks` are not the modules run_forward() runs, in order"
        )
    return tuple(collected)


# ---------------------------------------------------------------------------------------------
# Loading


def hub_offline() -> bool:
    """True when ``HF_HUB_OFFLINE`` forbids downloads (then refuse uncached hub ids clearly)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def require(spec: EncoderSpec, module: str, *, extra: str, package: str = "ted-harness") -> None:
    """Raise a one-line install hint if ``module`` (an optional dependency) is missing."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise EncoderError(
            f"Encoder {spec.name!r} (family {spec.family}) needs {module}: pip install '{package}[{extra}]'"
        )


def resolve_dtype(spec: EncoderSpec) -> Any:
    """The torch dtype named by ``spec.options.dtype`` (one of `DTYPES`)."""
    import torch

    name = spec.options.dtype
    if name not in DTYPES:
        raise ConfigError(f"Encoder {spec.name!r}: dtype {name!r} is not one of {', '.join(DTYPES)}")
    return getattr(torch, name)


def check_loading_info(
    info: Mapping[str, Any],
    *,
    spec: EncoderSpec,
    model_class: str,
    ignore: Iterable[str] = (),
) -> dict[str, int]:
    """Refuse a model whose weights did not all come from the checkpoint; return the counts.

    ``info`` holds ``missing_keys``, ``unexpected_keys`` and ``mismatched_keys``
    (transformers' ``output_loading_info``; torch's ``load_state_dict`` result
    fits too).  ``ignore`` holds regexes of keys a family drops on purpose,
    missing or unexpected (e.g. ``lm_head`` when only the base model is loaded).
    """
    patterns = [re.compile(p) for p in ignore]

    def kept(keys: Iterable[Any] | None) -> list[str]:
        return sorted(str(k) for k in keys or () if not any(p.search(str(k)) for p in patterns))

    missing = kept(info.get("missing_keys"))
    unexpected = kept(info.get("unexpected_keys"))
    mismatched = sorted(str(k[0] if isinstance(k, tuple) else k) for k in info.get("mismatched_keys") or ())
    report = {"missing": len(missing), "unexpected": len(unexpected), "mismatched": len(mismatched)}
    problems = [(missing, "missing (left randomly initialised)"), (unexpected, "unexpected (in the checkpoint, unused)"),
                (mismatched, "of mismatched shape")]
    found = [f"{len(keys)} weight(s) {what}: {', '.join(keys[:5])}{', ...' if len(keys) > 5 else ''}"
             for keys, what in problems if keys]
    if found and not spec.options.allow_missing_weights:
        raise EncoderError(
            f"Encoder {spec.name!r}: loading {spec.checkpoint!r} as {model_class} left " + "; ".join(found)
            + ". The checkpoint does not match the model class; set options.allow_missing_weights: true to accept"
        )
    return report


def make_encoder_info(
    spec: EncoderSpec,
    *,
    num_layers: int,
    width: int,
    include_embedding_default: bool,
    last_layer_note: str,
    options_extra: Mapping[str, Any] | None = None,
    local: bool = False,
    max_length: int | None = None,
    train_max_length: int | None = None,
) -> EncoderInfo:
    """The `EncoderInfo` of an encoder loaded from ``spec``.

    ``options`` records every field of ``spec.options`` (so each reaches the
    feature-cache key and results.json) plus ``options_extra``: whatever else
    was resolved at load time and changes the numbers (dtype, classes,
    effective max length, library versions).  ``local``: the weights came from a
    local folder, so the pinned hub revision does not apply and is recorded as None.
    ``max_length`` / ``train_max_length``: the lengths texts are really cut at (the asked options
    capped by what the model can take); default: the asked options.
    """
    train = spec.options.train_max_length or spec.options.max_length
    return EncoderInfo(
        name=spec.name,
        family=spec.family,
        checkpoint=spec.checkpoint,
        revision=None if local else spec.revision,
        num_layers=num_layers,
        width=width,
        include_embedding_default=include_embedding_default,
        last_layer_note=last_layer_note,
        options={**spec.options.as_dict(), **(options_extra or {})},
        max_length=spec.options.max_length if max_length is None else max_length,
        train_max_length=train if train_max_length is None else train_max_length,
        template=spec.options.template,
    )
