"""Aggregators: token sequences -> one vector per text.

`ContextModel` is GRAN-TED's context aggregator (paper Appendix A, official
code's options): a learnable context token is prepended, two pre-LayerNorm
transformer blocks (bias-free q/k/v/o self-attention with a padding mask and
RoPE on text tokens; GELU MLP) run at the encoder's width, then a final
LayerNorm and a linear projection to ``dim_out``, read out at the context
token.  Multi-layer (``learned``) inputs are fused inside with softmax layer
weights.  ``train_aggregator`` is the whole training loop, nanoGPT style.

This module imports torch; ``import harness`` does not import it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from harness._exceptions import ConfigError

__all__ = [
    "PRESETS",
    "AggregatorConfig",
    "ContextModel",
    "TrainReport",
    "info_nce",
    "masked_mean",
    "train_aggregator",
]


@dataclass(frozen=True)
class AggregatorConfig:
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
    max_pairs: int | None = None
    device: str = "auto"  # auto: the GPU when there is one (where the features come from), else CPU
    preset: str = "default"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# "paper": the official trainer's values, meant for ~500k pairs.  "default": measured here
# to actually move the aggregator on thousands of pairs (MiniLM norm-avg 0.54 -> 0.63).
PRESETS: dict[str, AggregatorConfig] = {
    "default": AggregatorConfig(),
    "paper": AggregatorConfig(lr=1e-5, epochs=1, batch_size=32, preset="paper"),
    "baby": AggregatorConfig(dim_out=32, heads=2, mlp_ratio=2.0, epochs=1, batch_size=8, preset="baby"),
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

    def __init__(self, dim: int, cfg: AggregatorConfig) -> None:
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

    def __init__(self, dim: int, cfg: AggregatorConfig, *, n_layers_in: int = 1) -> None:
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


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over real tokens of ``[B, T, D]`` (``[B, L, T, D]``: layers averaged first)."""
    if x.dim() == 4:
        x = x.mean(1)
    m = mask.to(x.dtype).unsqueeze(-1)
    return (x * m).sum(1) / m.sum(1).clamp_min(1.0)


def info_nce(za: torch.Tensor, zb: torch.Tensor, groups: Sequence[str | None], cfg: AggregatorConfig) -> torch.Tensor:
    """Symmetric InfoNCE with in-batch negatives; other items of the same group are masked out."""
    za, zb = F.normalize(za, dim=-1), F.normalize(zb, dim=-1)
    logits = (za @ zb.T / cfg.temperature).clamp(-cfg.logit_clamp, cfg.logit_clamp)
    n = len(groups)
    same = torch.tensor([[g is not None and g == h for h in groups] for g in groups], device=logits.device)
    same &= ~torch.eye(n, dtype=torch.bool, device=logits.device)
    logits = logits.masked_fill(same, float("-inf"))
    target = torch.arange(n, device=logits.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


@dataclass
class TrainReport:
    """What one training run did; the loss curve goes into the checkpoint's JSON."""

    steps: int = 0
    seconds: float = 0.0
    losses: list[float] = field(default_factory=list)
    layer_weights: list[float] | None = None

    @property
    def first_loss(self) -> float:
        return float(np.mean(self.losses[:10])) if self.losses else math.nan

    @property
    def final_loss(self) -> float:
        return float(np.mean(self.losses[-10:])) if self.losses else math.nan


BatchFn = Callable[[Sequence[str]], tuple[torch.Tensor, torch.Tensor]]  # texts -> (features, mask)


def train_aggregator(model: ContextModel, batch_fn: BatchFn, pairs: Sequence[Any], cfg: AggregatorConfig, *,
                     seed: int, on_step: Callable[[int, float], None] | None = None) -> TrainReport:
    """Train ``model`` on caption ``pairs`` (objects with .a, .b, .group) with symmetric InfoNCE.

    Under ``torchrun`` each rank computes its slice of every batch and the update
    equals the single-process one on the same batch (see `harness.distributed`).
    """
    from harness import distributed

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
                loss = distributed.global_batch_loss(model, batch_fn, batch, cfg)
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


def apply_preset(name: str, **overrides: Any) -> AggregatorConfig:
    """A named preset with CLI overrides (None values ignored); ``device="auto"`` is resolved here."""
    if name not in PRESETS:
        raise ConfigError(f"Unknown aggregator preset {name!r}. Available: {', '.join(PRESETS)}")
    cfg = replace(PRESETS[name], **{k: v for k, v in overrides.items() if v is not None})
    if cfg.device == "auto":
        cfg = replace(cfg, device="cuda" if torch.cuda.is_available() else "cpu")
    return cfg
