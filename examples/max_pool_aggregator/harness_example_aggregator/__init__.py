"""Example ted-harness plugin: the aggregator ``max-pool`` (``harness run --aggregator max-pool``).

The largest value of each feature over a text's real tokens, L2-normalised; no parameters, so
nothing is trained and no caption pairs are needed.  Building it is cheap, as the hook requires;
torch is imported only when it embeds.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from harness import AggregatorOptions, CaptionPair, ConfigError, TrainReport, hookimpl

NAME = "max-pool"


class MaxPoolAggregator:
    """Satisfies `harness.Aggregator`."""

    name = NAME
    trainable = False

    def __init__(self, options: AggregatorOptions) -> None:
        self.batch_size = options.embed_batch_size

    def config(self) -> dict[str, Any]:
        return {"pooling": "masked-max"}  # every setting that changes a number

    def fit(self, features: Any, pairs: Sequence[CaptionPair], *, seed: int, on_step: Any = None) -> TrainReport:
        return TrainReport()  # nothing to train

    def embed(self, features: Any, texts: Sequence[str]) -> Any:
        import torch

        out = []
        for start in range(0, len(texts), self.batch_size):
            x, mask = features(texts[start : start + self.batch_size])  # [B, (L,) T, D], [B, T]
            x = torch.as_tensor(x, dtype=torch.float32)
            if x.dim() == 4:  # a layer stack (the learned extractor): average the layers first
                x = x.mean(1)
            keep = torch.as_tensor(mask, dtype=torch.bool).to(x.device).unsqueeze(-1)
            pooled = x.masked_fill(~keep, float("-inf")).amax(dim=1)
            out.append(torch.nn.functional.normalize(pooled, dim=-1).cpu())
        return torch.cat(out).numpy()

    def save(self, path: str) -> None:
        raise ConfigError(f"{NAME} has no parameters to save")

    def load(self, path: str) -> None:
        raise ConfigError(f"{NAME} has no parameters to load")


@hookimpl
def harness_aggregator_names() -> list[str]:
    return [NAME]


@hookimpl
def harness_make_aggregator(name: str, width: int, n_layers_in: int,
                            options: AggregatorOptions) -> MaxPoolAggregator | None:
    if name != NAME:
        return None  # not ours
    return MaxPoolAggregator(options)


@hookimpl
def harness_aggregator_trains(name: str) -> bool | None:
    return False if name == NAME else None
