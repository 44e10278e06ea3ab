"""Built-in aggregators: GRAN-TED's trained ``context`` aggregator and untrained ``mean-pool``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields
from typing import Any

from harness import ConfigError, hookimpl

NAMES = ("context", "mean-pool")


@hookimpl(trylast=True)
def harness_aggregator_names() -> list[str]:
    return list(NAMES)


@hookimpl(trylast=True)
def harness_make_aggregator(name: str, width: int, config: dict[str, Any]) -> Any | None:
    if name == "context":
        return ContextAggregator(width, config)
    if name == "mean-pool":
        return MeanPoolAggregator(int(config.get("embed_batch_size", 64)))
    return None


def _embed(fn: Any, features: Any, texts: Sequence[str], batch_size: int) -> Any:
    """Embed in length-sorted batches without grad; rows back in input order, L2-normalised."""
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
    """Masked mean over tokens, no training (the paper's Table 7 baseline)."""

    name = "mean-pool"
    trainable = False

    def __init__(self, embed_batch_size: int = 64) -> None:
        self.embed_batch_size = embed_batch_size

    def config(self) -> dict[str, Any]:
        return {"pooling": "masked-mean"}

    def fit(self, features: Any, pairs: Sequence[Any], *, seed: int, on_step: Any = None) -> None:
        return None

    def embed(self, features: Any, texts: Sequence[str]) -> Any:
        from harness.aggregate import masked_mean

        return _embed(masked_mean, features, texts, self.embed_batch_size)

    def save(self, path: str) -> None:
        raise ConfigError("mean-pool has no parameters to save")

    def load(self, path: str) -> None:
        raise ConfigError("mean-pool has no parameters to load")


class ContextAggregator:
    """GRAN-TED's context aggregator, trained with symmetric InfoNCE."""

    name = "context"
    trainable = True

    def __init__(self, width: int, config: dict[str, Any]) -> None:
        from harness.aggregate import AggregatorConfig, ContextModel, apply_preset

        known = {f.name for f in fields(AggregatorConfig)}
        extra = set(config) - known - {"n_layers_in", "embed_batch_size"}
        if extra:
            raise ConfigError(f"Aggregator 'context': unknown option(s) {sorted(extra)}; allowed: {sorted(known)}")
        self.cfg = apply_preset(config.get("preset", "default"), **{k: config[k] for k in known & set(config)})
        self.n_layers_in = int(config.get("n_layers_in", 1))
        self.width = width
        self.embed_batch_size = int(config.get("embed_batch_size", 64))
        self.model = ContextModel(width, self.cfg, n_layers_in=self.n_layers_in)
        self._load_layer_weights()

    def _load_layer_weights(self) -> None:
        import json

        import torch

        path = self.cfg.layer_weights_file
        if path is None or self.model.layer_logits is None:
            return
        data = json.loads(open(path, encoding="utf-8").read())
        logits = data.get("logits", data.get("weights")) if isinstance(data, dict) else data
        if not isinstance(logits, list) or len(logits) != self.n_layers_in:
            raise ConfigError(f"{path}: field 'logits' must list {self.n_layers_in} numbers (one per layer)")
        with torch.no_grad():
            self.model.layer_logits.copy_(torch.tensor(logits, dtype=torch.float32))

    def config(self) -> dict[str, Any]:
        return {**self.cfg.as_dict(), "width": self.width, "n_layers_in": self.n_layers_in}

    def fit(self, features: Any, pairs: Sequence[Any], *, seed: int, on_step: Any = None) -> Any:
        import torch

        from harness.aggregate import ContextModel, train_aggregator

        torch.manual_seed(seed)  # the init depends on the seed too
        self.model = ContextModel(self.width, self.cfg, n_layers_in=self.n_layers_in)
        self._load_layer_weights()
        self.model.to(self.cfg.device)  # max_pairs is applied by the runner before encoding
        return train_aggregator(self.model, self._on_device(features), pairs, self.cfg, seed=seed, on_step=on_step)

    def _on_device(self, features: Any) -> Any:
        device = self.cfg.device
        if device == "cpu":
            return features
        return lambda texts: tuple(t.to(device, non_blocking=True) for t in features(texts))

    def embed(self, features: Any, texts: Sequence[str]) -> Any:
        self.model.to(self.cfg.device).eval()
        return _embed(self.model, self._on_device(features), texts, self.embed_batch_size)

    def save(self, path: str) -> None:
        import torch

        torch.save(self.model.state_dict(), path)

    def load(self, path: str) -> None:
        import torch

        self.model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        self.model.eval()
