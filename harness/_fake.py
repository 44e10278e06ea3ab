"""The seeded `FakeEncoder` and the shipped tiny data: what `harness.testing` and `harness.conformance` share."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.encoding import drop_prefix, format_text, make_encoder_info
from harness.types import EncodedBatch, EncoderOptions, EncoderSpec

__all__ = ["CHECK_TEXTS", "DATA_DIR", "NOT_YOURS", "TINY_PAIRS", "TINY_TASK", "FakeEncoder"]


DATA_DIR = Path(__file__).resolve().parent / "testing_data"
TINY_TASK = DATA_DIR / "tiny.jsonl"
TINY_PAIRS = DATA_DIR / "tiny_pairs.jsonl"
# A name no plugin owns: a factory hook must answer it with None.
NOT_YOURS = "__harness-check-not-yours__"
# Default texts for `check_encoder`: different lengths, so batches are padded.
CHECK_TEXTS = (
    "a red cat sits on the mat",
    "two dogs run across a green field while the sun sets",
    "nothing",
)


class FakeEncoder:
    """Deterministic bag-of-context encoder: word vectors from a hash, mixed over ``num_layers`` layers.

    Hidden state of layer ``i`` is ``tanh(W_i h_{i-1} + 0.5 * mean(h_{i-1}))``; token vectors
    depend only on the word and ``seed``, so results are reproducible across machines.
    ``options`` (default: ``EncoderOptions(max_length=max_length)``) is honoured like a
    real encoder's: templates, ``max_length`` (in words), ``dtype``, ``drop_prefix_tokens``.
    """

    def __init__(self, name: str = "fake", *, seed: int = 0, num_layers: int = 3, width: int = 16,
                 max_length: int = 64, options: EncoderOptions | None = None, revision: str | None = None) -> None:
        import torch

        # plain captions by default: the fake's numbers predate the official caption prefix
        self.options = options if options is not None else EncoderOptions(max_length=max_length, template="plain")
        self.seed, self.width, self.max_length = seed, width, self.options.max_length
        g = torch.Generator().manual_seed(seed)
        self.weights = [torch.randn(width, width, generator=g) / width**0.5 for _ in range(num_layers)]
        spec = EncoderSpec(name=name, family="fake", checkpoint=f"seed-{seed}", revision=revision, options=self.options)
        self.info = make_encoder_info(spec, num_layers=num_layers, width=width, include_embedding_default=True,
                                      last_layer_note="output of the last mixing layer", options_extra={"seed": seed})
        self.calls: list[int] = []  # batch sizes seen, for tests that count encoder work

    def format(self, text: str, *, role: str = "caption", caption_type: str = "image") -> str:
        """Apply ``options.template`` (captions) or ``options.statement_template`` (statements)."""
        return format_text(self.options, text, role=role, caption_type=caption_type)

    def _word(self, word: str) -> Any:
        import torch

        digest = hashlib.sha256(f"{self.seed}:{word.lower()}".encode()).digest()
        g = torch.Generator().manual_seed(int.from_bytes(digest[:8], "little"))
        return torch.randn(self.width, generator=g)

    def encode(self, texts: Sequence[str], *, up_to_layer: int | None = None,
               max_length: int | None = None) -> EncodedBatch:
        """One token per word (at most ``max_length``, default the options'); layers above ``up_to_layer`` are skipped."""
        import torch

        self.calls.append(len(texts))
        limit = self.max_length if max_length is None else max_length
        toks = [re.findall(r"\w+", t)[:limit] or ["<empty>"] for t in texts]
        t_max = max(len(t) for t in toks)
        h = torch.zeros(len(texts), t_max, self.width)
        mask = torch.zeros(len(texts), t_max, dtype=torch.long)
        for i, words in enumerate(toks):
            h[i, : len(words)] = torch.stack([self._word(w) for w in words])
            mask[i, : len(words)] = 1
        states = [h]
        m = mask.unsqueeze(-1).float()
        for w in self.weights[: up_to_layer]:
            ctx = (states[-1] * m).sum(1, keepdim=True) / m.sum(1, keepdim=True)
            states.append(torch.tanh(states[-1] @ w + 0.5 * ctx) * m)
        if self.options.dtype != "float32":
            states = [s.to(getattr(torch, self.options.dtype)) for s in states]
        truncated = [len(re.findall(r"\w+", t)) > limit for t in texts]
        return EncodedBatch(hidden_states=tuple(states), attention_mask=drop_prefix(mask, self.options.drop_prefix_tokens),
                            n_truncated=sum(truncated), truncated=truncated)
