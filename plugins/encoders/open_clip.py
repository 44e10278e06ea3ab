"""Plugin ``open-clip``: an open_clip text tower, every block read through forward hooks.

Registered through its own entry point (``open-clip = "harness_plugins.encoders.open_clip"``);
``-p no:open-clip`` removes it and nothing else.  Importing it does not import
torch or open_clip.

Checkpoint forms (``open-clip:CHECKPOINT`` on the CLI, ``checkpoint:`` in registry.yaml):

- a local folder holding ``open_clip_config.json`` and weights (open_clip's hub layout);
- ``MODEL@FILE``: a built-in architecture plus a local weights file (``ViT-L-14@/ckpts/vitl14.pt``);
- ``MODEL@TAG``: a built-in architecture plus a pretrained tag (``ViT-L-14@openai``; downloads);
- ``hf-hub:ORG/REPO``.

Weights loaded from a local file are checked key by key (missing or unexpected
keys raise unless ``allow_missing_weights``); tags and hub ids load strictly.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness import ConfigError, EncodedBatch, Encoder, EncoderError, EncoderInfo, EncoderSpec, hookimpl, resolve_path
from harness.api import (
    check_finite,
    check_loading_info,
    check_template,
    drop_prefix,
    format_text,
    forward_up_to,
    hub_offline,
    make_encoder_info,
    require,
    resolve_dtype,
)

__all__ = ["OpenClipEncoder", "harness_encoder_families", "harness_load_encoder", "load_open_clip_encoder"]

FAMILY = "open-clip"
_NOTE = "output of the last text block, BEFORE the final LayerNorm (ln_final not applied)"


@hookimpl
def harness_encoder_families() -> list[str]:
    """The one family this plugin builds."""
    return [FAMILY]


@hookimpl(trylast=True)
def harness_load_encoder(spec: EncoderSpec) -> Encoder | None:
    """Load ``spec`` if its family is ``open-clip``, else None."""
    if spec.family != FAMILY:
        return None
    return load_open_clip_encoder(spec)


def _parse(spec: EncoderSpec) -> tuple[str, str | None, str | None]:
    """(open_clip model name, pretrained tag or None, local weights file or None)."""
    path = resolve_path(spec.checkpoint)
    if os.path.isdir(path):
        from open_clip.factory import _find_checkpoint_in_dir

        weights = _find_checkpoint_in_dir(Path(path))
        if weights is None:
            raise EncoderError(f"Encoder {spec.name!r}: folder {path!r} holds no .safetensors/.bin/.pth weights")
        return f"local-dir:{path}", None, weights
    if path.startswith("hf-hub:"):
        if hub_offline():
            raise EncoderError(
                f"Encoder {spec.name!r}: checkpoint {path!r} needs the hub, but HF_HUB_OFFLINE=1; download the "
                "repo and point checkpoint at its folder"
            )
        return path, None, None
    name, sep, pretrained = path.partition("@")
    if not sep or not pretrained:
        raise ConfigError(
            f"Encoder {spec.name!r}: open-clip checkpoint {spec.checkpoint!r} names no weights; write "
            "MODEL@TAG (ViT-L-14@openai), MODEL@/path/weights.pt, a local open_clip folder or hf-hub:ORG/REPO"
        )
    pretrained = resolve_path(pretrained)
    if os.path.isfile(pretrained):
        return name, None, pretrained
    if pretrained.startswith(("/", ".", "~")):
        raise EncoderError(f"Encoder {spec.name!r}: weights file {pretrained!r} does not exist")
    return name, pretrained, None


def _create(spec: EncoderSpec, name: str, *, tag: str | None, weights: str | None) -> tuple[Any, dict[str, int]]:
    import open_clip

    try:
        if weights is None:  # tag or hub: open_clip loads strictly (missing keys raise)
            return open_clip.create_model(name, pretrained=tag, device="cpu", require_pretrained=True), {}
        model = _quietly(open_clip.create_model, name, pretrained=None, load_weights=False, device="cpu")
        result = open_clip.load_checkpoint(model, weights, strict=False)
    except (RuntimeError, FileNotFoundError, ValueError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise EncoderError(f"Encoder {spec.name!r} (open-clip): cannot load {spec.checkpoint!r}: {first}") from exc
    info = {"missing_keys": getattr(result, "missing_keys", ()), "unexpected_keys": getattr(result, "unexpected_keys", ())}
    return model, check_loading_info(info, spec=spec, model_class=type(model).__name__)


def _quietly(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Call ``fn`` with root-logger warnings muted: open_clip warns 'initialized randomly'
    when asked not to load weights, which we then load (and check) ourselves."""
    import logging

    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        return fn(*args, **kwargs)
    finally:
        logging.disable(previous)


def _text_tower(model: Any) -> Any:
    """The module holding ``transformer.resblocks`` for the text side (CLIP or CustomTextCLIP)."""
    tower = getattr(model, "text", None) or model
    blocks = getattr(getattr(tower, "transformer", None), "resblocks", None)
    if blocks is None:
        raise EncoderError(
            f"open_clip {type(model).__name__} has a {type(tower).__name__} text tower without resblocks "
            "(an HF text tower?); load that tower with family 'hf' instead"
        )
    return tower


