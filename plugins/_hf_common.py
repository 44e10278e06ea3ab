"""Shared pieces of the Hugging Face encoder plugin: checkpoints, templates, masks, checks.

Heavy imports (torch, transformers, huggingface_hub) happen inside functions only.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from harness import ConfigError, EncoderError, EncoderSpec, resolve_path

__all__ = [
    "GRANTED_CAPTION",
    "TEMPLATES",
    "Checkpoint",
    "apply_template",
    "check_finite",
    "check_loading_info",
    "check_template",
    "drop_prefix",
    "hf_error",
    "resolve_checkpoint",
    "require",
    "resolve_dtype",
    "tokenize",
]

# The official GRAN-TED caption prefix (caption_type is "image" or "video").
GRANTED_CAPTION = "Caption Type: {caption_type}\nCaption: {text}"
TEMPLATES = ("plain", "chat", "granted-caption")
_DTYPES = ("float32", "bfloat16", "float16")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


class Checkpoint:
    """Where weights come from: a local folder, or a hub id plus its pinned revision."""

    def __init__(self, path: str, *, revision: str | None, local: bool) -> None:
        self.path, self.revision, self.local = path, revision, local

    def kwargs(self, spec: EncoderSpec) -> dict[str, Any]:
        """Keyword arguments shared by every ``from_pretrained`` call."""
        out: dict[str, Any] = {"trust_remote_code": spec.options.trust_remote_code}
        if not self.local and self.revision:
            out["revision"] = self.revision
        return out


def resolve_checkpoint(spec: EncoderSpec) -> Checkpoint:
    """Resolve ``spec.checkpoint``; refuse missing folders and uncached hub ids when offline."""
    path = resolve_path(spec.checkpoint)
    if os.path.isdir(path):
        return Checkpoint(path, revision=None, local=True)
    looks_local = path.startswith(("/", ".", "~")) or os.path.exists(path) or "$" in path or "\\" in path
    if looks_local or not _HUB_ID.match(path):
        raise EncoderError(
            f"Encoder {spec.name!r}: checkpoint {spec.checkpoint!r} (resolved to {path!r}) is not a folder. "
            "Point it at a saved model folder or a hub id ORG/NAME (is an environment variable unset?)"
        )
    if _offline() and not _hub_cached(path, spec.revision):
        raise EncoderError(
            f"Encoder {spec.name!r}: checkpoint {path!r} is a hub id, but HF_HUB_OFFLINE=1 and it is not in "
            f"the local cache. Download it first (hf download {path}"
            f"{' --revision ' + spec.revision if spec.revision else ''}) or set checkpoint to a local folder"
        )
    return Checkpoint(path, revision=spec.revision, local=False)


def _hub_cached(repo: str, revision: str | None) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - transformers always brings it
        return False
    for name in ("config.json", "open_clip_config.json"):
        found = try_to_load_from_cache(repo, name, revision=revision)
        if isinstance(found, str):
            return True
    return False


def hf_error(spec: EncoderSpec, ckpt: Checkpoint, exc: BaseException) -> EncoderError:
    """Turn a transformers load failure (OSError, ValueError) into one clear line."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    where = ckpt.path if ckpt.local else f"{ckpt.path}@{ckpt.revision or 'latest'}"
    return EncoderError(f"Encoder {spec.name!r} ({spec.family}): cannot load {where!r}: {first}")


def require(spec: EncoderSpec, module: str, *, extra: str) -> None:
    """Raise a one-line install hint if ``module`` (an optional dependency) is missing."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise EncoderError(f"Encoder {spec.name!r} (family {spec.family}) needs {module}: pip install 'ted-harness[{extra}]'")


def resolve_dtype(spec: EncoderSpec) -> Any:
    """The torch dtype named by ``spec.options.dtype``."""
    import torch

    name = spec.options.dtype
    if name not in _DTYPES:
        raise ConfigError(f"Encoder {spec.name!r}: dtype {name!r} is not one of {', '.join(_DTYPES)}")
    return getattr(torch, name)


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


def apply_template(text: str, template: str, *, caption_type: str, tokenizer: Any, system_prompt: str | None) -> str:
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


def tokenize(tokenizer: Any, texts: Sequence[str], *, max_length: int) -> tuple[dict[str, Any], int]:
    """Pad to the longest text, truncate at ``max_length``; also count truncated texts."""
    lengths = tokenizer(list(texts), add_special_tokens=True, truncation=False)["input_ids"]
    n_truncated = sum(len(ids) > max_length for ids in lengths)
    batch = tokenizer(
        list(texts), padding="longest", truncation=True, max_length=max_length, return_tensors="pt"
    )
    keep = ("input_ids", "attention_mask", "token_type_ids")
    return {k: v for k, v in batch.items() if k in keep}, n_truncated


def drop_prefix(mask: Any, n: int) -> Any:
    """Zero the first ``n`` real (mask == 1) tokens of each row, whichever side is padded."""
    if n <= 0:
        return mask
    real = mask.bool()
    rank = real.long().cumsum(dim=1)
    return (real & (rank > n)).to(mask.dtype)


def check_finite(hidden_states: Sequence[Any], mask: Any, *, spec: EncoderSpec, dtype: Any) -> None:
    """Raise if any real token carries NaN or inf in any layer."""
    import torch

    keep = mask.bool()
    for i, h in enumerate(hidden_states):
        bad = ~torch.isfinite(h).all(dim=-1) & keep.to(h.device)  # [B, T]: no copy of h
        if bool(bad.any()):
            raise EncoderError(
                f"Encoder {spec.name!r} produced NaN/inf in hidden state {i} with dtype "
                f"{str(dtype).replace('torch.', '')}; float16 overflows in T5-style models: "
                "set options.dtype to float32 or bfloat16"
            )


def check_loading_info(
    info: Mapping[str, Any],
    *,
    spec: EncoderSpec,
    model_class: str,
    ignore: Iterable[str] = (),
) -> dict[str, int]:
    """Refuse a model whose weights did not all come from the checkpoint.

    ``ignore`` holds regexes of keys a family drops on purpose, missing or
    unexpected (e.g. ``lm_head`` when only the base model is loaded, an unused pooler).
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
