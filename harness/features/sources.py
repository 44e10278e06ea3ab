"""Where each (role, view)'s features come from: a `FeatureStore` (disk cache or RAM) or the encoder in the loop.

`prepare_features` runs before anything is encoded: it resolves ``--feature-dtype auto``
(bfloat16 when the encoder runs on CUDA, float32 otherwise), opens the feature caches
(evaluation texts; training pairs in their own when truncated at another length), asks
`harness.features.disk_plan` what every view of every role needs and whether it fits, and builds a
store per role over the views that are cached plus an `EncoderInTheLoop` for each stack
view that is not.  `FeatureSources.batch_fn(role, view)` is then the
`harness.types.FeatureBatchFn` an aggregator trains on or embeds with, either way.

`EncoderInTheLoop` encodes its texts on each call, computes the view with
`harness.features.views.compute_views`, rounds it through the feature dtype (as a cached entry would
be) and returns right-padded float32 ``[B, (L,) T, D]`` features and a ``[B, T]`` bool mask:
the numbers `FeatureStore.batch` returns for cached features (up to the last bits a different
batch composition gives).  Hidden states live only for the call.  On CUDA the encoder forward
runs under ``torch.autocast("cuda", dtype=torch.bfloat16)``; elsewhere a caller's CPU autocast
(a bf16 training preset) is switched off around it.  torch is imported inside functions only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from harness.features import distributed
from harness.features.cache import FeatureCache, default_cache_dir, encoder_fingerprint
from harness.features.disk_plan import (
    CACHED,
    IN_LOOP,
    IN_RAM,
    DiskPlan,
    encoder_on_cuda,
    estimate_views,
    plan_disk,
    resolve_feature_dtype,
)
from harness.features.store import FeatureStore, ProgressFactory
from harness.options import FeatureOptions
from harness.types import Encoder, FeatureBatchFn
from harness.features.views import View, compute_views

__all__ = ["EVAL", "TRAIN", "EncoderInTheLoop", "FeatureSources", "prepare_features"]

EVAL, TRAIN = "evaluation", "training"


class EncoderInTheLoop:
    """Encode, compute ``view``, pad: one call per batch of texts (see the module docstring).

    ``max_length`` is passed to ``encode`` (None: the evaluation length); ``dtype`` is the
    feature dtype the values are rounded through; ``cuda`` runs the forward under bf16
    autocast; ``out_device`` is where results go (None: where they were computed).
    Counts what it did: ``n_calls``, ``n_texts`` (text encodings, repeats included),
    ``n_truncated`` (summed over calls).
    """

    def __init__(self, encoder: Encoder, view: View, *, max_length: int | None = None, dtype: str = "float32",
                 cuda: bool = False, out_device: str | None = "cpu") -> None:
        self.encoder, self.view, self.max_length = encoder, view, max_length
        self.dtype, self.cuda, self.out_device = dtype, cuda, out_device
        self.up_to = max(view.layers)
        self.n_calls = self.n_texts = self.n_truncated = 0

    def _autocast(self) -> Any:
        import torch

        if self.cuda:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return torch.autocast("cpu", enabled=False)

    def __call__(self, texts: Sequence[str]) -> tuple[Any, Any]:
        import torch

        batch = list(texts)
        with torch.inference_mode():
            with self._autocast():
                out = (self.encoder.encode(batch, up_to_layer=self.up_to) if self.max_length is None
                       else self.encoder.encode(batch, up_to_layer=self.up_to, max_length=self.max_length))
            feats = compute_views(out.hidden_states, [self.view], dtype=getattr(torch, self.dtype))[self.view.key]
            out.hidden_states = ()  # free the layers before the padded copy is made
            mask = out.attention_mask.bool().to(feats.device)
            n_truncated = int(out.n_truncated)
            del out
        self.n_calls += 1
        self.n_texts += len(batch)
        self.n_truncated += n_truncated
        with torch.no_grad():  # outside inference mode: the result takes part in autograd (layer weights)
            x, keep = _pack(feats, mask, stack=self.view.op == "stack")
        del feats
        if self.out_device is not None:
            x, keep = x.to(self.out_device), keep.to(self.out_device)
        return x, keep


def _pack(feats: Any, mask: Any, *, stack: bool) -> tuple[Any, Any]:
    """Each row's real tokens (``mask`` True, in order) moved to the front, float32, zero-padded:
    ``[B, (L,) T, D]`` contiguous and the ``[B, T]`` mask, as `FeatureStore.batch` builds them."""
    import torch

    counts = mask.sum(1)
    b = mask.shape[0]
    t_max = int(counts.max()) if b else 0
    rows, cols = mask.nonzero(as_tuple=True)
    pos = (mask.long().cumsum(1) - 1)[rows, cols]  # each real token's place among its row's real tokens
    if stack:  # [B, L, T, D], filled through its [B, T, L, D] view
        x = torch.zeros(b, feats.shape[1], t_max, feats.shape[-1], device=feats.device)
        x.transpose(1, 2)[rows, pos] = feats.transpose(1, 2)[rows, cols].float()
    else:
        x = torch.zeros(b, t_max, feats.shape[-1], device=feats.device)
        x[rows, pos] = feats[rows, cols].float()
    keep = torch.arange(t_max, device=mask.device)[None, :] < counts[:, None]
    return x, keep


@dataclass
class FeatureSources:
    """One encoder's feature stores (per role), caches, disk plan and in-the-loop views."""

    dtype: str  # the resolved feature dtype: what is cached and what in-loop values are rounded through
    cuda: bool  # the encoder runs on CUDA
    plan: DiskPlan
    stores: dict[str, FeatureStore]  # role -> store (one object when both roles share it)
    caches: list[FeatureCache]
    loops: dict[tuple[str, View], EncoderInTheLoop]

    def mode(self, role: str, view: View) -> str:
        """``cache``, ``encoder-in-the-loop`` or ``ram`` (--no-cache) for ``role``'s texts in ``view``."""
        if (role, view) in self.loops:
            return IN_LOOP
        return CACHED if self.caches else IN_RAM

    def modes(self, view: View, *, training: bool) -> dict[str, str]:
        roles = (EVAL, TRAIN) if training else (EVAL,)
        return {role: self.mode(role, view) for role in roles}

    def batch_fn(self, role: str, view: View) -> FeatureBatchFn:
        loop = self.loops.get((role, view))
        if loop is not None:
            return loop
        store = self.stores.get(role) or self.stores[EVAL]
        return store.batches(view)

    def _distinct(self) -> list[FeatureStore]:
        return list({id(s): s for s in self.stores.values()}.values())

    def ensure(self, eval_texts: Sequence[str], train_texts: Sequence[str], *,
               progress: ProgressFactory | None = None) -> tuple[int, tuple[int, int]]:
        """Encode what the stores lack; (texts encoded, (evaluation, training) texts truncated among them)."""
        store = self.stores[EVAL]
        n = store.ensure(eval_texts, progress=progress)
        truncated_eval = store.n_truncated
        train = self.stores.get(TRAIN)
        if train is None or not train_texts:
            return n, (truncated_eval, 0)
        before = train.n_truncated
        n += train.ensure(train_texts, progress=progress)
        return n, (truncated_eval, train.n_truncated - before)

    def n_encoded(self) -> int:
        return sum(s.n_encoded for s in self._distinct())

    def in_loop_encodings(self) -> int:
        """Texts the encoder ran on in the loop (each call's texts, repeats included)."""
        return sum(loop.n_texts for loop in self.loops.values())

    def close(self) -> None:
        for cache in self.caches:
            cache.close()

    def disk_bytes(self) -> int | None:
        """What the caches used hold on disk now (None: --no-cache)."""
        return sum(c.disk_bytes() for c in self.caches) if self.caches else None


