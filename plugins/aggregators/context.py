"""GRAN-TED's context aggregator: model, presets, training loop and checkpoint format.

`ContextModel` follows the paper (Appendix A) and the official code's options: a
learnable context token is prepended, two pre-LayerNorm transformer blocks (bias-free
q/k/v/o self-attention with a padding mask and RoPE on text tokens; GELU MLP) run at
the encoder's width, then a final LayerNorm and a linear projection to ``dim_out``,
read out at the context token.  Multi-layer (``learned``) inputs are fused inside
with softmax layer weights.  `train` is the whole training loop, nanoGPT style.
`ContextAggregator` is what the ``harness_make_aggregator`` hook returns.

This module imports torch; the plugin's ``__init__`` imports it only when asked.
"""

from __future__ import annotations

import functools
import io
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from harness import AggregatorOptions, CaptionPair, ConfigError, TrainReport, distributed
from harness.types import FeatureBatchFn, StepCallback

from harness_plugins.aggregators.mean_pool import embed_texts

__all__ = [
    "CHECKPOINT_FORMAT",
    "PRESETS",
    "ContextAggregator",
    "ContextConfig",
    "ContextModel",
    "info_nce",
    "resolve_config",
    "rope",
    "train",
]

CHECKPOINT_FORMAT = 1  # bump when the state dict layout changes: old checkpoints then never match


@dataclass(frozen=True)
class ContextConfig:
    """Every hyper-parameter of the context aggregator and its training.  Recorded in results."""

    dim_out: int = 1024
    heads: int = 8
    mlp_ratio: float = 4.0
    blocks: int = 2
    rope: bool = True
    dropout: float = 0.0
    layer_weights: str = "train"  # train | frozen  (learned extractor only)
    layer_weights_file: str | None = None  # JSON list or {"weights": [...]} of raw logits
    temperature: float = 0.07
    logit_clamp: float = 15.0
    lr: float = 1e-4
    weight_decay: float = 1e-5
    epochs: int = 2
    batch_size: int = 32
    device: str = "auto"  # auto: the GPU when there is one (where the features come from), else CPU
    preset: str = "default"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# "paper": the official trainer's values, meant for ~500k pairs.  "default": measured here
# to actually move the aggregator on thousands of pairs (MiniLM norm-avg 0.54 -> 0.63).
PRESETS: dict[str, ContextConfig] = {
    "default": ContextConfig(),
    "paper": ContextConfig(lr=1e-5, epochs=1, batch_size=32, preset="paper"),
    "baby": ContextConfig(dim_out=32, heads=2, mlp_ratio=2.0, epochs=1, batch_size=8, preset="baby"),
}


def rope(x: torch.Tensor, offset: int = 1) -> torch.Tensor:
    """Rotate-half RoPE over the last dim of ``[B, H, T, d]``; positions start at ``offset``."""
    d = x.shape[-1]
    inv = 1.0 / (10000 ** (torch.arange(0, d, 2, device=x.device, dtype=torch.float32) / d))
    pos = torch.arange(offset, offset + x.shape[-2], device=x.device, dtype=torch.float32)
    ang = torch.outer(pos, inv)
    cos, sin = torch.cat([ang, ang], -1).cos().to(x.dtype), torch.cat([ang, ang], -1).sin().to(x.dtype)
    x1, x2 = x.chunk(2, dim=-1)
    return x * cos + torch.cat([-x2, x1], -1) * sin


