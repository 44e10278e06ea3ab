"""On-disk feature cache: per-text views in checksummed shards, one shard per encoded batch.

Every entry is keyed by ``sha256(encoder fingerprint, feature dtype, view key, formatted
text)``, so a changed template, max_length, dtype or checkpoint can never hit a stale
entry.  Shards live in ``ROOT/<fingerprint digest>/`` and look like::

    b"TEDFEAT1" | u32 header length | u32 crc32(header) | header JSON | zero pad to 64 | payload

The header lists ``[key, offset, shape, crc32]`` per entry.  A shard is written to a
temporary name, fsynced and renamed, so a run killed at any point (SIGKILL included)
leaves only complete shards; the next run indexes their headers and encodes the rest.
Reads ``pread`` one entry at a time (nothing is memory-mapped or kept), check the
entry's crc32 and, on a mismatch, drop the whole shard with a warning: its texts count
as missing and `FeatureStore` recomputes them.  Writes go through a few background
threads so checksums and disk I/O overlap the next encoder forward.

torch is imported inside functions only.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import struct
import threading
import time
import uuid
import zlib
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.types import EncoderInfo

if TYPE_CHECKING:
    import torch

__all__ = ["CACHE_FORMAT", "FeatureCache", "default_cache_dir", "encoder_fingerprint"]

log = logging.getLogger("harness")

CACHE_FORMAT = 1  # bump when view computation changes: old entries then never match
MAGIC = b"TEDFEAT1"
_PREFIX = struct.Struct("<8sII")  # magic, header length, header crc32
_SUFFIX = ".tedf"
_MAX_OPEN = 32  # shard file handles kept open for reads
_WRITERS = max(1, min(4, (os.cpu_count() or 1) - 1))  # crc32, write and fsync release the GIL
_MAX_PENDING = _WRITERS + 1  # shards queued before `put` blocks...
_MAX_PENDING_BYTES = 256 << 20  # ...or once this much waits in RAM (one shard always may)
_STALE_TMP_S = 3600.0


def default_cache_dir() -> Path:
    """``$HARNESS_CACHE_DIR/features``, else ``~/.cache/ted-harness/features``."""
    root = os.environ.get("HARNESS_CACHE_DIR") or os.path.join(Path.home(), ".cache", "ted-harness")
    return Path(root) / "features"


def encoder_fingerprint(info: EncoderInfo) -> dict[str, Any]:
    """Everything about a loaded encoder that changes its hidden states.

    Local checkpoint folders also contribute the size and mtime of their files, so
    weights replaced in place do not reuse stale features.
    """
    fp: dict[str, Any] = {
        "format": CACHE_FORMAT, "family": info.family, "checkpoint": info.checkpoint, "revision": info.revision,
        "num_layers": info.num_layers, "width": info.width, "options": dict(info.options),
    }
    if os.path.isdir(info.checkpoint):
        fp["files"] = sorted((e.name, e.stat().st_size, e.stat().st_mtime_ns)
                             for e in os.scandir(info.checkpoint) if e.is_file())
    return fp


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def _align(n: int) -> int:
    return (n + 63) // 64 * 64


class FeatureCache:
    """Content-keyed store of per-text feature tensors under ``root`` (see module docstring).

    ``key(view_key, text)`` names an entry; ``read`` returns it (or None when missing or
    corrupt); ``put`` queues one shard of entries; ``flush`` waits until queued shards
    are on disk; ``refresh`` indexes shards other processes wrote since.
    """

    def __init__(self, root: str | os.PathLike[str], fingerprint: Mapping[str, Any], *,
                 dtype: str = "float32", fsync: bool = True, max_pending_bytes: int = _MAX_PENDING_BYTES) -> None:
        self.dtype = dtype
        self.fsync = fsync
        self.max_pending_bytes = max_pending_bytes
        self.fingerprint = dict(fingerprint)
        digest = _digest({"encoder": self.fingerprint, "dtype": dtype})
        self.dir = Path(root) / digest[:24]
        self.dir.mkdir(parents=True, exist_ok=True)
        self._seed = hashlib.sha256(f"{digest}\0".encode())
        self._index: dict[str, tuple[str, int, tuple[int, ...], int]] = {}  # key -> shard, offset, shape, crc
        self._shards: set[str] = set()
        self._pending: dict[str, Any] = {}  # queued, not yet on disk
        self._lock = threading.Lock()
        self._files: OrderedDict[str, io.FileIO] = OrderedDict()
        self._writer: ThreadPoolExecutor | None = None
        self._futures: list[tuple[Future[None], int]] = []  # queued shards and their sizes
        self._write_info()
        self._remove_stale_tmp()
        self.refresh()

    # ---- keys and lookup -------------------------------------------------------------
    def key(self, view_key: str, text: str) -> str:
        h = self._seed.copy()
        h.update(f"{view_key}\0{text}".encode())
        return h.hexdigest()[:40]

    def __contains__(self, key: str) -> bool:
        return key in self._index or key in self._pending

    def __len__(self) -> int:
        return len(self._index)

    @property
    def n_shards(self) -> int:
        return len(self._shards)

    def read(self, key: str) -> torch.Tensor | None:
        """The stored CPU tensor (treat it as read-only), or None if missing or failing its checksum."""
        import torch

        with self._lock:
            pending = self._pending.get(key)
            loc = self._index.get(key)
        if pending is not None:
            return pending  # type: ignore[no-any-return]
        if loc is None:
            return None
        shard, offset, shape, crc = loc
        dt = getattr(torch, self.dtype)
        nbytes = dt.itemsize
        for s in shape:
            nbytes *= s
        buf = bytearray(nbytes)
        try:
            fh = self._file(shard)
            fh.seek(offset)
            got = fh.readinto(buf)
        except OSError as exc:
            self._drop(shard, f"cannot be read ({exc})")
            return None
        if got != nbytes or zlib.crc32(buf) != crc:
            self._drop(shard, "failed its checksum")
            return None
        if nbytes == 0:
            return torch.empty(shape, dtype=dt)
        return torch.frombuffer(buf, dtype=dt).view(shape)

    # ---- writing ---------------------------------------------------------------------
    def put(self, entries: Sequence[tuple[str, torch.Tensor]], *, meta: Mapping[str, Any] | None = None) -> None:
        """Queue one shard holding ``entries`` (key, CPU tensor in ``dtype``); written in the background."""
        if not entries:
            return
        with self._lock:
            for k, t in entries:
                self._pending[k] = t
        if self._writer is None:
            self._writer = ThreadPoolExecutor(_WRITERS, thread_name_prefix="harness-cache")
        nbytes = sum(t.nbytes for _, t in entries)
        self._futures.append((self._writer.submit(self._write_shard, list(entries), dict(meta or {})), nbytes))
        while self._futures and (self._futures[0][0].done() or len(self._futures) > _MAX_PENDING or (
                len(self._futures) > 1 and sum(n for _, n in self._futures) > self.max_pending_bytes)):
            self._futures.pop(0)[0].result()  # re-raises a failed write here, not silently

    def flush(self) -> None:
        """Block until every queued shard is on disk (raises the first write error)."""
        while self._futures:
            self._futures.pop(0)[0].result()

    def close(self) -> None:
        self.flush()
        if self._writer is not None:
            self._writer.shutdown()
            self._writer = None
        for fh in self._files.values():
            fh.close()
        self._files.clear()

    def _write_shard(self, entries: list[tuple[str, Any]], meta: dict[str, Any]) -> None:
        import torch

        dt = getattr(torch, self.dtype)
        blobs: list[Any] = []
        rows: list[tuple[str, int, list[int], int]] = []
        offset = 0
        for k, t in entries:
            if t.dtype != dt:
                raise ValueError(f"feature cache holds {self.dtype}, got a {t.dtype} tensor")
            blob = (t if t.is_contiguous() else t.contiguous()).view(torch.uint8).numpy()  # no copy
            rows.append((k, offset, list(t.shape), zlib.crc32(blob)))
            blobs.append(blob)
            offset += blob.nbytes
        header = json.dumps({"version": CACHE_FORMAT, "dtype": self.dtype, "payload_bytes": offset,
                             "entries": rows, "meta": meta}).encode()
        prefix = _PREFIX.pack(MAGIC, len(header), zlib.crc32(header)) + header
        prefix += b"\0" * (_align(len(prefix)) - len(prefix))
        name = f"{time.time_ns():020d}-{os.getpid()}-{uuid.uuid4().hex[:8]}{_SUFFIX}"
        tmp = self.dir / f".{name}.tmp"
        with open(tmp, "wb") as fh:
            fh.write(prefix)
            for blob in blobs:
                fh.write(memoryview(blob))
            fh.flush()
            if self.fsync:
                os.fsync(fh.fileno())
        os.replace(tmp, self.dir / name)
        if self.fsync:
            _fsync_dir(self.dir)
        base = len(prefix)
        with self._lock:
            self._shards.add(name)
            for k, off, shape, crc in rows:
                self._index[k] = (name, base + off, tuple(shape), crc)
                self._pending.pop(k, None)

    # ---- index -----------------------------------------------------------------------
    def refresh(self) -> int:
        """Index shards not seen yet (written by an earlier run or another rank); return how many."""
        new = 0
        for name in sorted(os.listdir(self.dir)):
            if not name.endswith(_SUFFIX) or name in self._shards:
                continue
            rows = self._read_header(name)
            if rows is None:
                continue
            with self._lock:
                self._shards.add(name)
                self._index.update(rows)
            new += 1
        return new

    def _read_header(self, name: str) -> dict[str, tuple[str, int, tuple[int, ...], int]] | None:
        path = self.dir / name
        try:
            with open(path, "rb") as fh:
                size = os.fstat(fh.fileno()).st_size
                magic, hlen, hcrc = _PREFIX.unpack(fh.read(_PREFIX.size))
                header = fh.read(min(hlen, size))  # a corrupt length must not allocate gigabytes
        except (OSError, struct.error) as exc:
            self._bad_shard(name, f"has an unreadable header ({exc})")
            return None
        if magic != MAGIC or len(header) != hlen or zlib.crc32(header) != hcrc:
            self._bad_shard(name, "has a corrupt header")
            return None
        meta = json.loads(header)
        base = _align(_PREFIX.size + hlen)
        if meta.get("version") != CACHE_FORMAT or meta.get("dtype") != self.dtype:
            return None  # another format: not ours to judge or delete
        if size != base + int(meta["payload_bytes"]):
            self._bad_shard(name, f"is {size} bytes, its header says {base + int(meta['payload_bytes'])}")
            return None
        return {k: (name, base + off, tuple(shape), crc) for k, off, shape, crc in meta["entries"]}

    def _bad_shard(self, name: str, why: str) -> None:
        log.warning("feature cache: shard %s %s; ignoring it (its texts will be re-encoded)", self.dir / name, why)
        with self._lock:
            self._shards.add(name)  # do not warn again in this process
        _unlink(self.dir / name)

    def _drop(self, name: str, why: str) -> None:
        log.warning("feature cache: shard %s %s; dropping it (its texts will be re-encoded)", self.dir / name, why)
        with self._lock:
            for k in [k for k, loc in self._index.items() if loc[0] == name]:
                del self._index[k]
        fh = self._files.pop(name, None)
        if fh is not None:
            fh.close()
        _unlink(self.dir / name)

    def _file(self, name: str) -> io.FileIO:
        fh = self._files.get(name)
        if fh is None:
            fh = io.FileIO(self.dir / name, "rb")
            self._files[name] = fh
            if len(self._files) > _MAX_OPEN:
                self._files.popitem(last=False)[1].close()
        else:
            self._files.move_to_end(name)
        return fh

    def _write_info(self) -> None:
        path = self.dir / "fingerprint.json"
        if path.exists():
            return
        tmp = self.dir / f".fingerprint.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
        tmp.write_text(json.dumps({"encoder": self.fingerprint, "dtype": self.dtype}, indent=1, default=str))
        os.replace(tmp, path)

    def _remove_stale_tmp(self) -> None:
        # Only old ones: a fresh .tmp may belong to another process (another rank) writing now.
        now = time.time()
        for entry in os.scandir(self.dir):
            if entry.name.endswith(".tmp") and now - entry.stat().st_mtime > _STALE_TMP_S:
                _unlink(Path(entry.path))


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # e.g. Windows: directories cannot be opened
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
