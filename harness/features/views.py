"""View math: from the hidden states of every layer to the token sequence one extractor reads.

A *view* is what one extractor needs from one text: a single layer, a fused
mean of (normalised) layers, or the stack of normalised layers that the
``learned`` extractor weights inside its aggregator.  `compute_views` computes
every view of a batch in one pass over the layers; `compute_packed_views` computes them
at the real tokens only, straight into one flat buffer (what the feature store keeps or
copies off the device in one go), with the same numbers.

Layer indices follow HF ``output_hidden_states``: 0 is the embedding output,
``i`` the output of transformer layer ``i``.  torch is imported inside functions.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from harness._exceptions import ConfigError

if TYPE_CHECKING:
    import torch

__all__ = ["LN_EPS", "RMS_EPS", "Layout", "View", "compute_packed_views", "compute_view", "compute_views", "normalize",
           "packed_layout", "view_bytes_per_token"]

LN_EPS = 1e-5  # parameter-free LayerNorm, as F.layer_norm's default
RMS_EPS = 1e-6  # as the official code's rms_norm


Layout = list[tuple[int, tuple[int, ...]]]  # per view: (start in the flat buffer, shape of its block)


@dataclass(frozen=True)
class View:
    """One materialised feature: ``layers`` (absolute indices), ``norm``, and ``op``.

    ``op`` is ``"single"`` (one layer), ``"mean"`` (mean over layers) or
    ``"stack"`` (``[L, T, D]`` for learned weights).
    """

    op: str
    layers: tuple[int, ...]
    norm: str

    @property
    def key(self) -> str:
        return f"{self.op}:{self.norm}:{','.join(map(str, self.layers))}"


def view_bytes_per_token(view: View, width: int, itemsize: int) -> int:
    """Bytes one token of ``view`` takes when stored: layers kept (``len(view.layers)`` for a
    stack, else 1) x ``width`` x ``itemsize`` (bytes per element of the feature dtype)."""
    return (len(view.layers) if view.op == "stack" else 1) * width * itemsize


def normalize(h: torch.Tensor, norm: str) -> torch.Tensor:
    """Parameter-free LayerNorm (eps 1e-5), RMS norm (eps 1e-6) or identity, in float32."""
    import torch.nn.functional as F

    h = h.float()
    if norm == "layernorm":
        return F.layer_norm(h, (h.shape[-1],), eps=LN_EPS)
    if norm == "rms":
        return h * (h.pow(2).mean(-1, keepdim=True) + RMS_EPS).rsqrt()
    if norm == "none":
        return h
    raise ConfigError(f"Unknown norm {norm!r}; use layernorm, rms or none")


def compute_view(hidden_states: Sequence[torch.Tensor], view: View) -> torch.Tensor:
    """``[B, T, D]`` for single/mean views, ``[B, L, T, D]`` for stack views."""
    return compute_views(hidden_states, [view])[view.key]


def compute_views(hidden_states: Sequence[torch.Tensor], views: Iterable[View], *,
                  dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
    """Every view of one batch in one pass over the layers, keyed by ``View.key``.

    Each (layer, norm) is normalised once and shared by all views that read it
    (``norm-avg`` and ``learned`` read the same normalised layers); only one
    normalised float32 layer is alive at a time.  Results are cast to ``dtype``
    (default float32) on the layers' device; means accumulate in float32.
    """
    import torch

    views = list(views)
    out_dtype = dtype or torch.float32
    b, t, d = hidden_states[0].shape
    dev = hidden_states[0].device
    derived, readers = _plan_reads(views, out_dtype)
    out: dict[str, torch.Tensor] = {}
    for v in views:
        if v.key in derived:
            continue
        if v.op == "stack":
            # [B, L, T, D] over token-major memory: FeatureStore cuts texts out of [B, T, L, D]
            out[v.key] = torch.empty(b, t, len(v.layers), d, dtype=out_dtype, device=dev).transpose(1, 2)
        elif v.op == "mean":
            out[v.key] = torch.zeros(b, t, d, dtype=torch.float32, device=dev)
    for i in sorted(readers):
        for norm in dict.fromkeys(v.norm for v in readers[i]):
            h = normalize(hidden_states[i], norm)
            for v in readers[i]:
                if v.norm == norm:
                    _accumulate(out, v, i, h, out_dtype)
    for v in views:
        if v.key in derived:
            out[v.key] = out[derived[v.key].key].mean(1)
        elif v.op == "mean":
            out[v.key] = (out[v.key] / len(v.layers)).to(out_dtype)
    return out


def _plan_reads(views: Sequence[View], out_dtype: torch.dtype) -> tuple[dict[str, View], dict[int, list[View]]]:
    """(mean views derived from a stack, by key -> that stack; layer -> the other views reading it).

    A mean over the layers of a float32 stack is one reduction of that stack (read once) instead of a
    running sum (read and written once per layer)."""
    import torch

    stacks = {(v.layers, v.norm): v for v in views if v.op == "stack"}
    derived = {v.key: stacks[(v.layers, v.norm)] for v in views
               if v.op == "mean" and out_dtype == torch.float32 and (v.layers, v.norm) in stacks}
    readers: dict[int, list[View]] = {}
    for v in views:
        if v.key not in derived:
            for i in dict.fromkeys(v.layers):
                readers.setdefault(i, []).append(v)
    return derived, readers


def _accumulate(out: dict[str, torch.Tensor], view: View, layer: int, h: torch.Tensor, dtype: torch.dtype) -> None:
    """Put normalised ``layer`` (``h``) where ``view`` needs it."""
    if view.op == "single":
        out[view.key] = h.to(dtype)
    elif view.op == "mean":
        out[view.key].add_(h, alpha=view.layers.count(layer))
    else:
        for j, k in enumerate(view.layers):
            if k == layer:
                out[view.key][:, j] = h


def packed_layout(views: Sequence[View], n_tokens: int, width: int) -> Layout:
    """Where each view's block lies in a packed buffer of ``n_tokens`` real tokens (`compute_packed_views`).

    A block is ``[N, D]``, or token-major ``[N, L, D]`` for a stack view (each text's
    tokens one contiguous run of it); blocks follow each other in ``views`` order.
    """
    layout: Layout = []
    start = 0
    for v in views:
        shape = (n_tokens, len(v.layers), width) if v.op == "stack" else (n_tokens, width)
        layout.append((start, shape))
        start += math.prod(shape)
    return layout


def compute_packed_views(hidden_states: Sequence[torch.Tensor], views: Sequence[View], index: torch.Tensor, *,
                         dtype: torch.dtype | None = None, out: torch.Tensor | None = None
                         ) -> tuple[torch.Tensor, Layout]:
    """Every view at the real tokens only, computed into one flat buffer: ``(buffer, layout)``.

    ``index`` holds the real tokens' positions in the flattened ``[B * T]`` batch (on the
    layers' device), in order.  Each layer's real tokens are gathered once, normalised
    once per norm, and written straight into their view's block (`packed_layout`), so no
    padded ``[B, T, L, D]`` stack is ever built.  The numbers are those of `compute_views`
    at the same tokens, bit for bit on the CPU (the norms work per token, means accumulate
    in float32 in the same order).  ``out``: a flat buffer of ``dtype`` on the layers'
    device with room for them all (its first elements are used); else one is allocated.
    """
    import torch

    views = list(views)
    out_dtype = dtype or torch.float32
    width = hidden_states[0].shape[-1]
    dev = hidden_states[0].device
    n = index.numel()
    layout = packed_layout(views, n, width)
    total = sum(math.prod(shape) for _, shape in layout)
    if out is None:
        flat = torch.empty(total, dtype=out_dtype, device=dev)
    elif out.dtype != out_dtype or out.device != dev or out.dim() != 1 or out.numel() < total:
        raise ValueError(f"out must be a flat {out_dtype} buffer of >= {total} elements on {dev}, "
                         f"got {tuple(out.shape)} {out.dtype} on {out.device}")
    else:
        flat = out[:total]
    blocks = {v.key: flat[start:start + math.prod(shape)].view(shape) for v, (start, shape) in zip(views, layout)}
    derived, readers = _plan_reads(views, out_dtype)
    sums: dict[str, torch.Tensor] = {}
    for v in views:
        if v.key in derived:
            continue
        if v.op == "mean":
            sums[v.key] = (blocks[v.key].zero_() if out_dtype == torch.float32
                           else torch.zeros(n, width, dtype=torch.float32, device=dev))
    for i in sorted(readers):
        h = hidden_states[i].reshape(-1, width)  # [B * T, D]
        # a layer kept as it is lands straight in its block; the others read that copy
        direct = next((v for v in readers[i] if v.op == "single" and v.norm == "none" and h.dtype == out_dtype), None)
        real = torch.index_select(h, 0, index, out=blocks[direct.key]) if direct else torch.index_select(h, 0, index)
        for norm in dict.fromkeys(v.norm for v in readers[i]):
            x = normalize(real, norm)
            for v in readers[i]:
                if v.norm != norm or v is direct:
                    continue
                if v.op == "single":
                    blocks[v.key].copy_(x)
                elif v.op == "mean":
                    sums[v.key].add_(x, alpha=v.layers.count(i))
                else:
                    for j, k in enumerate(v.layers):
                        if k == i:
                            blocks[v.key][:, j] = x
    for v in views:
        if v.key in derived:
            torch.mean(blocks[derived[v.key].key], 1, out=blocks[v.key])
        elif v.op == "mean":
            if out_dtype == torch.float32:
                blocks[v.key].div_(len(v.layers))
            else:
                blocks[v.key].copy_(sums[v.key] / len(v.layers))
    return flat, layout
