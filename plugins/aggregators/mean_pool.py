"""Mean-pool aggregator: the masked mean over real tokens, untrained (the paper's Table 7 baseline).

Also home of `embed_texts`, the batched, length-sorted embedding loop every
aggregator here uses.  torch is imported inside functions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from harness import AggregatorOptions, CaptionPair, ConfigError, TrainReport
from harness.types import FeatureBatchFn, StepCallback

if TYPE_CHECKING:
    import torch

__all__ = ["MeanPoolAggregator", "embed_texts", "masked_mean"]


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over real tokens of ``[B, T, D]`` (``[B, L, T, D]``: layers averaged first)."""
    if x.dim() == 4:
        x = x.mean(1)
    m = mask.to(x.dtype).unsqueeze(-1)
    return (x * m).sum(1) / m.sum(1).clamp_min(1.0)


def embed_texts(fn: Callable[[Any, Any], Any], features: FeatureBatchFn, texts: Sequence[str],
                batch_size: int) -> Any:
    """``fn(x, mask)`` over length-sorted batches without grad; L2-normalised rows in input order."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    order = sorted(range(len(texts)), key=lambda i: len(texts[i]), reverse=True)
    out: list[Any] = [None] * len(texts)
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            x, mask = features([texts[i] for i in idx])
            z = F.normalize(fn(x, mask).float(), dim=-1).cpu().numpy()
            for j, i in enumerate(idx):
                out[i] = z[j]
    return np.stack(out) if out else np.zeros((0, 0), dtype=np.float32)


class MeanPoolAggregator:
    """Masked mean over tokens, no parameters, no training (satisfies `harness.Aggregator`)."""

    name = "mean-pool"
    trainable = False

    def __init__(self, options: AggregatorOptions) -> None:
        self.embed_batch_size = options.embed_batch_size

    def config(self) -> dict[str, Any]:
        return {"pooling": "masked-mean"}

    def fit(self, features: FeatureBatchFn, pairs: Sequence[CaptionPair], *, seed: int,
            on_step: StepCallback | None = None) -> TrainReport:
        return TrainReport()

    def embed(self, features: FeatureBatchFn, texts: Sequence[str]) -> Any:
        return embed_texts(masked_mean, features, texts, self.embed_batch_size)

    def save(self, path: str) -> None:
        raise ConfigError("mean-pool has no parameters to save")

    def load(self, path: str) -> None:
        raise ConfigError("mean-pool has no parameters to load")