class Block(nn.Module):
    """Pre-LN transformer block; RoPE on q/k of text tokens, never on the context token."""

    def __init__(self, dim: int, cfg: ContextConfig) -> None:
        super().__init__()
        if dim % cfg.heads or (cfg.rope and (dim // cfg.heads) % 2):
            raise ConfigError(f"Aggregator width {dim} must split into {cfg.heads} heads of even size")
        self.heads, self.use_rope, self.p = cfg.heads, cfg.rope, cfg.dropout
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.q, self.k, self.v, self.o = (nn.Linear(dim, dim, bias=False) for _ in range(4))
        hidden = int(dim * cfg.mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(cfg.dropout),
                                 nn.Linear(hidden, dim), nn.Dropout(cfg.dropout))

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        h = self.norm1(x)
        q, k, v = (p(h).view(b, t, self.heads, d // self.heads).transpose(1, 2) for p in (self.q, self.k, self.v))
        if self.use_rope and t > 1:
            q = torch.cat([q[:, :, :1], rope(q[:, :, 1:])], 2)
            k = torch.cat([k[:, :, :1], rope(k[:, :, 1:])], 2)
        att = F.scaled_dot_product_attention(q, k, v, attn_mask=keep[:, None, None, :],
                                             dropout_p=self.p if self.training else 0.0)
        x = x + self.o(att.transpose(1, 2).reshape(b, t, d))
        out: torch.Tensor = x + self.mlp(self.norm2(x))
        return out


class ContextModel(nn.Module):
    """Context token + blocks + final LayerNorm + projection; optional softmax layer weights."""

    def __init__(self, dim: int, cfg: ContextConfig, *, n_layers_in: int = 1) -> None:
        super().__init__()
        self.context = nn.Parameter(torch.zeros(1, 1, dim))
        nn.init.trunc_normal_(self.context, std=0.02)
        self.blocks = nn.ModuleList(Block(dim, cfg) for _ in range(cfg.blocks))
        self.out_norm = nn.LayerNorm(dim)
        self.proj = nn.Linear(dim, cfg.dim_out)
        nn.init.trunc_normal_(self.proj.weight, std=0.02)
        nn.init.zeros_(self.proj.bias)
        self.layer_logits: nn.Parameter | None = None
        if n_layers_in > 1:  # zero-init: starts as Norm-Avg
            self.layer_logits = nn.Parameter(torch.zeros(n_layers_in), requires_grad=cfg.layer_weights == "train")

    def layer_weights(self) -> torch.Tensor | None:
        return None if self.layer_logits is None else torch.softmax(self.layer_logits, 0)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``x`` is ``[B, T, D]`` or ``[B, L, T, D]`` (normalised layers); ``mask`` ``[B, T]``, True = token."""
        if x.dim() == 4:
            w = self.layer_weights()
            if w is None or w.numel() != x.shape[1]:
                raise ConfigError(f"Aggregator expects {0 if w is None else w.numel()} layers, got {x.shape[1]}")
            x = torch.einsum("l,bltd->btd", w, x)
        b = x.shape[0]
        h = torch.cat([self.context.expand(b, -1, -1), x], 1)
        keep = torch.cat([torch.ones(b, 1, dtype=torch.bool, device=mask.device), mask.bool()], 1)
        for block in self.blocks:
            h = block(h, keep)
        out: torch.Tensor = self.proj(self.out_norm(h[:, 0]))
        return out


def info_nce(za: torch.Tensor, zb: torch.Tensor, groups: Sequence[str | None], cfg: ContextConfig) -> torch.Tensor:
    """Symmetric InfoNCE with in-batch negatives; other items of the same group are masked out."""
    za, zb = F.normalize(za, dim=-1), F.normalize(zb, dim=-1)
    logits = (za @ zb.T / cfg.temperature).clamp(-cfg.logit_clamp, cfg.logit_clamp)
    n = len(groups)
    same = torch.tensor([[g is not None and g == h for h in groups] for g in groups], device=logits.device)
    same &= ~torch.eye(n, dtype=torch.bool, device=logits.device)
    logits = logits.masked_fill(same, float("-inf"))
    target = torch.arange(n, device=logits.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


def train(model: ContextModel, batch_fn: FeatureBatchFn, pairs: Sequence[CaptionPair], cfg: ContextConfig, *,
          seed: int, on_step: StepCallback | None = None) -> TrainReport:
    """Train ``model`` on caption ``pairs`` with symmetric InfoNCE (items of one group never negatives).

    Under ``torchrun`` each rank computes its slice of every batch and the update
    equals the single-process one on the same batch (see `harness.distributed`).
    """
    n_ranks = distributed.world()[1]
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    report, t0 = TrainReport(), time.perf_counter()
    if n_ranks > 1:
        distributed.broadcast_parameters(model)
    model.train()
    for _epoch in range(cfg.epochs):
        for idx in _batches(pairs, cfg.batch_size, rng):
            batch = [pairs[i] for i in idx]
            if len(batch) < 2:  # InfoNCE needs an in-batch negative
                continue
            if n_ranks > 1:  # this rank's slice; negatives gathered from every rank
                loss = distributed.global_batch_loss(model, batch_fn, batch, functools.partial(info_nce, cfg=cfg))
            else:
                xa, ma = batch_fn([p.a for p in batch])
                xb, mb = batch_fn([p.b for p in batch])
                loss = info_nce(model(xa, ma), model(xb, mb), [p.group for p in batch], cfg)
            opt.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            if n_ranks > 1:
                distributed.average_gradients(params)
            opt.step()
            report.steps += 1
            value = loss.item()
            report.losses.append(value)
            if on_step is not None:
                on_step(report.steps, value)
    model.eval()
    w = model.layer_weights()
    report.layer_weights = None if w is None else [float(v) for v in w.detach()]
    report.seconds = time.perf_counter() - t0
    return report


def _batches(pairs: Sequence[Any], size: int, rng: np.random.Generator) -> list[list[int]]:
    """A seeded epoch of batches with little padding: shuffle, sort chunks of 32 batches by
    length, cut them into batches, shuffle the batches.  Negatives stay random within a chunk."""
    order = rng.permutation(len(pairs))
    chunk = size * 32
    out: list[list[int]] = []
    for start in range(0, len(order), chunk):
        part = sorted(order[start:start + chunk].tolist(), key=lambda i: len(pairs[i].a) + len(pairs[i].b))
        out.extend(part[j:j + size] for j in range(0, len(part), size))
    return [out[i] for i in rng.permutation(len(out))]


def resolve_config(options: AggregatorOptions) -> ContextConfig:
    """The preset ``options.preset`` with the user's overrides; ``device`` resolved to cuda or cpu."""
    if options.preset not in PRESETS:
        raise ConfigError(f"Unknown aggregator preset {options.preset!r}. Available: {', '.join(PRESETS)}")
    cfg = replace(PRESETS[options.preset], **options.overrides())
    if cfg.device == "auto":
        cfg = replace(cfg, device="cuda" if torch.cuda.is_available() else "cpu")
    return cfg


class ContextAggregator:
    """GRAN-TED's context aggregator, trained with symmetric InfoNCE (satisfies `harness.Aggregator`).

    Cheap to build: the model is created by `fit` (from a seeded initialisation) or `load`.
    """

    name = "context"
    trainable = True

    def __init__(self, width: int, n_layers_in: int, options: AggregatorOptions) -> None:
        self.cfg = resolve_config(options)
        self.width, self.n_layers_in = width, n_layers_in
        self.embed_batch_size = options.embed_batch_size
        self.model: ContextModel | None = None

    def config(self) -> dict[str, Any]:
        return {**self.cfg.as_dict(), "width": self.width, "n_layers_in": self.n_layers_in,
                "checkpoint_format": CHECKPOINT_FORMAT}

    def _build(self) -> ContextModel:
        model = ContextModel(self.width, self.cfg, n_layers_in=self.n_layers_in)
        path = self.cfg.layer_weights_file
        if path is not None and model.layer_logits is not None:
            logits = _read_layer_logits(path, self.n_layers_in)
            with torch.no_grad():
                model.layer_logits.copy_(logits)
        return model

    def fit(self, features: FeatureBatchFn, pairs: Sequence[CaptionPair], *, seed: int,
            on_step: StepCallback | None = None) -> TrainReport:
        torch.manual_seed(seed)  # the initialisation depends on the seed too
        self.model = self._build().to(self.cfg.device)
        return train(self.model, self._on_device(features), pairs, self.cfg, seed=seed, on_step=on_step)

    def _on_device(self, features: FeatureBatchFn) -> FeatureBatchFn:
        device = self.cfg.device
        if device == "cpu":
            return features
        return lambda texts: tuple(t.to(device, non_blocking=True) for t in features(texts))

    def embed(self, features: FeatureBatchFn, texts: Sequence[str]) -> Any:
        if self.model is None:
            raise ConfigError("context aggregator: embed() before fit() or load()")
        self.model.to(self.cfg.device).eval()
        return embed_texts(self.model, self._on_device(features), texts, self.embed_batch_size)

    def save(self, path: str) -> None:
        if self.model is None:
            raise ConfigError("context aggregator: nothing to save before fit()")
        # Through memory: torch.save names the archive after the file, and the file is a unique
        # temporary name, so saving to it directly would make identical weights differ in bytes.
        buf = io.BytesIO()
        torch.save(self.model.state_dict(), buf)
        with open(path, "wb") as fh:
            fh.write(buf.getbuffer())

    def load(self, path: str) -> None:
        model = self._build()
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        self.model = model.eval()


def _read_layer_logits(path: str, n_layers: int) -> torch.Tensor:
    """Layer logits from a JSON list or ``{"logits"|"weights": [...]}``."""
    import json

    data = json.loads(open(path, encoding="utf-8").read())
    logits = data.get("logits", data.get("weights")) if isinstance(data, dict) else data
    if not isinstance(logits, list) or len(logits) != n_layers:
        raise ConfigError(f"{path}: field 'logits' must list {n_layers} numbers (one per layer)")
    return torch.tensor(logits, dtype=torch.float32)