def load_open_clip_encoder(spec: EncoderSpec) -> OpenClipEncoder:
    """Build an `OpenClipEncoder` from ``spec`` (see the module docstring for checkpoint forms)."""
    require(spec, "open_clip", extra="clip")
    import open_clip

    name, tag, weights = _parse(spec)
    dtype = resolve_dtype(spec)
    model, report = _create(spec, name, tag=tag, weights=weights)
    import torch

    model.visual = torch.nn.Identity()  # text only: drop the image tower's memory
    model = model.to(device=spec.options.device, dtype=dtype).eval().requires_grad_(False)
    tokenizer = open_clip.get_tokenizer(name)
    check_template(spec, has_chat_template=False)
    tower = _text_tower(model)
    context = int(getattr(tokenizer, "context_length", None) or 77)
    info = make_encoder_info(
        spec,
        num_layers=len(tower.transformer.resblocks),
        width=int(tower.transformer.width),
        include_embedding_default=True,
        last_layer_note=_NOTE,
        max_length=min(spec.options.max_length, context),
        train_max_length=min(spec.options.train_max_length or spec.options.max_length, context),
        options_extra={
            "open_clip_model": name,
            "pretrained": tag or weights,
            "torch_dtype": str(dtype).replace("torch.", ""),
            "model_class": type(model).__name__,
            "tokenizer_class": type(tokenizer).__name__,
            "context_length": context,
            "max_length_effective": min(spec.options.max_length, context),
            "loading_report": report,
            "open_clip_version": open_clip.__version__,
        },
    )
    return OpenClipEncoder(spec, info, model=model, tokenizer=tokenizer, context_length=context)


class OpenClipEncoder:
    """open_clip text tower satisfying `harness.types.Encoder`.

    ``hidden_states[0]`` is token + positional embedding (the first block's
    input), ``hidden_states[i]`` block ``i``'s output.  Texts are padded to the
    model's context length (CLIP's causal mask keeps padding out of real tokens).
    """

    def __init__(self, spec: EncoderSpec, info: EncoderInfo, *, model: Any, tokenizer: Any, context_length: int) -> None:
        self.spec, self.info = spec, info
        self.model, self.tokenizer, self.context_length = model, tokenizer, context_length
        self.blocks = _text_tower(model).transformer.resblocks
        self.batch_first = bool(getattr(_text_tower(model).transformer, "batch_first", True))

    def format(self, text: str, *, role: str = "caption", caption_type: str = "image") -> str:
        """Apply ``options.template`` (captions) or ``options.statement_template`` (statements)."""
        return format_text(self.spec.options, text, role=role, caption_type=caption_type)

    def tokenize(self, texts: Sequence[str], *, max_length: int | None = None) -> tuple[Any, Any, list[bool] | None]:
        """(ids [B, context], mask [B, context], truncated per text or None); ids end at the EOT token."""
        import torch

        limit = min(self.spec.options.max_length if max_length is None else max_length, self.context_length)
        ids = self.tokenizer(list(texts), context_length=limit)
        ids = torch.nn.functional.pad(ids, (0, self.context_length - ids.shape[1]))
        eot = getattr(self.tokenizer, "eot_token_id", None)
        if eot is not None:
            last = (ids == eot).int().argmax(dim=1, keepdim=True)
            mask = (torch.arange(ids.shape[1]).unsqueeze(0) <= last).long()
        else:
            mask = (ids != int(getattr(self.tokenizer, "pad_token_id", 0) or 0)).long()
        truncated = None  # unknown without the tokenizer's encode
        if hasattr(self.tokenizer, "encode"):
            truncated = [len(self.tokenizer.encode(t)) + 2 > limit for t in texts]
        return ids, mask, truncated

    def encode(self, texts: Sequence[str], *, up_to_layer: int | None = None,
               max_length: int | None = None) -> EncodedBatch:
        """Tokenize formatted ``texts`` and return the embedding output plus every block's output."""
        import torch

        ids, mask, truncated = self.tokenize(texts, max_length=max_length)
        up_to = len(self.blocks) if up_to_layer is None else max(0, min(up_to_layer, len(self.blocks)))
        on_device = ids.to(self.spec.options.device)
        with torch.inference_mode():
            hidden = forward_up_to(
                lambda: self.model.encode_text(on_device), self.blocks, up_to, to_btd=self._as_btd
            )
        check_finite(hidden, mask, spec=self.spec, dtype=hidden[0].dtype)
        return EncodedBatch(
            hidden_states=hidden, attention_mask=drop_prefix(mask, self.spec.options.drop_prefix_tokens),
            n_truncated=sum(truncated or ()), truncated=truncated,
        )

    def _as_btd(self, x: Any) -> Any:
        return x if self.batch_first else x.transpose(0, 1)
