"""From hidden states of every layer to the token sequences aggregators consume.

A *view* is what one extractor needs from one text: a single layer, a fused
mean of (normalised) layers, or the stack of normalised layers that the
``learned`` extractor weights inside its aggregator.  One encoder forward per
unique text computes every requested view (`FeatureStore.ensure`).

Layer indices follow HF ``output_hidden_states``: 0 is the embedding output,
``i`` the output of transformer layer ``i``, ``-1`` the last one.  What "last"
means differs by family: decoder LLMs' last entry is after the final norm;
HF CLIP's is *before* the final LayerNorm; T5's is after the final norm.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from harness._exceptions import ConfigError
from harness.types import Encoder, EncoderInfo, ExtractorSpec

if TYPE_CHECKING:
    import torch

__all__ = [
    "LN_EPS",
    "RMS_EPS",
    "FeatureStore",
    "View",
    "expand_extractors",
    "normalize",
    "resolve_layers",
    "view_for",
]

LN_EPS = 1e-5  # parameter-free LayerNorm, as F.layer_norm's default
RMS_EPS = 1e-6  # as the official code's rms_norm


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


def resolve_layers(spec: ExtractorSpec, info: EncoderInfo) -> tuple[int, ...]:
    """Absolute ``hidden_states`` indices for ``spec`` on an encoder with ``info.num_layers`` layers."""
    n = info.num_layers
    if spec.layers == "all":
        emb = info.include_embedding_default if spec.include_embedding is None else spec.include_embedding
        return tuple(range(0 if emb else 1, n + 1))
    out = []
    for k in spec.layers:
        idx = k if k >= 0 else n + 1 + k
        if not 0 <= idx <= n:
            raise ConfigError(
                f"Extractor {spec.name!r}: layer {k} is out of range for {info.name!r}, "
                f"which has layers 0 (embeddings) to {n} (or -1 to {-(n + 1)})"
            )
        out.append(idx)
    return tuple(out)


def expand_extractors(specs: Iterable[ExtractorSpec], info: EncoderInfo) -> list[ExtractorSpec]:
    """Replace ``all-layers`` sweeps by one ``layer:K`` spec per layer (0..N)."""
    out: list[ExtractorSpec] = []
    for spec in specs:
        if not spec.sweep:
            out.append(spec)
            continue
        emb = info.include_embedding_default if spec.include_embedding is None else spec.include_embedding
        for k in range(0 if emb else 1, info.num_layers + 1):
            out.append(ExtractorSpec(name=f"layer:{k}", layers=(k,), norm=spec.norm))
    return out


def view_for(spec: ExtractorSpec, info: EncoderInfo) -> View:
    """The view ``spec`` needs from each text."""
    layers = resolve_layers(spec, info)
    if spec.fusion == "learned":
        return View("stack", layers, spec.norm)
    if spec.fusion == "mean" and len(layers) > 1:
        return View("mean", layers, spec.norm)
    if len(layers) != 1:
        raise ConfigError(f"Extractor {spec.name!r} selects {len(layers)} layers but fuses none")
    return View("single", layers, spec.norm)


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
    import torch

    hs = [normalize(hidden_states[i], view.norm) for i in view.layers]
    if view.op == "single":
        return hs[0]
    if view.op == "mean":
        return torch.stack(hs, 0).mean(0)
    return torch.stack(hs, 1)


def text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


ProgressFactory = Callable[[str, int], Any]  # (description, total) -> object with .advance(n)


class FeatureStore:
    """Per-text views, computed with one encoder forward per unique text.

    Views of a text are stored as CPU tensors of its real tokens only
    (``[T_i, D]`` or ``[L, T_i, D]``) in ``dtype``, so padding never leaks in.
    """

    def __init__(self, encoder: Encoder, views: Iterable[View], *, batch_size: int = 32,
                 dtype: str = "float32") -> None:
        self.encoder = encoder
        self.views = sorted(set(views), key=lambda v: v.key)
        self.batch_size = batch_size
        self.dtype = dtype
        self._data: dict[tuple[str, str], Any] = {}
        self.n_encoded = 0
        self.n_truncated = 0

    def has(self, text: str) -> bool:
        return all((v.key, text) in self._data for v in self.views)

    def get(self, view: View, text: str) -> torch.Tensor:
        return self._data[(view.key, text)]

    def ensure(self, texts: Iterable[str], *, progress: ProgressFactory | None = None) -> int:
        """Encode every text not stored yet, longest first; return how many were encoded."""
        todo = sorted({t for t in texts if not self.has(t)}, key=len, reverse=True)
        bar = progress("encoding", len(todo)) if progress and todo else None
        up_to = max(max(v.layers) for v in self.views) if self.views else None
        for start in range(0, len(todo), self.batch_size):
            batch = todo[start:start + self.batch_size]
            self._store(batch, self.encoder.encode(batch, up_to_layer=up_to))
            if bar is not None:
                bar.advance(len(batch))
        self.n_encoded += len(todo)
        return len(todo)

    def _store(self, batch: list[str], out: Any) -> None:
        import torch

        dtype = getattr(torch, self.dtype)
        mask = out.attention_mask.bool().cpu()
        self.n_truncated += int(out.n_truncated)
        for view in self.views:
            feats = compute_view(out.hidden_states, view).cpu()
            for i, text in enumerate(batch):
                rows = feats[i][..., mask[i], :] if view.op == "stack" else feats[i][mask[i]]
                self._data[(view.key, text)] = rows.to(dtype).contiguous()

    def batch(self, view: View, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Right-padded float32 ``[B, (L,) T, D]`` features and ``[B, T]`` bool mask."""
        import torch

        seqs = [self.get(view, t).float() for t in texts]
        t_max = max(s.shape[-2] for s in seqs)
        lead = seqs[0].shape[:-2]
        x = torch.zeros(len(seqs), *lead, t_max, seqs[0].shape[-1])
        mask = torch.zeros(len(seqs), t_max, dtype=torch.bool)
        for i, s in enumerate(seqs):
            x[i, ..., : s.shape[-2], :] = s
            mask[i, : s.shape[-2]] = True
        return x, mask


def with_include_embedding(spec: ExtractorSpec, flag: bool | None) -> ExtractorSpec:
    """Apply a run-wide ``--include-embedding`` to specs that did not set it."""
    if flag is None or spec.include_embedding is not None or spec.layers != "all":
        return spec
    return replace(spec, include_embedding=flag)
