"""`HFEncoder`: one loaded transformers model + tokenizer satisfying `harness.types.Encoder`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from harness import EncodedBatch, EncoderInfo, EncoderSpec
from harness.api import check_finite, drop_prefix, format_text, forward_up_to, tokenize_flagged

__all__ = ["HFEncoder", "find_layers", "input_device"]


class HFEncoder:
    """Runs a frozen transformers model and returns every layer's hidden states.

    ``hidden_states[0]`` is the embedding output and ``hidden_states[i]`` the
    output of layer ``i``, exactly as ``output_hidden_states=True`` gives them.
    Tokenizers pad on the right so that real tokens of decoder-only models get
    positions 0..n-1 whatever the batch.
    """

    def __init__(
        self,
        spec: EncoderSpec,
        info: EncoderInfo,
        *,
        model: Any,
        tokenizer: Any,
        max_length: int,
        length_cap: int | None = None,
        forward_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        self.spec, self.info = spec, info
        self.model, self.tokenizer, self.max_length = model, tokenizer, max_length
        self.length_cap = length_cap  # what the model can take at all (learned positions), None: no limit
        self.forward_kwargs = dict(forward_kwargs or {})
        self.layers = find_layers(model, info.num_layers)

    def format(self, text: str, *, role: str = "caption", caption_type: str = "image") -> str:
        """Apply ``options.template`` (captions) or ``options.statement_template`` (statements)."""
        return format_text(self.spec.options, text, role=role, caption_type=caption_type, tokenizer=self.tokenizer)

    def encode(self, texts: Sequence[str], *, up_to_layer: int | None = None,
               max_length: int | None = None) -> EncodedBatch:
        """Tokenize formatted ``texts`` (truncated at ``max_length`` tokens, default the evaluation
        length) and return all hidden states (or layers 0..up_to_layer)."""
        limit = self.max_length if max_length is None else max_length
        if self.length_cap is not None:
            limit = min(limit, self.length_cap)
        inputs, truncated = tokenize_flagged(self.tokenizer, texts, max_length=limit)
        mask = inputs["attention_mask"]
        device = input_device(self.model)
        on_device = {k: v.to(device) for k, v in inputs.items()}
        # A model in training (evaluated from inside its training loop): no dropout here, and every
        # submodule's mode is put back as it was afterwards.
        training = [m for m in self.model.modules() if m.training]
        self.model.eval()
        try:
            hidden = self._forward(on_device, up_to_layer)
        finally:
            for module in training:
                module.training = True
        check_finite(hidden, mask, spec=self.spec, dtype=hidden[0].dtype)
        return EncodedBatch(
            hidden_states=hidden,
            attention_mask=drop_prefix(mask, self.spec.options.drop_prefix_tokens),
            n_truncated=sum(truncated),
            truncated=truncated,
        )

    def _forward(self, on_device: Mapping[str, Any], up_to_layer: int | None) -> tuple[Any, ...]:
        import torch

        with torch.inference_mode():
            if up_to_layer is not None and up_to_layer < self.info.num_layers and self.layers is not None:
                # Layers below the last equal the output_hidden_states entries; the last
                # entry (after a final norm in LMs) is never produced this way.
                hidden = forward_up_to(
                    lambda: self.model(**on_device, **self.forward_kwargs, return_dict=True),
                    self.layers,
                    max(up_to_layer, 0),
                )
            else:
                out = self.model(**on_device, **self.forward_kwargs, output_hidden_states=True, return_dict=True)
                hidden = tuple(out.hidden_states)
        return tuple(hidden)


def find_layers(model: Any, num_layers: int) -> Any | None:
    """The ModuleList of ``num_layers`` transformer blocks: the heaviest one of that length."""
    import torch

    found = [m for _, m in model.named_modules() if isinstance(m, torch.nn.ModuleList) and len(m) == num_layers]
    if not found:
        return None
    return max(found, key=lambda m: sum(p.numel() for p in m.parameters()))


def input_device(model: Any) -> Any:
    """Where the token ids must go (the input embedding's device, also under device_map)."""
    emb = model.get_input_embeddings()
    return emb.weight.device
