"""Feeding the training loop: the next batches' features fetched on a background thread.

`Feed` iterates over ``(item, tensors)`` in the order of ``items``.  With ``depth`` > 0 a thread
calls ``fetch(item)`` (e.g. `FeatureStore.batch` over the disk cache, or the encoder in the
loop) for up to ``depth`` items ahead of the consumer, while the consumer's step computes.  The
queue is bounded, so the thread never holds more than ``depth`` fetched batches (plus the one it
is fetching): memory does not grow with the run.

On CUDA every fetched CPU tensor is moved with one ``non_blocking`` copy on a side stream, from
pinned (page-locked) memory: as fetched when the fetch pinned it (`pair_features` over a store's
``padded`` batches: the stored dtype, padded straight into pinned memory), else copied there
once.  With ``float32=True`` floating tensors are widened to float32 on the device, after the
copy (bf16 crosses the bus at half the bytes; the values are the same).  An event recorded
after the copies is what the consumer's stream waits on (a wait on the device, no host
synchronisation), and the tensors are marked as used by that stream so the caching allocator
never reuses them early.  Tensors the
fetch already put on the device (an encoder on the GPU) are passed on as they are.  On the CPU
the tensors are passed on as they are.

The values are those of the synchronous path: the same ``fetch`` on the same items in the same
order (``depth=0`` is that path: each item fetched in the consumer's thread when it is asked
for, and moved as the trainer always moved it).  ``fetch`` must not draw from torch's global
random generator (the consumer's dropout draws from it); the harness's feature functions do not.

An exception raised by ``fetch`` (or by iterating ``items``) is raised in the consumer when it
reaches that item, with the thread's traceback.  `Feed.close` (also on leaving a ``with`` block,
whatever the reason) stops the thread and joins it: no thread outlives the feed.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Generic, TypeVar

import torch

from harness import CaptionPair
from harness.api import FeatureBatchFn, distributed

__all__ = ["Feed", "pair_features"]

T = TypeVar("T")
Tensors = tuple[torch.Tensor, ...]

_END = object()  # the thread's last message: items are exhausted


class _Failure:
    """What the thread hands over when ``fetch`` or the item iterator raised."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


