"""The on-disk LLM response cache: one append-only JSONL file per cache folder.

Each line is ``{"key": sha256, "result": ChatResult}`` (key: `harness.llm.backend.request_key`).  An
answer is written the moment it arrives and the file is fsynced at the end of each batch and
every `SYNC_EVERY` answers, so a run killed midway loses at most what was in flight; the
rerun asks only what is missing.  A truncated or garbled line (a kill mid-write) is skipped on
reading.  Failed requests are not cached: a rerun asks them again.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Sequence
from pathlib import Path

from harness._exceptions import CacheError
from harness.llm.backend import ChatRequest, ChatResult, LLMBackend, Progress, request_key

__all__ = ["CACHE_FILE", "CachedBackend", "ResponseCache"]

CACHE_FILE = "llm-responses.jsonl"
SYNC_EVERY = 64


class ResponseCache:
    """Answers by key, read from ``folder/llm-responses.jsonl`` once and appended to as they come."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.path = Path(folder) / CACHE_FILE
        self._lock = threading.Lock()
        self._unsynced = 0
        self._entries: dict[str, ChatResult] = {}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            raw = self.path.read_bytes() if self.path.exists() else b""
        except OSError as exc:
            raise CacheError(f"LLM response cache {str(self.path)!r} cannot be read: {exc}") from exc
        for line in raw.splitlines():
            try:
                entry = json.loads(line)
                self._entries[str(entry["key"])] = ChatResult.from_dict(entry["result"])
            except (ValueError, KeyError, TypeError, AttributeError):
                continue  # a line cut short by a kill, or garbage: that answer is simply asked again
        self._needs_newline = bool(raw) and not raw.endswith(b"\n")

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> ChatResult | None:
        return self._entries.get(key)

    def put(self, key: str, result: ChatResult) -> None:
        """Record a successful answer (a failed one is ignored) and write it out at once."""
        if result.error is not None:
            return
        stored = ChatResult(text=result.text, finish_reason=result.finish_reason, usage=result.usage,
                            attempts=result.attempts)
        line = json.dumps({"key": key, "result": stored.to_dict()}, ensure_ascii=False) + "\n"
        with self._lock:
            self._entries[key] = stored
            data = ("\n" if self._needs_newline else "") + line
            self._needs_newline = False
            try:
                # One O_APPEND write per answer: concurrent writers interleave whole lines.
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                try:
                    os.write(fd, data.encode("utf-8"))
                    self._unsynced += 1
                    if self._unsynced >= SYNC_EVERY:
                        os.fsync(fd)
                        self._unsynced = 0
                finally:
                    os.close(fd)
            except OSError as exc:
                raise CacheError(f"LLM response cache {str(self.path)!r} cannot be written: {exc}") from exc

    def sync(self) -> None:
        """fsync what was written since the last sync (end of a batch)."""
        with self._lock:
            if not self._unsynced or not self.path.exists():
                return
            fd = os.open(self.path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            self._unsynced = 0


class CachedBackend:
    """An `LLMBackend` that answers from a `ResponseCache` and asks ``inner`` only for the rest.

    Identical requests in one batch are sent once.  Answers are cached as they arrive, so a
    batch interrupted by an exception (or a kill) resumes where it stopped.
    """

    def __init__(self, inner: LLMBackend, cache: ResponseCache) -> None:
        self.inner = inner
        self.cache = cache
        self.name = inner.name
        self.model = inner.model

    def complete(self, requests: Sequence[ChatRequest], *, progress: Progress | None = None) -> list[ChatResult]:
        keys = [request_key(self.name, self.model, r) for r in requests]
        results: list[ChatResult | None] = [None] * len(requests)
        todo: dict[str, list[int]] = {}  # key -> indices waiting for that answer
        for i, key in enumerate(keys):
            hit = self.cache.get(key)
            if hit is not None:
                results[i] = ChatResult(text=hit.text, finish_reason=hit.finish_reason, usage=hit.usage,
                                        cached=True, attempts=0)
                if progress is not None:
                    progress(i, results[i])  # type: ignore[arg-type]
            else:
                todo.setdefault(key, []).append(i)
        asked = list(todo)

        def arrived(j: int, result: ChatResult) -> None:
            self.cache.put(asked[j], result)
            first, *dupes = todo[asked[j]]
            results[first] = result
            for i in dupes:  # the same request again in this batch: no second request was sent
                results[i] = ChatResult(text=result.text, finish_reason=result.finish_reason, usage=result.usage,
                                        cached=True, error=result.error, attempts=0)
            if progress is not None:
                for i in (first, *dupes):
                    progress(i, results[i])  # type: ignore[arg-type]

        try:
            answers = self.inner.complete([requests[todo[k][0]] for k in asked], progress=arrived) if asked else []
            for j, result in enumerate(answers):  # a backend that did not report through progress
                if results[todo[asked[j]][0]] is None:
                    arrived(j, result)
        finally:
            self.cache.sync()
        return [r for r in results if r is not None]
