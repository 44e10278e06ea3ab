"""Mean pooling, two ways, named plainly in results.

* ``mean-pool``: the masked mean over real tokens, no parameters, no training (the paper's
  Table 7 baseline as described: the similarity of mean-pooled features).
* ``mean-pool-trained``: the official code's mean-pooling path, a trained head — masked mean
  -> MLP -> LayerNorm -> Linear to ``dim_out`` — trained like the context aggregator.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from harness import AggregatorOptions, CaptionPair, ConfigError, TrainReport
from harness.api import FeatureBatchFn, StepCallback, TrainingLog

from harness_plugins.aggregators.training import TrainConfig, TrainedAggregator, embed_texts, fuse_layers, layer_weights_for

__all__ = ["MeanPoolAggregator", "MeanPoolHead", "TrainedMeanPoolAggregator", "masked_mean"]


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over real tokens of ``[B, T, D]`` (``[B, L, T, D]``: layers averaged first)."""
    if x.dim() == 4:
        x = x.mean(1)
    m = mask.to(x.dtype).unsqueeze(-1)
    return (x * m).sum(1) / m.sum(1).clamp_min(1.0)


class MeanPoolAggregator:
    """Masked mean over tokens, no parameters, no training (satisfies `harness.Aggregator`)."""

    name = "mean-pool"
    trainable = False

    def __init__(self, options: AggregatorOptions) -> None:
        self.embed_batch_size = options.embed_batch_size

    def config(self) -> dict[str, Any]:
        return {"pooling": "masked-mean"}

    def fit(self, features: FeatureBatchFn, pairs: Sequence[CaptionPair], *, seed: int,
            on_step: StepCallback | None = None, log: TrainingLog | None = None) -> TrainReport:
        return TrainReport()

    def embed(self, features: FeatureBatchFn, texts: Sequence[str]) -> Any:
        return embed_texts(masked_mean, features, texts, self.embed_batch_size)

    def save(self, path: str) -> None:
        raise ConfigError("mean-pool has no parameters to save")

    def load(self, path: str) -> None:
        raise ConfigError("mean-pool has no parameters to load")


class MeanPoolHead(nn.Module):
    """Masked mean -> MLP (Linear, GELU, Linear) -> LayerNorm -> Linear to ``dim_out``."""

    def __init__(self, dim: int, cfg: TrainConfig, *, n_layers_in: int = 1) -> None:
        super().__init__()
        hidden = int(dim * cfg.mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(cfg.dropout), nn.Linear(hidden, dim))
        self.norm = nn.LayerNorm(dim)
        self.proj = nn.Linear(dim, cfg.dim_out)
        self.layer_weights = layer_weights_for(n_layers_in, cfg)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = fuse_layers(self.layer_weights, x)
        out: torch.Tensor = self.proj(self.norm(self.mlp(masked_mean(x, mask))))
        return out


class TrainedMeanPoolAggregator(TrainedAggregator):
    """The official code's trained mean-pooling head (satisfies `harness.Aggregator`)."""

    name = "mean-pool-trained"

    def _new_model(self) -> nn.Module:
        return MeanPoolHead(self.width, self.cfg, n_layers_in=self.n_layers_in)