class Feed(Generic[T]):
    """``(item, fetch(item) on device)`` for every item, ``depth`` items fetched ahead on a thread.

    ``wait_s`` is the time the consumer spent waiting for its next batch (with ``depth=0``, the
    fetch itself): the feeding cost left on the training's critical path.  ``fetch_s`` is the
    time spent fetching and moving, wherever it ran.
    """

    def __init__(self, items: Iterable[T], fetch: Callable[[T], Tensors], *, device: str | torch.device,
                 depth: int = 2, float32: bool = False) -> None:
        if depth < 0:
            raise ValueError(f"prefetch depth must be >= 0, got {depth}")
        self.device = _resolved(torch.device(device))
        self.depth = depth
        self.float32 = float32
        self.wait_s = self.fetch_s = 0.0
        self._items, self._fetch = iter(items), fetch
        self._stop = threading.Event()
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max(depth, 1))
        self._cuda = self.device.type == "cuda"
        self._stream = (torch.cuda.Stream(self.device)  # type: ignore[no-untyped-call]
                        if self._cuda and depth > 0 else None)
        self._thread: threading.Thread | None = None
        if depth > 0:
            self._thread = threading.Thread(target=self._run, name="harness-train-feed", daemon=True)
            self._thread.start()

    # ---- the producer ------------------------------------------------------------------------
    def _load(self, item: T) -> tuple[T, Tensors, Any]:
        t0 = time.perf_counter()
        tensors = self._fetch(item)
        event = None
        if self._stream is None:  # the synchronous path moves tensors as the trainer always did
            tensors = tuple(self._widened(t.to(self.device, non_blocking=True)) for t in tensors)
        else:
            # on another GPU (an encoder elsewhere): a plain copy, ordered on the streams that made it
            tensors = tuple(t.to(self.device) if t.device.type == "cuda" else t for t in tensors)
            with torch.cuda.stream(self._stream):  # host tensors: pinned (once, unless they are), one async copy each
                tensors = tuple(self._widened(t if t.device == self.device else
                                              (t if t.is_pinned() else t.pin_memory()).to(self.device, non_blocking=True))
                                for t in tensors)
                event = torch.cuda.Event()  # type: ignore[no-untyped-call]
                event.record(self._stream)
        self.fetch_s += time.perf_counter() - t0
        return item, tensors, event

    def _widened(self, t: torch.Tensor) -> torch.Tensor:
        if self.float32 and t.is_floating_point() and t.dtype != torch.float32:
            return t.float()
        return t

    def _run(self) -> None:
        try:
            if self._cuda:  # the CUDA device is per thread: this one starts on device 0
                torch.cuda.set_device(self.device)
            for item in self._items:
                if self._stop.is_set() or not self._put(self._load(item)):
                    return
            self._put(_END)
        except BaseException as exc:  # handed to the consumer, raised there at this item
            self._put(_Failure(exc))

    def _put(self, message: Any) -> bool:
        """Block until the consumer makes room; False when the feed is being closed."""
        while not self._stop.is_set():
            try:
                self._queue.put(message, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    # ---- the consumer ------------------------------------------------------------------------
    def __iter__(self) -> Iterator[tuple[T, Tensors]]:
        if self._thread is None:
            for item in self._items:
                t0 = time.perf_counter()
                got, tensors, _ = self._load(item)
                self.wait_s += time.perf_counter() - t0
                yield got, tensors
            return
        while True:
            t0 = time.perf_counter()
            message = self._queue.get()
            self.wait_s += time.perf_counter() - t0
            if message is _END:
                return
            if isinstance(message, _Failure):
                raise message.exc
            item, tensors, event = message
            if event is not None:
                stream = torch.cuda.current_stream(self.device)
                stream.wait_event(event)
                for t in tensors:
                    t.record_stream(stream)
            yield item, tensors

    def close(self) -> None:
        """Stop the thread (after the fetch it is in, if any) and join it; drop what it fetched."""
        self._stop.set()
        thread = self._thread
        while thread is not None and thread.is_alive():
            self._drain()
            thread.join(timeout=0.05)
        self._drain()

    def _drain(self) -> None:
        try:
            while True:
                self._queue.get_nowait()
        except queue.Empty:
            pass

    def __enter__(self) -> Feed[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def pair_features(batch_fn: FeatureBatchFn, pairs: Sequence[CaptionPair], *,
                  pinned: bool = False) -> Callable[[list[int]], Tensors]:
    """A `Feed`'s fetch for pair training: batch indices -> this rank's ``(xa, mask_a, xb, mask_b)``.

    Two whole-batch calls of ``batch_fn`` (the a sides, then the b sides) on this rank's
    `harness.features.distributed.rank_slice` of the batch (alone: the whole batch).  With
    ``pinned`` (CUDA) and a ``batch_fn`` that has ``padded`` (`harness.features.store.StoreBatches`),
    the features come in their stored dtype padded straight into pinned memory; the `Feed` must
    then widen them (``float32=True``).
    """
    padded = getattr(batch_fn, "padded", None) if pinned else None

    def fetch(idx: list[int]) -> Tensors:
        mine = distributed.rank_slice([pairs[i] for i in idx])
        if padded is not None:
            return (*padded([p.a for p in mine], pin=True), *padded([p.b for p in mine], pin=True))
        return (*batch_fn([p.a for p in mine]), *batch_fn([p.b for p in mine]))
    return fetch


def _resolved(device: torch.device) -> torch.device:
    """``cuda`` as ``cuda:<current device>`` (read in the caller's thread: the feed's thread starts on 0)."""
    if device.type == "cuda" and device.index is None:
        return torch.device("cuda", torch.cuda.current_device())
    return device
