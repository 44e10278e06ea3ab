"""On-disk feature cache: per-text views in checksummed shards, one shard per encoded batch.

Every entry is keyed by ``sha256(encoder fingerprint, feature dtype, view key, formatted
text)``, so a changed template, max_length, dtype or checkpoint can never hit a stale
entry.  Shards live in ``ROOT/<fingerprint digest>/``; their format (a checksummed JSON
header listing ``[key, offset, shape, crc32]`` per entry and which texts the encoder
truncated, then the payload) is in `harness.features._shard`.

Reads.  A shard is memory-mapped (privately, an LRU of a few mappings) and a text's
features are a zero-copy slice of the mapping until the caller converts them; treat them
as read-only.  Each entry's bytes are checked against its crc32 once per process: in bulk
by `verify` (plain reads, so an I/O error is an exception, not a SIGBUS under the
mapping), else on its first `read`; entries this process wrote count as checked.  A
failed check drops the whole shard with a warning: our mapping is released, the file
removed, its texts count as missing and `FeatureStore` re-encodes them.  Shards are never
rewritten in place, so bytes are not checked again after their first check.

Writes and durability.  A shard is written to a temporary name that carries the writer's
host and pid and then renamed, so a process killed at any point (SIGKILL included) leaves
only complete shards (a renamed file is complete in the page cache): a rerun recomputes
nothing it had finished, and removes temp files whose writer is dead.  What survives a
power loss or kernel crash depends on ``fsync``:

* ``"shard"``: each shard is fsynced before its rename and the folder after; nothing
  renamed is ever lost.
* ``"group"`` (default): shards are renamed without an fsync; every ``group_bytes``
  (1 GiB) or 64 shards written, and at `flush`/`close`, the files written since are
  fsynced and then the folder once.  A power loss loses at most the last group.
* ``"none"``: the OS writes back when it likes.

Under ``"group"`` and ``"none"`` a shard torn by a power loss fails its header check or
its crc32 and is dropped and re-encoded like any damaged shard.  ``True`` and ``False``
still mean ``"shard"`` and ``"none"``.

Writes go through a `harness.features._writer.BackgroundWriter` (a few threads behind a
bounded queue) so checksums and disk I/O overlap the next encoder forward; `put` blocks
while ``_MAX_PENDING`` shards or ``max_pending_bytes`` wait (back-pressure).  A shard's
tensors may still be arriving (an asynchronous device-to-host copy): ``put(ready=)`` is
waited on before its bytes are read.  A folder that cannot be written is used read-only;
a write that fails (full disk, read-only filesystem) removes its temp file and raises
`CacheError` in the caller's thread, at the next `put` or `flush`, once no other write is
running.  After an error of its own the caller calls `settle`: queued shards are finished
(kept whole, or removed) and their errors logged, so its error is the one reported.

torch is imported inside functions only.
"""

from __future__ import annotations

import errno
import functools
import hashlib
import json
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.features import _shard
from harness._exceptions import CacheError, ConfigError
from harness.features._shard import SUFFIX, Location, ShardError, ShardHeader
from harness.features._writer import BackgroundWriter
from harness.evaluation.checkpoints import content_key
from harness.types import EncoderInfo

if TYPE_CHECKING:
    import torch

__all__ = ["CACHE_FORMAT", "FSYNC_MODES", "FeatureCache", "default_cache_dir", "encoder_fingerprint",
           "ensure_cache_folder", "fsync_mode"]

log = logging.getLogger("harness")

CACHE_FORMAT = 2  # bump when view computation or the shard layout changes: old entries then never match
FSYNC_MODES = ("shard", "group", "none")
GROUP_BYTES = 1 << 30  # fsync="group": sync once this much was written...
GROUP_SHARDS = 64  # ...or this many shards
_MAX_MAPPED = 128  # shard mappings kept for reads (address space only: no file handle stays open)
_WRITERS = max(1, min(4, (os.cpu_count() or 1) - 1))  # crc32, write and fsync release the GIL
_MAX_PENDING = _WRITERS + 1  # shards queued before `put` blocks...
_MAX_PENDING_BYTES = 256 << 20  # ...or once this much waits in RAM (one shard always may)
_DISK_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
_ITEMSIZE = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8}


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


