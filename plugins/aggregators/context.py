"""GRAN-TED's context aggregator (paper Appendix A, the official code's options).

A learnable context token is prepended, two pre-LayerNorm transformer blocks (bias-free
q/k/v/o self-attention with a padding mask and RoPE on text tokens; GELU MLP) run at the
encoder's width, then a final LayerNorm and a linear projection to ``dim_out``, read out at
the context token.  Multi-layer (``learned``) inputs are fused first with softmax layer
weights.  Config, presets, losses and the training loop are in `training` (shared with the
trained mean-pool head).  This module imports torch; the plugin imports it only when asked.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from harness import ConfigError

from harness_plugins.aggregators.training import TrainConfig, TrainedAggregator, fuse_layers, layer_weights_for

__all__ = ["Block", "ContextAggregator", "ContextModel", "rope"]


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

    def __init__(self, dim: int, cfg: TrainConfig) -> None:
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

    def __init__(self, dim: int, cfg: TrainConfig, *, n_layers_in: int = 1) -> None:
        super().__init__()
        self.context = nn.Parameter(torch.zeros(1, 1, dim))
        nn.init.trunc_normal_(self.context, std=0.02)
        self.blocks = nn.ModuleList(Block(dim, cfg) for _ in range(cfg.blocks))
        self.out_norm = nn.LayerNorm(dim)
        self.proj = nn.Linear(dim, cfg.dim_out)
        nn.init.trunc_normal_(self.proj.weight, std=0.02)
        nn.init.zeros_(self.proj.bias)
        self.layer_weights = layer_weights_for(n_layers_in, cfg)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``x`` is ``[B, T, D]`` or ``[B, L, T, D]`` (normalised layers); ``mask`` ``[B, T]``, True = token."""
        x = fuse_layers(self.layer_weights, x)
        b = x.shape[0]
        h = torch.cat([self.context.expand(b, -1, -1), x], 1)
        keep = torch.cat([torch.ones(b, 1, dtype=torch.bool, device=mask.device), mask.bool()], 1)
        for block in self.blocks:
            h = block(h, keep)
        out: torch.Tensor = self.proj(self.out_norm(h[:, 0]))
        return out


class ContextAggregator(TrainedAggregator):
    """GRAN-TED's context aggregator (satisfies `harness.Aggregator`)."""

    name = "context"

    def _new_model(self) -> nn.Module:
        return ContextModel(self.width, self.cfg, n_layers_in=self.n_layers_in)
