"""`BackgroundWriter`: jobs on background threads behind a bounded queue, errors raised in the caller.

The feature pass hands each batch's host-side work to one: the feature cache's checksum,
write and rename of a shard, the feature store's copy of a batch into the memory it is kept
in.  The encoder then runs the next batch meanwhile.

* Bounded: `submit` blocks while ``max_jobs`` jobs are queued or running, or while the
  queued bytes would pass ``max_bytes`` (one job always may), so a slow disk slows the
  encoder down instead of filling the RAM (back-pressure).
* Errors: a job's exception is raised in the calling thread by the next `submit` or `wait`,
  once every other queued job is done (what they write is kept, or removed by themselves on
  failure), so no job is still running when the caller sees it; later errors are logged.
* `settle` waits for every queued job without raising: the path an exception in the
  caller takes, so its own error is the one reported and no job is left behind.
* ``threads=0`` runs each job inline in `submit` (the synchronous reference).

Threads are ``concurrent.futures`` workers: at interpreter exit queued jobs still finish.
`StagingBuffers` are the reusable host buffers a batch waits in for its job.  torch is
imported inside functions only.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_all
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

__all__ = ["BackgroundWriter", "StagingBuffers"]

log = logging.getLogger("harness")


class BackgroundWriter:
    """Run jobs (no-argument callables) on ``threads`` background threads; see the module docstring.

    One thread submits (the feature pass); the jobs themselves may run in any order.
    """

    def __init__(self, *, threads: int, max_jobs: int, max_bytes: int, name: str) -> None:
        if threads < 0 or max_jobs < 1:
            raise ValueError(f"threads {threads!r} must be >= 0 and max_jobs {max_jobs!r} >= 1")
        self.threads, self.max_jobs, self.max_bytes, self.name = threads, max_jobs, max_bytes, name
        self._pool: ThreadPoolExecutor | None = None
        self._queue: deque[tuple[Future[None], int]] = deque()  # oldest first, with each job's bytes
        self._bytes = 0
        self.n_jobs = 0  # jobs submitted
        self.n_blocked = 0  # times `submit` waited for room (back-pressure)
        self.peak_jobs = 0  # most jobs queued or running at once

    @property
    def pending(self) -> int:
        """Jobs queued or running (finished ones count until `submit` or `wait` collects them)."""
        return len(self._queue)

    @property
    def pending_bytes(self) -> int:
        return self._bytes

    def submit(self, job: Callable[[], None], *, nbytes: int = 0) -> None:
        """Queue ``job`` (its data takes ``nbytes``), blocking while the queue is full.

        Raises the first error of an earlier job (after every queued job is done).
        """
        self._collect(block=False)
        blocked = False
        while self._queue and (len(self._queue) >= self.max_jobs or self._bytes + nbytes > self.max_bytes):
            blocked = True
            self._pop()
        self.n_blocked += blocked
        self.n_jobs += 1
        if self.threads == 0:
            job()
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix=self.name)
        self._queue.append((self._pool.submit(job), nbytes))
        self._bytes += nbytes
        self.peak_jobs = max(self.peak_jobs, len(self._queue))

    def wait(self) -> None:
        """Block until every queued job is done; raise the first error."""
        self._collect(block=True)

    def settle(self) -> None:
        """Block until every queued job is done; their errors are logged, not raised."""
        jobs = [f for f, _ in self._queue]
        self._queue.clear()
        self._bytes = 0
        wait_all(jobs)
        for f in jobs:
            exc = f.exception()
            if exc is not None:
                log.warning("%s: a background job failed too (%s)", self.name, exc)

    def close(self) -> None:
        """`wait`, then stop the threads (a later `submit` starts new ones)."""
        try:
            self.wait()
        finally:
            if self._pool is not None:
                self._pool.shutdown()
                self._pool = None

    def _collect(self, *, block: bool) -> None:
        """Collect finished jobs (every job when ``block``), raising the first error."""
        if block:
            while self._queue:
                self._pop()
            return
        failed = next((f for f, _ in self._queue if f.done() and f.exception() is not None), None)
        if failed is not None:
            self._fail(failed)
        kept = [(f, n) for f, n in self._queue if not f.done()]
        if len(kept) != len(self._queue):
            self._queue = deque(kept)
            self._bytes = sum(n for _, n in kept)

    def _pop(self) -> None:
        """Wait for the oldest job; raise its error (once the others are done)."""
        future, nbytes = self._queue[0]
        wait_all([future])  # it counts as pending until it is done
        self._queue.popleft()
        self._bytes -= nbytes
        if future.exception() is not None:
            self._fail(future)

    def _fail(self, future: Future[None]) -> None:
        """Let every other queued job finish (nothing of ours runs once the error is seen), then raise."""
        others = [f for f, _ in self._queue if f is not future]
        self._queue.clear()
        self._bytes = 0
        wait_all(others)
        for f in others:
            if f.exception() is not None:
                log.warning("%s: a background job failed too (%s)", self.name, f.exception())
        exc = future.exception()
        assert exc is not None
        raise exc


class StagingBuffers:
    """Host buffers that batches' views are put in before a background writer takes them, reused.

    `take` hands out a free buffer big enough (else a new one: pinned for CUDA copies) and
    the writer `give`s it back once done, so the pass does not fault in fresh memory per
    batch; the writer's bounded queue bounds how many are out.  ``keep`` free ones are kept.
    """

    def __init__(self, *, keep: int) -> None:
        self._free: list[tuple[torch.Tensor, bool]] = []  # (buffer, pinned)
        self._pinned: dict[int, bool] = {}  # id of each buffer handed out -> pinned
        self._keep = keep
        self._lock = threading.Lock()
        self.n_allocated = 0

    def take(self, n: int, dtype: torch.dtype, *, pin: bool) -> torch.Tensor:
        import torch

        with self._lock:
            fits = [i for i, (b, p) in enumerate(self._free) if b.numel() >= n and b.dtype == dtype and p == pin]
            if fits:
                buf = self._free.pop(min(fits, key=lambda i: self._free[i][0].numel()))[0]
                self._pinned[id(buf)] = pin
                return buf
        self.n_allocated += 1
        buf = torch.empty(max(n, 1), dtype=dtype, pin_memory=pin)
        with self._lock:
            self._pinned[id(buf)] = pin
        return buf

    def give(self, buf: torch.Tensor) -> None:
        base = buf._base if buf._base is not None else buf  # a slice goes back as its whole buffer
        with self._lock:
            pin = self._pinned.pop(id(base), None)
            if pin is None:  # given back already, or not ours
                return
            self._free.append((base, pin))
            if len(self._free) > self._keep:
                self._free.pop(min(range(len(self._free)), key=lambda i: self._free[i][0].numel()))

    def clear(self) -> None:
        with self._lock:
            self._free.clear()
            self._pinned.clear()  # one handed out and never given back (a failed pass) is let go too