def prepare_features(encoder: Encoder, views: dict[View, list[str]], opts: FeatureOptions, *,
                     eval_texts: Sequence[str], train_texts: Sequence[str], train_length: int | None,
                     budget: int | None = None, spent: int = 0, out_device: str | None = "cpu",
                     say: Callable[[str], None] | None = None) -> FeatureSources:
    """Plan the cache for ``views`` (each with the extractor names reading it) and build the sources.

    ``train_length``: the training pairs' truncation when it differs from the evaluation length
    (then they get a cache of their own), else None.  ``budget``: bytes this encoder may add to
    the cache (None: the run's default budget, less ``spent`` by its earlier encoders, bounds the layer
    stacks; see `harness.features.disk_plan`).  Raises `CacheError` before any encoding when
    the views that must be cached do not fit.  The plan's lines go to ``say``.
    """
    dtype = resolve_feature_dtype(opts.dtype, encoder)
    cuda = encoder_on_cuda(encoder)
    lengths = {EVAL: None, TRAIN: train_length}
    roles = [(EVAL, eval_texts)] + ([(TRAIN, train_texts)] if train_texts else [])
    by_length: dict[int | None, FeatureCache] = {}
    if not opts.no_cache:
        for role, _ in roles:
            if lengths[role] not in by_length:
                by_length[lengths[role]] = _open_cache(encoder, opts, dtype, max_length=lengths[role])
    needs = []
    for role, texts in roles:
        if texts:
            skip = eval_texts if role == TRAIN and train_length is None else ()  # counted under evaluation
            needs += estimate_views(encoder, role, texts, views, dtype=dtype, cache=by_length.get(lengths[role]),
                                    max_length=lengths[role], skip=skip)
    folder = None if not by_length else next(iter(by_length.values())).dir
    writable = all(c.read_only is None for c in by_length.values())
    if not writable:  # views that must be cached have to be there already (else its one-line why); stacks loop
        for n in needs:
            if not n.stack:
                by_length[lengths[n.role]].check_writable(n.n_texts)
    plan = distributed.broadcast_object(plan_disk(needs, folder=folder, budget=budget, writable=writable,
                                                   spent=spent))
    if say is not None:
        for line in plan.lines():
            say(line)
    stores: dict[str, FeatureStore] = {}
    shared: dict[tuple[int | None, frozenset[View]], FeatureStore] = {}
    loops: dict[tuple[str, View], EncoderInTheLoop] = {}
    for role, _ in roles:
        length = lengths[role]
        keep = frozenset(v for v in views if not plan.in_loop(role, v))
        if (length, keep) not in shared:
            shared[(length, keep)] = FeatureStore(encoder, keep, batch_size=opts.batch_size, dtype=dtype,
                                                  cache=by_length.get(length), max_length=length)
        stores[role] = shared[(length, keep)]
        for v in views:
            if plan.in_loop(role, v):
                loops[(role, v)] = EncoderInTheLoop(encoder, v, max_length=length, dtype=dtype, cuda=cuda,
                                                    out_device=out_device)
    return FeatureSources(dtype=dtype, cuda=cuda, plan=plan, stores=stores, caches=list(by_length.values()),
                          loops=loops)


def _open_cache(encoder: Encoder, opts: FeatureOptions, dtype: str, *, max_length: int | None) -> FeatureCache:
    """The cache of texts truncated at ``max_length`` (None: the evaluation length)."""
    fingerprint = encoder_fingerprint(encoder.info)
    if max_length is not None:
        fingerprint = {**fingerprint, "max_length_override": max_length}
    return FeatureCache(opts.cache_dir or default_cache_dir(), fingerprint, dtype=dtype, fsync=opts.fsync)