class FeatureCache:
    """Content-keyed store of per-text feature tensors under ``root`` (see module docstring).

    ``key(view_key, text)`` names an entry; ``read`` returns it (or None when missing or
    corrupt) and ``truncated`` whether its text was truncated; ``verify`` checks many
    entries at once; ``put`` queues one shard of entries; ``flush`` waits until queued
    shards are on disk; ``refresh`` indexes shards other processes wrote since;
    ``disk_bytes`` is what the shards take.  ``fsync`` is ``"shard"``, ``"group"`` or
    ``"none"`` (module docstring).  Raises `CacheError` when ``root`` cannot be used at all.
    """

    def __init__(self, root: str | os.PathLike[str], fingerprint: Mapping[str, Any], *,
                 dtype: str = "float32", fsync: str | bool = "group", group_bytes: int = GROUP_BYTES,
                 max_pending_bytes: int = _MAX_PENDING_BYTES, writers: int | None = None) -> None:
        self.dtype = dtype
        self.fsync = fsync_mode(fsync)
        self.group_bytes = group_bytes
        self.max_pending_bytes = max_pending_bytes
        self.fingerprint = dict(fingerprint)
        digest = content_key({"encoder": self.fingerprint, "dtype": dtype})
        self.dir = ensure_cache_folder(Path(root) / digest[:24], root=root)
        self._itemsize = _ITEMSIZE.get(dtype) or _torch_itemsize(dtype)
        self._seed = hashlib.sha256(f"{digest}\0".encode())
        self._index: dict[str, Location] = {}
        self._shards: set[str] = set()  # every shard name seen, good or not
        self._pending: dict[str, tuple[Any, Any]] = {}  # queued, not yet on disk: (tensor, its ready event)
        self._truncated: set[str] = set()  # keys whose text the encoder truncated
        self._checked: set[str] = set()  # keys whose bytes passed their crc32 in this process
        self._lock = threading.Lock()
        self._maps: OrderedDict[str, torch.Tensor] = OrderedDict()  # shard -> uint8 view of its mapping
        # ``writers=0``: each shard is written inside `put` (the synchronous reference)
        self._writer = BackgroundWriter(threads=_WRITERS if writers is None else writers, max_jobs=_MAX_PENDING,
                                        max_bytes=max_pending_bytes, name="harness-cache")
        self._unsynced: list[Path] = []  # fsync="group": shards written since the last sync...
        self._unsynced_bytes = 0  # ...and their size
        self.read_only: OSError | None = self._write_info()  # why nothing can be written here, or None
        if self.read_only is None:
            _shard.remove_stale_tmp(self.dir)
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

    def truncated(self, key: str) -> bool:
        """Whether the text of entry ``key`` was truncated when it was encoded (False if unknown)."""
        return key in self._truncated

    def read(self, key: str) -> torch.Tensor | None:
        """The stored CPU tensor, a zero-copy slice of the shard's mapping (treat it as read-only);
        None if missing, unreadable or failing its checksum (the shard is then dropped)."""
        import torch

        with self._lock:
            pending = self._pending.get(key)
            loc = self._index.get(key)
            checked = key in self._checked
        if pending is not None:  # a copy: the staging buffer it views is reused once the shard is written
            tensor, ready = pending
            if ready is not None:
                ready.synchronize()
            return tensor.clone()  # type: ignore[no-any-return]
        if loc is None:
            return None
        shard, offset, shape, crc = loc
        nbytes = self._nbytes(shape)
        dt = getattr(torch, self.dtype)
        try:
            mapped = self._map(shard)
        except OSError as exc:
            self._drop(shard, f"cannot be read ({exc})")
            return None
        if offset + nbytes > mapped.numel():
            self._drop(shard, "is shorter than its header says")
            return None
        raw = mapped[offset:offset + nbytes]
        if not checked:
            if _shard.crc32(raw) != crc:
                self._drop(shard, "failed its checksum")
                return None
            with self._lock:
                self._checked.add(key)
        return torch.empty(shape, dtype=dt) if not nbytes else raw.view(dt).view(shape)

    def verify(self, keys: Iterable[str]) -> int:
        """Check the stored bytes of ``keys`` not checked yet in this process, a few shards at a time.

        A shard that fails is dropped (warning, file removed), so its entries count as
        missing from then on.  Keys not on disk are skipped.  Returns the shards dropped.
        """
        by_shard: dict[str, list[tuple[int, int, int]]] = {}
        keys_of: dict[str, list[str]] = {}
        with self._lock:
            for k in keys:
                loc = self._index.get(k)
                if loc is not None and k not in self._checked:
                    by_shard.setdefault(loc[0], []).append((loc[1], self._nbytes(loc[2]), loc[3]))
                    keys_of.setdefault(loc[0], []).append(k)
        if not by_shard:
            return 0
        with ThreadPoolExecutor(_WRITERS, thread_name_prefix="harness-verify") as pool:
            problems = dict(zip(by_shard, pool.map(lambda s: _shard.check_entries(self.dir / s, by_shard[s]),
                                                   by_shard)))
        for shard, problem in problems.items():
            if problem is not None:
                self._drop(shard, problem)
            else:
                with self._lock:
                    self._checked.update(keys_of[shard])
        return sum(p is not None for p in problems.values())

    def check_writable(self, n_missing: int) -> None:
        """Raise `CacheError` when ``n_missing`` texts need encoding but this folder is read-only."""
        if self.read_only is not None and n_missing:
            raise CacheError(f"feature cache {str(self.dir)!r} is not writable ({_reason(self.read_only)}) and "
                             f"{n_missing} texts are not cached in it. {_fix(self.read_only)}")

    def disk_bytes(self) -> int:
        """Bytes the shard files in this cache's folder take (written by any process)."""
        total = 0
        try:
            listing = list(os.scandir(self.dir))
        except OSError:
            return 0
        for entry in listing:
            if entry.name.endswith(SUFFIX):
                try:
                    total += entry.stat().st_size
                except OSError:
                    pass  # dropped meanwhile
        return total

    # ---- writing ---------------------------------------------------------------------
    def put(self, entries: Sequence[tuple[str, torch.Tensor]], *, meta: Mapping[str, Any] | None = None,
            truncated: Collection[str] = (), ready: Any = None, release: Callable[[], None] | None = None) -> None:
        """Queue one shard holding ``entries`` (key, CPU tensor in ``dtype``); written in the background.

        ``truncated``: the keys (of ``entries``) whose text the encoder truncated.  ``ready``:
        an event (``.synchronize()``, e.g. a CUDA event after a non-blocking copy into the
        tensors) waited on before their bytes are read.  ``release`` is called once the
        shard no longer needs the tensors (written or failed), so their buffer can be reused.
        Blocks while the queue is full; raises `CacheError` for an earlier shard that failed.
        """
        if not entries:
            if release is not None:
                release()
            return
        flagged = {k for k, _ in entries if k in truncated}
        keys = [k for k, _ in entries]
        with self._lock:
            for k, t in entries:
                self._pending[k] = (t, ready)
            self._truncated |= flagged
        nbytes = sum(t.nbytes for _, t in entries)
        job = functools.partial(self._write_shard, list(entries), dict(meta or {}), flagged, ready=ready,
                                release=release)
        try:
            self._writer.submit(job, nbytes=nbytes)  # re-raises a failed earlier write here, not silently
        except BaseException:
            self._unpend(keys)  # raised before this shard's job ran: it is not written
            if release is not None and self._writer.threads > 0:
                release()
            raise

    def flush(self) -> None:
        """Block until every queued shard is written (and, unless ``fsync="none"``, synced).

        Raises the first write error.
        """
        self._writer.wait()
        self._sync_group(force=True)

    def settle(self) -> None:
        """Block until every queued shard is written or failed, without raising (an error path's cleanup).

        Shards that land are kept; failed ones leave no file and their errors are logged.
        """
        self._writer.settle()

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self._writer.close()
            with self._lock:
                self._maps.clear()  # mappings go once no tensor read from them is alive

    def _unpend(self, keys: Iterable[str]) -> None:
        with self._lock:
            for k in keys:
                self._pending.pop(k, None)

    def _write_shard(self, entries: list[tuple[str, Any]], meta: dict[str, Any], truncated: set[str], *,
                     ready: Any = None, release: Callable[[], None] | None = None) -> None:
        try:
            if ready is not None:
                ready.synchronize()  # the device-to-host copy into these tensors has landed
            self._write_entries(entries, meta, truncated)
        except BaseException:
            self._unpend(k for k, _ in entries)  # not on disk: a rerun (or a retry) encodes them again
            raise
        finally:
            if release is not None:
                release()

    def _write_entries(self, entries: list[tuple[str, Any]], meta: dict[str, Any], truncated: set[str]) -> None:
        prefix, blobs, rows = _shard.encode_shard(entries, version=CACHE_FORMAT, dtype=self.dtype,
                                                  truncated=truncated, meta=meta)
        name = _shard.new_name()
        tmp = self._tmp_path(name)
        try:
            _shard.write_file(tmp, [prefix, *blobs], fsync=self.fsync == "shard")
            os.replace(tmp, self.dir / name)
        except BaseException as exc:
            _shard.unlink(tmp)  # at once: a partial shard on a full disk must not keep the space
            if isinstance(exc, OSError):
                raise CacheError(f"feature cache {str(self.dir)!r}: writing a shard failed ({_reason(exc)}). "
                                 f"{_fix(exc)}") from exc
            raise
        if self.fsync == "shard":
            _shard.fsync_dir(self.dir)
        base = len(prefix)
        with self._lock:
            self._shards.add(name)
            for k, off, shape, crc in rows:
                self._index[k] = (name, base + off, tuple(shape), crc)
                self._checked.add(k)  # these very bytes were checksummed on their way out
                self._pending.pop(k, None)
            if self.fsync == "group":
                self._unsynced.append(self.dir / name)
                self._unsynced_bytes += base + sum(b.nbytes for b in blobs)
        self._sync_group(force=False)

    def _sync_group(self, *, force: bool) -> None:
        """fsync="group": sync the shards written since the last sync once a group is full (or ``force``)."""
        with self._lock:
            full = self._unsynced_bytes >= self.group_bytes or len(self._unsynced) >= GROUP_SHARDS
            if not self._unsynced or not (force or full):
                return
            group, self._unsynced, self._unsynced_bytes = self._unsynced, [], 0
        try:
            _shard.fsync_files(group)
        except OSError as exc:
            raise CacheError(f"feature cache {str(self.dir)!r}: syncing {len(group)} shards to disk failed "
                             f"({_reason(exc)}). {_fix(exc)}") from exc
        _shard.fsync_dir(self.dir)

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
                self._forget(gone)
        new = 0
        for name in sorted(names):
            if not name.endswith(SUFFIX) or name in self._shards:
                continue
            header = self._header(name)
            with self._lock:
                self._shards.add(name)
                if header:
                    for k, loc in header.entries.items():
                        if self._index.get(k) != loc:
                            self._checked.discard(k)  # a key written again elsewhere is checked again
                    self._index.update(header.entries)
                    self._truncated |= header.truncated
            new += header is not None
        return new

    def _header(self, name: str) -> ShardHeader | None:
        """Shard ``name``'s header; None if it is bad (then removed) or another format's."""
        try:
            return _shard.read_header(self.dir / name, version=CACHE_FORMAT, dtype=self.dtype,
                                      itemsize=self._itemsize)
        except ShardError as exc:
            self._bad_shard(name, str(exc))
            return None

    def _bad_shard(self, name: str, why: str) -> None:
        log.warning("feature cache: shard %s %s; ignoring it (its texts will be re-encoded)", self.dir / name, why)
        with self._lock:
            self._shards.add(name)  # do not warn again in this process
        _shard.unlink(self.dir / name)

    def _drop(self, name: str, why: str) -> None:
        log.warning("feature cache: shard %s %s; dropping it (its texts will be re-encoded)", self.dir / name, why)
        with self._lock:
            self._forget({name})  # releases our mapping before the file goes (Windows cannot remove it otherwise)
        _shard.unlink(self.dir / name)

    def _forget(self, names: set[str]) -> None:
        """Forget the entries and mappings of shards ``names`` (hold the lock)."""
        keys = [k for k, loc in self._index.items() if loc[0] in names]
        for k in keys:
            del self._index[k]
        self._checked.difference_update(keys)
        self._truncated.difference_update(keys)
        for name in names:
            self._maps.pop(name, None)  # tensors read from it keep the mapping alive: never unmapped under them

    def _map(self, name: str) -> torch.Tensor:
        """Shard ``name`` as a uint8 tensor over its memory mapping (kept in a small LRU)."""
        with self._lock:
            mapped = self._maps.get(name)
            if mapped is not None:
                self._maps.move_to_end(name)
                return mapped
        mapped = _shard.map_file(self.dir / name)
        with self._lock:
            self._maps[name] = mapped
            while len(self._maps) > _MAX_MAPPED:
                self._maps.popitem(last=False)
        return mapped

    def _nbytes(self, shape: tuple[int, ...]) -> int:
        n = self._itemsize
        for s in shape:
            n *= s
        return n

    def _tmp_path(self, name: str) -> Path:
        return _shard.tmp_path(self.dir, name)

    def _write_info(self) -> OSError | None:
        """Write ``fingerprint.json`` (or a probe file): None if that works, else why not."""
        path = self.dir / "fingerprint.json"
        exists = path.exists()
        tmp = self._tmp_path("fingerprint.json")
        body = b"" if exists else json.dumps({"encoder": self.fingerprint, "dtype": self.dtype}, indent=1,
                                             default=str).encode()
        try:
            _shard.write_file(tmp, [body], fsync=False)
            if not exists:
                os.replace(tmp, path)
        except OSError as exc:
            return exc
        finally:
            _shard.unlink(tmp)
        return None


def fsync_mode(fsync: str | bool) -> str:
    """``fsync`` as one of `FSYNC_MODES` (``True``: ``"shard"``, ``False``: ``"none"``)."""
    if fsync is True or fsync is False:
        return "shard" if fsync else "none"
    if fsync not in FSYNC_MODES:
        raise ConfigError(f"feature cache fsync {fsync!r} is not one of {', '.join(FSYNC_MODES)}")
    return fsync


def _torch_itemsize(dtype: str) -> int:
    import torch

    return int(getattr(torch, dtype).itemsize)


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


def _fix(exc: OSError) -> str:
    first = "Free space" if exc.errno in _DISK_FULL else "Make it writable"
    return f"{first}, point --cache-dir elsewhere, or run with --no-cache (features in RAM)"
