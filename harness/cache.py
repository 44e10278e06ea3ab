"""On-disk feature cache: per-text views in checksummed shards, one shard per encoded batch.

Every entry is keyed by ``sha256(encoder fingerprint, feature dtype, view key, formatted
text)``, so a changed template, max_length, dtype or checkpoint can never hit a stale
entry.  Shards live in ``ROOT/<fingerprint digest>/`` and look like::

    b"TEDFEAT1" | u32 header length | u32 crc32(header) | header JSON | zero pad to 64 | payload

The header lists ``[key, offset, shape, crc32]`` per entry; one whose structure does not
hold up is treated like a failed checksum.  A shard is written to a temporary name that
carries the writer's host and pid, fsynced and renamed, so a run killed at any point
(SIGKILL included) leaves only complete shards, and the next run removes temp files whose
writer is dead.  `verify` and reads check each entry's crc32 and, on a mismatch, drop the
whole shard with a warning: its texts count as missing and `FeatureStore` recomputes them.
Writes go through a few background threads so checksums and disk I/O overlap the next
encoder forward.  A folder that cannot be written is used read-only; a write that fails
(full disk, read-only filesystem) raises `CacheError` after removing its temp file.

torch is imported inside functions only.
"""

from __future__ import annotations

import errno
import functools
import hashlib
import io
import json
import logging
import os
import re
import socket
import struct
import threading
import time
import uuid
import zlib
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_all
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeGuard

from harness._exceptions import CacheError
from harness.checkpoints import content_key
from harness.types import EncoderInfo

if TYPE_CHECKING:
    import torch

__all__ = ["CACHE_FORMAT", "FeatureCache", "default_cache_dir", "encoder_fingerprint", "ensure_cache_folder"]

log = logging.getLogger("harness")

CACHE_FORMAT = 1  # bump when view computation changes: old entries then never match
MAGIC = b"TEDFEAT1"
_PREFIX = struct.Struct("<8sII")  # magic, header length, header crc32
_SUFFIX = ".tedf"
_MAX_OPEN = 32  # shard file handles kept open for reads
_WRITERS = max(1, min(4, (os.cpu_count() or 1) - 1))  # crc32, write and fsync release the GIL
_MAX_PENDING = _WRITERS + 1  # shards queued before `put` blocks...
_MAX_PENDING_BYTES = 256 << 20  # ...or once this much waits in RAM (one shard always may)
_STALE_TMP_S = 3600.0  # temp files whose writer cannot be checked (another host) go once this old
_TMP_RE = re.compile(r"\.([0-9a-f]{8})-(\d{1,9})-[0-9a-f]{8}\.tmp$")  # owner tag, pid, random
_DISK_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
_ITEMSIZE = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8}
Location = tuple[str, int, tuple[int, ...], int]  # shard, offset, shape, crc32


def default_cache_dir() -> Path:
    """``$HARNESS_CACHE_DIR/features``, else ``~/.cache/ted-harness/features``."""
    root = os.environ.get("HARNESS_CACHE_DIR") or os.path.join(Path.home(), ".cache", "ted-harness")
    return Path(root) / "features"


def ensure_cache_folder(folder: str | os.PathLike[str], *, root: str | os.PathLike[str] | None = None) -> Path:
    """Create ``folder`` (inside the cache ``root``, default itself), or raise `CacheError` in one line.

    The CLI calls it on the root before a model loads, so an unusable ``--cache-dir`` costs nothing.
    """
    path, root = Path(folder), Path(root if root is not None else folder)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        if root.is_file():
            raise CacheError(f"feature cache folder {str(root)!r} is a file. Point --cache-dir at a folder, "
                             "or run with --no-cache (features in RAM)") from exc
        raise CacheError(f"feature cache folder {str(path)!r} cannot be created ({_reason(exc)}). "
                         f"{_fix(exc)}") from exc
    return path


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


def _align(n: int) -> int:
    return (n + 63) // 64 * 64


