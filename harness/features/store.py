"""`FeatureStore`: per-text views, computed with one encoder forward per unique text.

Views (`harness.features.views`) of every text are kept in RAM or written through to the
on-disk `harness.features.cache.FeatureCache`; aggregators read right-padded batches.

One batch of the feature pass, close to the raw forward:

1. the encoder's forward (the only work that must wait for the previous batch's forward);
2. every view at the real tokens only, on the encoder's device, straight into one flat
   buffer (`harness.features.views.compute_packed_views`); no per-text copies or syncs;
3. one device-to-host copy of that buffer into a reused host staging buffer: on CUDA a
   pinned one, ``non_blocking`` on a side stream, with an event recorded after it, so the
   copy overlaps the next forward; on the CPU step 2 writes into the staging buffer itself;
4. a background writer (`harness.features._writer.BackgroundWriter`, bounded queue) waits
   for the event, then checksums and writes the shard (cache) or copies the batch into the
   memory it is kept in (RAM), and hands the staging buffer back.  Both paths do the same
   work on the calling thread, so keeping features in RAM is never slower than caching.

Errors of the background work are raised on the calling thread (the cache's one-line
`CacheError`); an exception during the pass first lets queued work finish (complete shards
are kept, failed ones leave nothing), then propagates.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from harness._exceptions import CacheError, ConfigError
from harness.types import Encoder
from harness.features._writer import BackgroundWriter, StagingBuffers
from harness.features.views import Layout, View, compute_packed_views

if TYPE_CHECKING:
    import torch

    from harness.features.cache import FeatureCache

__all__ = ["AUTO_CAP", "AUTO_CPU_BATCH", "AUTO_START", "FeatureStore", "ProgressFactory", "StoreBatches",
           "pack_tokens", "unpack_tokens"]

log = logging.getLogger("harness")


ProgressFactory = Callable[[str, int], Any]  # (description, total) -> object with .advance(n)
AUTO_CPU_BATCH = 64  # --batch-size auto off CUDA: no OOM signal to search with
AUTO_START, AUTO_CAP = 8, 512  # --batch-size auto on CUDA: doubling from 8 up to 512
_RAM_JOBS, _RAM_BYTES = 2, 512 << 20  # batches waiting for their copy into RAM before the pass blocks


class FeatureStore:
    """Per-text views, computed with one encoder forward per unique text.

    Views of a text are CPU tensors of its real tokens only (``[T_i, D]`` or
    ``[L, T_i, D]``) in ``dtype``, so padding never leaks in; stack views are kept
    token-major (``[T_i, L, D]``, contiguous per text) and `get` transposes them.
    Without ``cache`` they all stay in RAM; with a `harness.features.cache.FeatureCache` they
    go to disk as they are computed, `get` reads them back on demand (a small LRU
    keeps recent ones) and texts already cached are never encoded again.  `ensure`
    checks the stored bytes of every cached text it needs, so the texts of a bad shard
    are re-encoded in normal batches and counted in its return value and ``n_encoded``.
    A read-only cache serves the texts it holds; needing any other raises `CacheError`.
    ``n_truncated`` counts the truncated texts among all ensured ones, cached or encoded
    now, so a warm run reports what a cold one did.

    Per batch, views are computed on the encoder's device at the real tokens only, into
    one buffer that is copied to the host at once and handed to a background writer (the
    module docstring); `batch` pads the stored tensors (zero-copy slices of the cache's
    mappings) in one op and converts the whole batch to float32 once.  ``writers=0``
    does the host-side work of each batch inline (the synchronous reference).

    ``batch_size="auto"``: on CUDA, start at 8 on the longest texts and double per
    batch up to 512, halving on out-of-memory (during the run too) and growing no
    more; elsewhere use 64.  Under ``torchrun`` with a cache, each rank encodes a
    strided share of the texts and all ranks then read everything from the
    shared cache directory.
    """

    def __init__(self, encoder: Encoder, views: Iterable[View], *, batch_size: int | str = 32,
                 dtype: str = "float32", cache: FeatureCache | None = None, lru_bytes: int = 64 << 20,
                 max_length: int | None = None, writers: int = 1) -> None:
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
        self.n_truncated = 0  # truncated texts among all ensured (cached or encoded now): same cold or warm
        self._texts: set[str] = set()  # every text ensured, to re-encode together if a shard goes bad
        self._flags: dict[str, bool] = {}  # truncation of texts encoded in this process
        self._unflagged = 0  # truncated texts of batches whose encoder gave a count but no flags
        self._data_lock = threading.Lock()  # the RAM writer adds to _data
        self._ram_writer = BackgroundWriter(threads=writers, max_jobs=_RAM_JOBS, max_bytes=_RAM_BYTES,
                                            name="harness-features")
        self._staging = StagingBuffers(keep=_RAM_JOBS + 2)
        self._copy_stream: Any = None  # CUDA: the side stream device-to-host copies run on

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
        """Encode every text not stored yet, longest first; return how many were encoded.

        ``n_truncated`` then counts the truncated texts among every text ensured so far,
        cached or encoded now (the cache stores a flag per text).
        """
        from harness.features import distributed

        wanted = set(texts)
        new = wanted - self._texts
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
        unflagged = self._unflagged
        bar = progress("encoding", len(mine)) if progress and mine else None
        self._encode_pass(mine, bar)
        extra = self._unflagged - unflagged
        if shared:
            assert self.cache is not None
            distributed.barrier()
            self.cache.refresh()  # every rank now sees every text's shard and truncation flag
            extra = distributed.all_sum(extra)
        self.n_truncated += sum(self._is_truncated(t) for t in new) + extra
        self.n_encoded += len(todo)
        return len(todo)

    def _is_truncated(self, text: str) -> bool:
        flag = self._flags.get(text)
        if flag is not None or self.cache is None or not self.views:
            return bool(flag)
        return self.cache.truncated(self.cache.key(self.views[0].key, text))

    def _recover(self, view: View, text: str) -> torch.Tensor:
        """Encode ``text`` and every ensured text now missing (a shard dropped since), in batches."""
        assert self.cache is not None
        todo = _longest_first(t for t in self._texts | {text} if not self.has(t))
        self.cache.check_writable(len(todo))
        log.info("feature cache: re-encoding %d texts whose entries went missing", len(todo))
        self._encode_pass(todo, None)  # flags and counts of these texts were taken when they were ensured
        self.n_encoded += len(todo)
        found = self.cache.read(self.cache.key(view.key, text))
        if found is None:
            raise CacheError(f"feature cache {str(self.cache.dir)!r}: features written just now fail their "
                             "checksum; the disk may be failing. Point --cache-dir elsewhere, or run with "
                             "--no-cache (features in RAM)")
        return found

    def _encode_pass(self, todo: list[str], bar: Any) -> None:
        """Encode ``todo`` and wait until every batch is stored (in RAM, or written to the cache).

        On an error (ours or the background writer's) queued work is finished first: complete
        shards are kept, failed ones leave no file, and the first error is the one raised.
        """
        try:
            self._encode_all(todo, bar)
            self._ram_writer.wait()
            if self.cache is not None:
                self.cache.flush()
        except BaseException:
            self._ram_writer.settle()
            if self.cache is not None:
                self.cache.settle()
            raise
        finally:
            self._staging.clear()  # host buffers go between passes (pinned ones back to torch's cache)

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

    def _encode_batch(self, batch: list[str]) -> None:
        """Encode ``batch``, compute every view into one staging buffer and hand it to a background writer."""
        import torch

        out = (self.encoder.encode(batch, up_to_layer=self._up_to) if self.max_length is None
               else self.encoder.encode(batch, up_to_layer=self._up_to, max_length=self.max_length))
        hidden, out.hidden_states = out.hidden_states, ()
        dev = hidden[0].device
        self._device = dev.type
        flags = _truncation_flags(out.truncated, int(out.n_truncated), len(batch))
        mask = out.attention_mask.bool()
        if mask.device.type != "cpu":
            mask = mask.cpu()  # one small copy per batch (tokenizers give CPU masks)
        counts = mask.sum(1).tolist()
        index = mask.reshape(-1).nonzero().squeeze(1)
        dtype = getattr(torch, self.dtype)
        cuda = dev.type == "cuda"
        per_token = sum(len(v.layers) if v.op == "stack" else 1 for v in self.views) * hidden[0].shape[-1]
        total = sum(counts) * per_token
        stage = self._staging.take(total, dtype, pin=cuda)
        try:
            if cuda:
                flat, layout = compute_packed_views(hidden, self.views, index.to(dev), dtype=dtype)
                del hidden  # the layers' memory is free for the next forward once the views are queued
                ready = self._copy_to_host(flat, stage[:total])
                del flat
            else:
                _, layout = compute_packed_views(hidden, self.views, index, dtype=dtype, out=stage)
                ready = None
        except BaseException:
            self._staging.give(stage)
            raise
        if flags is None:
            self._unflagged += int(out.n_truncated)
        else:
            self._flags.update(zip(batch, flags))
        if self.cache is None:
            self._ram_writer.submit(lambda: self._keep(batch, counts, layout, stage[:total], ready),
                                    nbytes=total * dtype.itemsize)
        else:
            rows = _rows(self.views, batch, counts, unpack_tokens(stage, layout))  # slices of the staging buffer
            cut = {t for t, f in zip(batch, flags or ()) if f}
            self.cache.put([(self.cache.key(vk, t), x) for (vk, t), x in rows.items()], meta={"texts": len(batch)},
                           truncated={self.cache.key(vk, t) for (vk, t) in rows if t in cut}, ready=ready,
                           release=lambda: self._staging.give(stage))

    def _copy_to_host(self, flat: torch.Tensor, host: torch.Tensor) -> Any:
        """CUDA: copy ``flat`` into pinned ``host`` on a side stream without waiting; return the event to wait for.

        The side stream waits for the views, then the copy engine moves them while the next
        forward runs; ``record_stream`` keeps ``flat``'s memory from reuse until the copy is done.
        """
        import torch

        if self._copy_stream is None:
            self._copy_stream = torch.cuda.Stream(flat.device)  # type: ignore[no-untyped-call]
        side = self._copy_stream
        side.wait_stream(torch.cuda.current_stream(flat.device))
        with torch.cuda.stream(side):
            host.copy_(flat, non_blocking=True)
            flat.record_stream(side)
            ready = torch.cuda.Event()  # type: ignore[no-untyped-call]
            ready.record(side)
        return ready

    def _keep(self, batch: list[str], counts: list[int], layout: Layout, staged: torch.Tensor, ready: Any) -> None:
        """RAM writer job: copy a batch out of its staging buffer into memory of its own, then store it."""
        try:
            if ready is not None:
                ready.synchronize()
            kept = staged.clone()  # pageable, one allocation per batch; the staging buffer is reused
        finally:
            self._staging.give(staged)
        rows = _rows(self.views, batch, counts, unpack_tokens(kept, layout))
        with self._data_lock:
            self._data.update(rows)

    def batch(self, view: View, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Right-padded float32 ``[B, T, D]`` (``[B, L, T, D]`` for stacks) features and ``[B, T]`` bool mask.

        One padding op over the stored tensors (zero-copy slices of the cache's mappings)
        and one conversion to float32 for the whole batch.  A stack batch is a transposed
        view of token-major ``[B, T, L, D]`` memory (dense, so ``.to(device)`` copies it as is).
        """
        import torch
        from torch.nn.utils.rnn import pad_sequence

        seqs = [self._stored(view, t) for t in texts]  # [T_i, D] or token-major [T_i, L, D]
        lengths = torch.tensor([s.shape[0] for s in seqs])
        x = pad_sequence(seqs, batch_first=True).to(torch.float32)  # [B, T, (L,) D]
        mask = torch.arange(x.shape[1]) < lengths[:, None]
        return (x.transpose(1, 2) if view.op == "stack" else x), mask

    def padded(self, view: View, texts: Sequence[str], *, pin: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """`batch` in the features' stored dtype (bf16 stays bf16), written straight into one new
        tensor, page-locked when ``pin`` (CUDA): what a trainer moves to a GPU and converts there,
        with half the bytes of float32 over the bus and no host copy besides the padding.  The
        values are `batch`'s: bf16 and f16 widen to float32 exactly."""
        import torch

        seqs = [self._stored(view, t) for t in texts]
        lengths = [int(s.shape[0]) for s in seqs]
        longest = max(lengths, default=0)
        tail = tuple(seqs[0].shape[1:]) if seqs else ()
        x = torch.empty((len(seqs), longest, *tail), dtype=seqs[0].dtype if seqs else torch.float32, pin_memory=pin)
        for i, (seq, n) in enumerate(zip(seqs, lengths)):
            x[i, :n] = seq
            x[i, n:] = 0
        mask = torch.arange(longest) < torch.tensor(lengths, dtype=torch.long)[:, None]
        return (x.transpose(1, 2) if view.op == "stack" else x), mask

    def batches(self, view: View) -> StoreBatches:
        """This store's `harness.types.FeatureBatchFn` for ``view`` (with the `padded` fast path)."""
        return StoreBatches(self, view)


class StoreBatches:
    """A `harness.types.FeatureBatchFn` over one store and view: ``fn(texts)`` is `FeatureStore.batch`
    (float32), and ``fn.padded(texts, pin=...)`` `FeatureStore.padded` (the stored dtype), which a
    trainer on CUDA uses when it finds it (`harness_plugins.aggregators.prefetch`)."""

    def __init__(self, store: FeatureStore, view: View) -> None:
        self.store, self.view = store, view

    def __call__(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        return self.store.batch(self.view, texts)

    def padded(self, texts: Sequence[str], *, pin: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        return self.store.padded(self.view, texts, pin=pin)


def _longest_first(texts: Iterable[str]) -> list[str]:
    return sorted(texts, key=lambda t: (-len(t), t))  # the same order in every process


def pack_tokens(tensors: Sequence[torch.Tensor], mask: torch.Tensor
                ) -> tuple[torch.Tensor, list[tuple[int, tuple[int, ...]]]]:
    """The real tokens of every ``[B, T, ...]`` tensor, packed into one flat buffer on their device.

    ``mask`` is the ``[B, T]`` bool mask on the CPU.  Returns the buffer and, per tensor,
    ``(start, shape)`` of its ``[N, ...]`` block (``N`` real tokens, texts in order), so a
    single copy moves every view of a batch off the device (`unpack_tokens` cuts it again).
    """
    import math

    import torch

    dtypes = {t.dtype for t in tensors}
    if len(dtypes) > 1:
        raise ValueError(f"views of one batch must share a dtype, got {sorted(map(str, dtypes))}")
    if not tensors:
        return torch.empty(0), []
    idx = mask.reshape(-1).nonzero().squeeze(1).to(tensors[0].device)
    layout: list[tuple[int, tuple[int, ...]]] = []
    start = 0
    for t in tensors:
        shape = (idx.numel(), *t.shape[2:])
        layout.append((start, shape))
        start += math.prod(shape)
    flat = torch.empty(start, dtype=tensors[0].dtype, device=tensors[0].device)
    for t, (begin, shape) in zip(tensors, layout):
        torch.index_select(t.flatten(0, 1), 0, idx, out=flat[begin:begin + math.prod(shape)].view(shape))
    return flat, layout


def unpack_tokens(flat: torch.Tensor, layout: Sequence[tuple[int, tuple[int, ...]]]) -> list[torch.Tensor]:
    """The blocks `pack_tokens` put into ``flat`` (wherever it was copied to), as views of it."""
    import math

    return [flat[start:start + math.prod(shape)].view(shape) for start, shape in layout]


def _truncation_flags(flags: Sequence[bool] | None, count: int, n: int) -> list[bool] | None:
    """Which texts of a batch of ``n`` were truncated: the encoder's flags, or what its count implies."""
    if flags is not None:
        return [bool(f) for f in flags]
    if count in (0, n):
        return [bool(count)] * n
    return None  # some but not which: counted for this run only


def _rows(views: Sequence[View], batch: Sequence[str], counts: Sequence[int], blocks: Sequence[torch.Tensor]
          ) -> dict[tuple[str, str], torch.Tensor]:
    """Each (view key, text)'s tokens: slices of its view's packed block, no copies."""
    import torch

    rows: dict[tuple[str, str], torch.Tensor] = {}
    for view, block in zip(views, blocks):
        for text, part in zip(batch, torch.split(block, list(counts))):
            rows[(view.key, text)] = part
    return rows


def _is_oom(exc: BaseException) -> bool:
    import torch

    return isinstance(exc, torch.cuda.OutOfMemoryError) or "CUDA out of memory" in str(exc)


def _free_cuda_cache() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
