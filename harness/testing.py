"""Offline helpers for testing plugins: a seeded `FakeEncoder` and a 5-row task.

Register ``harness.testing`` as a plugin (``-p harness.testing``) to get the
encoder family ``fake`` (registry name ``fake``) and the task ``tiny``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.hookspecs import hookimpl
from harness.types import EncodedBatch, EncoderInfo, EncoderSpec

__all__ = ["FakeEncoder", "TINY_TASK", "harness_encoder_families", "harness_load_encoder"]

DATA_DIR = Path(__file__).resolve().parent / "testing_data"
TINY_TASK = DATA_DIR / "tiny.jsonl"


class FakeEncoder:
    """Deterministic bag-of-context encoder: word vectors from a hash, mixed over ``num_layers`` layers.

    Hidden state of layer ``i`` is ``tanh(W_i h_{i-1} + 0.5 * mean(h_{i-1}))``; token vectors
    depend only on the word and ``seed``, so results are reproducible across machines.
    """

    def __init__(self, name: str = "fake", *, seed: int = 0, num_layers: int = 3, width: int = 16,
                 max_length: int = 64) -> None:
        import torch

        self.seed, self.width, self.max_length = seed, width, max_length
        g = torch.Generator().manual_seed(seed)
        self.weights = [torch.randn(width, width, generator=g) / width**0.5 for _ in range(num_layers)]
        self.info = EncoderInfo(name=name, family="fake", checkpoint=f"seed-{seed}", revision=None,
                                num_layers=num_layers, width=width, include_embedding_default=True,
                                last_layer_note="output of the last mixing layer",
                                options={"seed": seed, "max_length": max_length})
        self.calls: list[int] = []  # batch sizes seen, for tests that count encoder work

    def format(self, text: str, *, role: str = "caption", caption_type: str = "image") -> str:
        return text

    def _word(self, word: str) -> Any:
        import torch

        digest = hashlib.sha256(f"{self.seed}:{word.lower()}".encode()).digest()
        g = torch.Generator().manual_seed(int.from_bytes(digest[:8], "little"))
        return torch.randn(self.width, generator=g)

    def encode(self, texts: Sequence[str], *, up_to_layer: int | None = None) -> EncodedBatch:
        import torch

        self.calls.append(len(texts))
        toks = [re.findall(r"\w+", t)[: self.max_length] or ["<empty>"] for t in texts]
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
        truncated = sum(len(re.findall(r"\w+", t)) > self.max_length for t in texts)
        return EncodedBatch(hidden_states=tuple(states), attention_mask=mask, n_truncated=truncated)


@hookimpl
def harness_encoder_families() -> list[str]:
    return ["fake"]


@hookimpl
def harness_load_encoder(spec: EncoderSpec) -> FakeEncoder | None:
    if spec.family != "fake":
        return None
    seed = int(spec.checkpoint.rsplit("-", 1)[-1]) if spec.checkpoint.startswith("seed-") else 0
    return FakeEncoder(spec.name, seed=seed)


@hookimpl
def harness_registry_files() -> list[Path]:
    return [DATA_DIR / "_registry.yaml"]


@hookimpl
def harness_task_dirs() -> list[Path]:
    return [DATA_DIR]