class FeatureCache:
    """Content-keyed store of per-text feature tensors under ``root`` (see module docstring).

    ``key(view_key, text)`` names an entry; ``read`` returns it (or None when missing or
    corrupt); ``verify`` checks many entries at once; ``put`` queues one shard of entries;
    ``flush`` waits until queued shards are on disk; ``refresh`` indexes shards other
    processes wrote since.  Raises `CacheError` when ``root`` cannot be used at all.
    """

    def __init__(self, root: str | os.PathLike[str], fingerprint: Mapping[str, Any], *,
                 dtype: str = "float32", fsync: bool = True, max_pending_bytes: int = _MAX_PENDING_BYTES) -> None:
        self.dtype = dtype
        self.fsync = fsync
        self.max_pending_bytes = max_pending_bytes
        self.fingerprint = dict(fingerprint)
        digest = content_key({"encoder": self.fingerprint, "dtype": dtype})
        self.dir = ensure_cache_folder(Path(root) / digest[:24], root=root)
        self._itemsize = _ITEMSIZE.get(dtype) or _torch_itemsize(dtype)
        self._seed = hashlib.sha256(f"{digest}\0".encode())
        self._index: dict[str, Location] = {}
        self._shards: set[str] = set()  # every shard name seen, good or not
        self._pending: dict[str, Any] = {}  # queued, not yet on disk
        self._lock = threading.Lock()
        self._files: OrderedDict[str, io.FileIO] = OrderedDict()
        self._writer: ThreadPoolExecutor | None = None
        self._futures: list[tuple[Future[None], int]] = []  # queued shards and their sizes
        self.read_only: OSError | None = self._write_info()  # why nothing can be written here, or None
        if self.read_only is None:
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
        return len({loc[0] for loc in self._index.values()})

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
        buf = bytearray(self._nbytes(shape))
        try:
            fh = self._file(shard)
            fh.seek(offset)
            got = fh.readinto(buf)
        except OSError as exc:
            self._drop(shard, f"cannot be read ({exc})")
            return None
        if got != len(buf) or zlib.crc32(buf) != crc:
            self._drop(shard, "failed its checksum")
            return None
        dt = getattr(torch, self.dtype)
        return torch.empty(shape, dtype=dt) if not buf else torch.frombuffer(buf, dtype=dt).view(shape)

    def verify(self, keys: Iterable[str]) -> int:
        """Check the stored bytes of ``keys`` against their checksums, a few shards at a time.

        A shard that fails is dropped (warning, file removed), so its entries count as
        missing from then on.  Keys not on disk are skipped.  Returns the shards dropped.
        """
        by_shard: dict[str, list[tuple[int, int, int]]] = {}
        with self._lock:
            for k in keys:
                loc = self._index.get(k)
                if loc is not None:
                    by_shard.setdefault(loc[0], []).append((loc[1], self._nbytes(loc[2]), loc[3]))
        if not by_shard:
            return 0
        with ThreadPoolExecutor(_WRITERS, thread_name_prefix="harness-verify") as pool:
            problems = dict(zip(by_shard, pool.map(lambda s: _check_entries(self.dir / s, by_shard[s]), by_shard)))
        for shard, problem in problems.items():
            if problem is not None:
                self._drop(shard, problem)
        return sum(p is not None for p in problems.values())

    def check_writable(self, n_missing: int) -> None:
        """Raise `CacheError` when ``n_missing`` texts need encoding but this folder is read-only."""
        if self.read_only is not None and n_missing:
            raise CacheError(f"feature cache {str(self.dir)!r} is not writable ({_reason(self.read_only)}) and "
                             f"{n_missing} texts are not cached in it. {_fix(self.read_only)}")

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
            self._result(self._futures.pop(0)[0])  # re-raises a failed write here, not silently

    def flush(self) -> None:
        """Block until every queued shard is on disk (raises the first write error)."""
        while self._futures:
            self._result(self._futures.pop(0)[0])

    def _result(self, future: Future[None]) -> None:
        try:
            future.result()
        except BaseException:
            # Let the other queued shards land (or fail and remove their temp files) first:
            # what they hold is kept, and no writer is still busy once the error is seen.
            wait_all([f for f, _ in self._futures])
            self._futures.clear()
            raise

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
        tmp = self._tmp_path(name)
        try:
            _write_file(tmp, [prefix, *blobs], fsync=self.fsync)
            os.replace(tmp, self.dir / name)
        except BaseException as exc:
            _unlink(tmp)  # at once: a partial shard on a full disk must not keep the space
            if isinstance(exc, OSError):
                raise CacheError(f"feature cache {str(self.dir)!r}: writing a shard failed ({_reason(exc)}). "
                                 f"{_fix(exc)}") from exc
            raise
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
        """Index shards not seen yet (written by an earlier run or another rank); return how many.

        Entries of shards that vanished (another process dropped them) are forgotten.
        """
        with self._lock:  # so a shard a writer renames into place now is either listed or not known yet
            try:
                names = set(os.listdir(self.dir))
            except OSError as exc:
                raise CacheError(f"feature cache {str(self.dir)!r} cannot be read ({_reason(exc)}). "
                                 f"{_fix(exc)}") from exc
            gone = self._shards - names
            if gone:
                self._shards -= gone
                for k in [k for k, loc in self._index.items() if loc[0] in gone]:
                    del self._index[k]
        new = 0
        for name in sorted(names):
            if not name.endswith(_SUFFIX) or name in self._shards:
                continue
            rows = self._read_header(name)
            with self._lock:
                self._shards.add(name)
                if rows:
                    self._index.update(rows)
            new += rows is not None
        return new

    def _read_header(self, name: str) -> dict[str, Location] | None:
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
        try:
            meta = json.loads(header)
        except ValueError:
            self._bad_shard(name, "has a header that is not JSON")
            return None
        if isinstance(meta, dict) and (meta.get("version") != CACHE_FORMAT or meta.get("dtype") != self.dtype):
            return None  # another format: not ours to judge or delete
        base = _align(_PREFIX.size + hlen)
        problem = _header_problem(meta, size - base, self._itemsize)
        if problem is not None:
            self._bad_shard(name, problem)
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

    def _nbytes(self, shape: tuple[int, ...]) -> int:
        n = self._itemsize
        for s in shape:
            n *= s
        return n

    def _tmp_path(self, name: str) -> Path:
        return self.dir / f".{name}.{_owner_tag()}-{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp"

    def _write_info(self) -> OSError | None:
        """Write ``fingerprint.json`` (or a probe file): None if that works, else why not."""
        path = self.dir / "fingerprint.json"
        exists = path.exists()
        tmp = self._tmp_path("fingerprint.json")
        body = b"" if exists else json.dumps({"encoder": self.fingerprint, "dtype": self.dtype}, indent=1,
                                             default=str).encode()
        try:
            _write_file(tmp, [body], fsync=False)
            if not exists:
                os.replace(tmp, path)
        except OSError as exc:
            return exc
        finally:
            _unlink(tmp)
        return None

    def _remove_stale_tmp(self) -> None:
        # A temp file of a live writer (another rank or run) stays.  One whose writer is dead
        # (killed, or failed on a full disk) goes now, so it cannot fill the disk for this run;
        # pids are only comparable on this host and pid namespace, others wait out the age.
        now, tag = time.time(), _owner_tag()
        try:
            listing = list(os.scandir(self.dir))
        except OSError:
            return  # `refresh` says why
        for entry in listing:
            if not entry.name.endswith(".tmp"):
                continue
            m = _TMP_RE.search(entry.name)
            try:
                old = now - entry.stat().st_mtime > _STALE_TMP_S
            except OSError:
                continue
            if old or (m is not None and m.group(1) == tag and not _pid_alive(int(m.group(2)))):
                _unlink(Path(entry.path))


