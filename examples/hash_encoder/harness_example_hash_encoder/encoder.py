"""A hashed bag-of-words encoder: word vectors from a hash, mixed over a few layers.

Layer ``i`` is ``tanh(h @ W_i + mean of h over the text's real tokens)``; the embedding output
``h_0`` holds one seeded vector per word.  Nothing is downloaded: the checkpoint ``WxL`` only
says the width and the number of layers.  Every option that changes a number is honoured and
recorded in ``info.options`` (so it reaches the feature-cache key).
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence

import numpy as np
import torch

from harness import ConfigError, EncodedBatch, EncoderSpec
from harness.api import drop_prefix, format_text, make_encoder_info


def _shape(checkpoint: str) -> tuple[int, int]:
    match = re.fullmatch(r"(\d+)x(\d+)", checkpoint.strip())
    if not match or int(match[1]) < 1 or int(match[2]) < 1:
        raise ConfigError(f"hash-bow checkpoint {checkpoint!r}: expected WIDTHxLAYERS, e.g. 64x4")
    return int(match[1]), int(match[2])


class HashBowEncoder:
    """Satisfies `harness.Encoder`: ``info``, ``format`` and ``encode``."""

    def __init__(self, spec: EncoderSpec) -> None:
        self.options = spec.options
        self.width, num_layers = _shape(spec.checkpoint)
        rng = np.random.default_rng(0)
        self.weights = [rng.standard_normal((self.width, self.width)) / self.width**0.5 for _ in range(num_layers)]
        self.info = make_encoder_info(spec, num_layers=num_layers, width=self.width, include_embedding_default=False,
                                      last_layer_note="output of the last mixing layer")
        self._vectors: dict[str, np.ndarray] = {}

    def format(self, text: str, *, role: str = "caption", caption_type: str = "image") -> str:
        return format_text(self.options, text, role=role, caption_type=caption_type)

    def _vector(self, word: str) -> np.ndarray:
        if word not in self._vectors:
            rng = np.random.default_rng(zlib.crc32(word.encode("utf-8")))
            self._vectors[word] = rng.standard_normal(self.width)
        return self._vectors[word]

    def encode(self, texts: Sequence[str], *, up_to_layer: int | None = None,
               max_length: int | None = None) -> EncodedBatch:
        limit = self.options.max_length if max_length is None else max_length
        words = [re.findall(r"\w+", t.lower()) for t in texts]
        kept = [w[:limit] or ["<empty>"] for w in words]  # every text keeps at least one real token
        t_max = max(len(w) for w in kept)
        h = np.zeros((len(texts), t_max, self.width))
        mask = np.zeros((len(texts), t_max), dtype=np.int64)
        for i, row in enumerate(kept):
            h[i, : len(row)] = [self._vector(w) for w in row]
            mask[i, : len(row)] = 1
        m = mask[..., None].astype(float)
        states = [h]
        for w in self.weights[:up_to_layer]:  # None: every layer; k: layers 1..k only
            context = (states[-1] * m).sum(1, keepdims=True) / m.sum(1, keepdims=True)
            states.append(np.tanh(states[-1] @ w + context) * m)
        dtype = getattr(torch, self.options.dtype)
        hidden = tuple(torch.from_numpy(s).to(device=self.options.device, dtype=dtype) for s in states)
        truncated = [len(w) > limit for w in words]
        return EncodedBatch(hidden_states=hidden,
                            attention_mask=drop_prefix(torch.from_numpy(mask), self.options.drop_prefix_tokens),
                            n_truncated=sum(truncated), truncated=truncated)
