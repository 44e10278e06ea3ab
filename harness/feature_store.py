"""`FeatureStore`: per-text views, computed with one encoder forward per unique text.

Views (`harness.views`) of every text are kept in RAM or written through to the
on-disk `harness.cache.FeatureCache`; aggregators read right-padded batches.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from harness._exceptions import CacheError, ConfigError
from harness.types import Encoder
from harness.views import View, compute_views

if TYPE_CHECKING:
    import torch

    from harness.cache import FeatureCache

__all__ = ["AUTO_CAP", "AUTO_CPU_BATCH", "AUTO_START", "FeatureStore", "ProgressFactory"]

log = logging.getLogger("harness")


ProgressFactory = Callable[[str, int], Any]  # (description, total) -> object with .advance(n)
AUTO_CPU_BATCH = 64  # --batch-size auto off CUDA: no OOM signal to search with
AUTO_START, AUTO_CAP = 8, 512  # --batch-size auto on CUDA: doubling from 8 up to 512


class FeatureStore:
    """Per-text views, computed with one encoder forward per unique text.

    Views of a text are CPU tensors of its real tokens only (``[T_i, D]`` or
    ``[L, T_i, D]``) in ``dtype``, so padding never leaks in; stack views are kept
    token-major (``[T_i, L, D]``, contiguous per text) and `get` transposes them.
    Without ``cache`` they all stay in RAM; with a `harness.cache.FeatureCache` they
    go to disk as they are computed, `get` reads them back on demand (a small LRU
    keeps recent ones) and texts already cached are never encoded again.  `ensure`
    checks the stored bytes of every cached text it needs, so the texts of a bad shard
    are re-encoded in normal batches and counted in its return value and ``n_encoded``.
    A read-only cache serves the texts it holds; needing any other raises `CacheError`.

    ``batch_size="auto"``: on CUDA, start at 8 on the longest texts and double per
    batch up to 512, halving on out-of-memory (during the run too) and growing no
    more; elsewhere use 64.  Under ``torchrun`` with a cache, each rank encodes a
    strided share of the texts and all ranks then read everything from the
    shared cache directory.
    """

    def __init__(self, encoder: Encoder, views: Iterable[View], *, batch_size: int | str = 32,
                 dtype: str = "float32", cache: FeatureCache | None = None, lru_bytes: int = 64 << 20,
                 max_length: int | None = None) -> None:
        if batch_size != "auto" and (not isinstance(batch_size, int) or batch_size < 1):
            raise ConfigError(f"batch size {batch_size!r} must be a positive integer or 'auto'")
        self.encoder = encoder
        self.max_length = max_length  # truncation passed to every encode (None: the encoder's evaluation length)
        self.views = sorted(set(views), key=lambda v: v.key)
        self.batch_size = batch_size
        self.dtype = dtype
        self.cache = cache
        self._data: dict[tuple[str, str], torch.Tensor] = {}
        self._lru: OrderedDict[tuple[str, str], torch.Tensor] = OrderedDict()
        self._lru_bytes, self._lru_limit = 0, lru_bytes
        self._up_to = max(max(v.layers) for v in self.views) if self.views else None
        self._device = "cpu"  # where the last batch's hidden states were
        self.final_batch_size = batch_size if isinstance(batch_size, int) else AUTO_START  # what "auto" settled on
        self.n_oom_retries = 0
        self.n_encoded = 0
        self.n_truncated = 0
        self._texts: set[str] = set()  # every text ensured, to re-encode together if a shard goes bad

    def has(self, text: str) -> bool:
        if self.cache is None:
            return all((v.key, text) in self._data for v in self.views)
        return all(self.cache.key(v.key, text) in self.cache for v in self.views)

    def get(self, view: View, text: str) -> torch.Tensor:
        """``[T, D]``, or ``[L, T, D]`` for stack views (a transposed view of the stored ``[T, L, D]``)."""
        x = self._stored(view, text)
        return x.transpose(0, 1) if view.op == "stack" else x

    def _stored(self, view: View, text: str) -> torch.Tensor:
        if self.cache is None:
            return self._data[(view.key, text)]
        k = (view.key, text)
        hit = self._lru.get(k)
        if hit is not None:
            self._lru.move_to_end(k)
            return hit
        found = self.cache.read(self.cache.key(view.key, text))
        if found is None:  # never ensured, or its shard went bad since `ensure`
            found = self._recover(view, text)
        self._lru[k] = found
        self._lru_bytes += found.nbytes
        while self._lru_bytes > self._lru_limit and len(self._lru) > 1:
            self._lru_bytes -= self._lru.popitem(last=False)[1].nbytes
        return found

    def ensure(self, texts: Iterable[str], *, progress: ProgressFactory | None = None) -> int:
        """Encode every text not stored yet, longest first; return how many were encoded."""
        from harness import distributed

        wanted = set(texts)
        self._texts |= wanted
        rank, world = distributed.world()
        shared = self.cache is not None and world > 1
        if self.cache is not None and rank == 0:
            # Read every needed entry's bytes once now: a bad shard is then re-encoded in full
            # batches and counted here, not found text by text later (only rank 0 decides).
            self.cache.verify(self.cache.key(v.key, t) for t in wanted for v in self.views)
        todo = _longest_first(t for t in wanted if not self.has(t))
        if shared:  # rank 0's list, so every rank splits the same work
            todo = distributed.broadcast_object(todo)
        if self.cache is not None:
            self.cache.check_writable(len(todo))  # before any work is done
        mine = todo[rank::world] if shared else todo
        truncated = self.n_truncated
        bar = progress("encoding", len(mine)) if progress and mine else None
        self._encode_all(mine, bar)
        if self.cache is not None:
            self.cache.flush()
        if shared:
            assert self.cache is not None
            distributed.barrier()
            self.cache.refresh()
            self.n_truncated = truncated + distributed.all_sum(self.n_truncated - truncated)
        self.n_encoded += len(todo)
        return len(todo)

    def _recover(self, view: View, text: str) -> torch.Tensor:
        """Encode ``text`` and every ensured text now missing (a shard dropped since), in batches."""
        assert self.cache is not None
        todo = _longest_first(t for t in self._texts | {text} if not self.has(t))
        self.cache.check_writable(len(todo))
        log.info("feature cache: re-encoding %d texts whose entries went missing", len(todo))
        self._encode_all(todo, None)
        self.cache.flush()
        self.n_encoded += len(todo)
        found = self.cache.read(self.cache.key(view.key, text))
        if found is None:
            raise CacheError(f"feature cache {str(self.cache.dir)!r}: features written just now fail their "
                             "checksum; the disk may be failing. Point --cache-dir elsewhere, or run with "
                             "--no-cache (features in RAM)")
        return found

    def _encode_all(self, todo: list[str], bar: Any) -> None:
        auto = self.batch_size == "auto"
        size = AUTO_START if auto else int(self.batch_size)
        grow, start = auto, 0
        while start < len(todo):
            batch = todo[start:start + size]
            try:
                self._encode_batch(batch)
                oom = False
            except Exception as exc:
                if not (auto and _is_oom(exc)) or size == 1:
                    raise
                oom = True
            if oom:  # retry this batch at half the size and grow no more (after the traceback is gone)
                _free_cuda_cache()
                size, grow = max(1, size // 2), False
                self.n_oom_retries += 1
                log.info("out of memory at batch size %d; retrying with %d", len(batch), size)
                continue
            start += len(batch)
            if bar is not None:
                bar.advance(len(batch))
            if grow:
                on_cuda = self._device == "cuda"
                size, grow = (min(size * 2, AUTO_CAP), size * 2 < AUTO_CAP) if on_cuda else (AUTO_CPU_BATCH, False)
            self.final_batch_size = size

    def _encode_batch(self, batch: list[str]) -> dict[tuple[str, str], torch.Tensor]:
        """Encode ``batch``, compute every view, store them (RAM or cache) and return them."""
        import torch

        out = (self.encoder.encode(batch, up_to_layer=self._up_to) if self.max_length is None
               else self.encoder.encode(batch, up_to_layer=self._up_to, max_length=self.max_length))
        self._device = out.hidden_states[0].device.type
        feats = compute_views(out.hidden_states, self.views, dtype=getattr(torch, self.dtype))
        out.hidden_states = ()  # free the layers (GPU memory) before copying views out
        self.n_truncated += int(out.n_truncated)
        mask = out.attention_mask.bool().cpu()
        spans = _token_spans(mask)
        host: dict[str, torch.Tensor] = {}
        for view in self.views:
            f = feats.pop(view.key)
            # [B, T, L, D] for stacks: token-major, so each text is one contiguous block
            host[view.key] = _to_host(f.transpose(1, 2) if view.op == "stack" else f, staged=self.cache is not None)
        if self._device == "cuda":
            torch.cuda.current_stream().synchronize()  # staged copies are asynchronous
        rows: dict[tuple[str, str], torch.Tensor] = {}
        for view in self.views:
            f = host.pop(view.key)
            # Views into the batch tensor, or one gather when some mask has gaps: per-text
            # copies stall the intra-op thread pool (measured 40x slower on a busy 2-core machine).
            parts = ([f[i].narrow(0, *span) for i, span in enumerate(spans)] if spans is not None
                     else torch.split(f[mask], mask.sum(1).tolist()))
            for text, part in zip(batch, parts):
                rows[(view.key, text)] = part
        if self.cache is None:
            self._data.update(rows)
        else:
            self.cache.put([(self.cache.key(vk, t), x) for (vk, t), x in rows.items()], meta={"texts": len(batch)})
        return rows

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


def _longest_first(texts: Iterable[str]) -> list[str]:
    return sorted(texts, key=lambda t: (-len(t), t))  # the same order in every process


def _to_host(x: torch.Tensor, *, staged: bool) -> torch.Tensor:
    """``x`` on the CPU.  ``staged``: through pinned memory, asynchronously (sync before use).

    Pinned blocks come from torch's caching host allocator, so they are reused once the
    cache writer drops them; features kept in RAM for the whole run stay pageable.
    """
    import torch

    if x.device.type != "cuda":
        return x
    if not staged:
        return x.cpu()
    buf = torch.empty(x.shape, dtype=x.dtype, pin_memory=True)
    return buf.copy_(x, non_blocking=True)


def _token_spans(mask: torch.Tensor) -> list[tuple[int, int]] | None:
    """``(start, count)`` of each row's tokens in ``[B, T]`` ``mask``; None if any row has gaps."""
    import torch

    counts = mask.sum(1)
    starts = mask.to(torch.uint8).argmax(1)
    pos = torch.arange(mask.shape[1])
    inside = (pos >= starts[:, None]) & (pos < (starts + counts)[:, None])
    if not bool((inside == mask).all()):
        return None
    return list(zip(starts.tolist(), counts.tolist()))


def _is_oom(exc: BaseException) -> bool:
    import torch

    return isinstance(exc, torch.cuda.OutOfMemoryError) or "CUDA out of memory" in str(exc)


def _free_cuda_cache() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