def _header_problem(meta: Any, payload: int, itemsize: int) -> str | None:
    """Why a header with a valid checksum still cannot be trusted, or None."""
    if not isinstance(meta, dict):
        return f"has a header that is a JSON {type(meta).__name__}, not an object"
    n = meta.get("payload_bytes")
    if not _is_int(n) or n < 0:
        return f"has a bad payload_bytes {n!r:.80}"
    if n != payload:
        return f"has {payload} payload bytes, its header says {n}"
    entries = meta.get("entries")
    if not isinstance(entries, list):
        return f"has a bad entry list {entries!r:.80}"
    for row in entries:
        ok = isinstance(row, list) and len(row) == 4 and isinstance(row[0], str) and _is_int(row[1]) \
            and isinstance(row[2], list) and all(_is_int(s) and s >= 0 for s in row[2]) \
            and _is_int(row[3]) and 0 <= row[3] < 1 << 32 and row[1] >= 0
        if not ok:
            return f"has a malformed entry {row!r:.80}"
        size = itemsize
        for s in row[2]:
            size *= s
        if row[1] + size > n:
            return f"has an entry past the end of its payload {row!r:.80}"
    return None


def _check_entries(path: Path, entries: list[tuple[int, int, int]]) -> str | None:
    """Read ``(offset, nbytes, crc32)`` entries of one shard in file order: None, or what is wrong."""
    entries = sorted(entries)
    buf = bytearray(max(n for _, n, _ in entries))
    try:
        with io.FileIO(path, "rb") as fh:
            for offset, nbytes, crc in entries:
                view = memoryview(buf)[:nbytes]
                fh.seek(offset)
                if fh.readinto(view) != nbytes or zlib.crc32(view) != crc:
                    return "failed its checksum"
    except OSError as exc:
        return f"cannot be read ({exc})"
    return None


def _is_int(x: object) -> TypeGuard[int]:
    return isinstance(x, int) and not isinstance(x, bool)


def _torch_itemsize(dtype: str) -> int:
    import torch

    return int(getattr(torch, dtype).itemsize)


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


def _fix(exc: OSError) -> str:
    first = "Free space" if exc.errno in _DISK_FULL else "Make it writable"
    return f"{first}, point --cache-dir elsewhere, or run with --no-cache (features in RAM)"


@functools.cache
def _owner_tag() -> str:
    """Host and pid namespace of this process: only where they match is a temp file's pid checked."""
    try:
        ns = os.readlink("/proc/self/ns/pid")
    except OSError:
        ns = ""
    return hashlib.sha256(f"{socket.gethostname()}\0{ns}".encode()).hexdigest()[:8]


def _pid_alive(pid: int) -> bool:
    if os.name == "nt":  # there os.kill(pid, 0) sends CTRL_C_EVENT
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: alive, another user's
        return True
    return True


def _write_file(path: Path, chunks: Iterable[Any], *, fsync: bool) -> None:
    """Create ``path`` (it must not exist) and write ``chunks`` (bytes-like) with ``os.write``."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o644)
    try:
        for chunk in chunks:
            view = memoryview(chunk).cast("B")
            while view:
                view = view[os.write(fd, view):]
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)


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
