"""The feature cache's shard file format, and the file helpers its writers use.

A shard is::

    b"TEDFEAT1" | u32 header length | u32 crc32(header) | header JSON | zero pad to 64 | payload

The header is ``{"version", "dtype", "payload_bytes", "entries", "truncated", "meta"}``:
``entries`` lists ``[key, offset, shape, crc32]`` per tensor (offset into the payload),
``truncated`` the indices of the entries whose text the encoder truncated.  A header
whose checksum holds but whose structure does not is `ShardError`, like a bad checksum.
torch is imported inside functions only.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import re
import socket
import struct
import time
import uuid
import zlib
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeGuard

if TYPE_CHECKING:
    import torch

MAGIC = b"TEDFEAT1"
PREFIX = struct.Struct("<8sII")  # magic, header length, header crc32
SUFFIX = ".tedf"
Location = tuple[str, int, tuple[int, ...], int]  # shard, offset in the file, shape, crc32
_STALE_TMP_S = 3600.0  # temp files whose writer cannot be checked (another host) go once this old
_TMP_RE = re.compile(r"\.([0-9a-f]{8})-(\d{1,9})-[0-9a-f]{8}\.tmp$")  # owner tag, pid, random


class ShardError(Exception):
    """A shard that cannot be trusted; the message says why (``"has a corrupt header"``)."""


@dataclass
class ShardHeader:
    """What a shard holds: each key's location, and the keys whose text was truncated."""

    entries: dict[str, Location]
    truncated: set[str] = field(default_factory=set)


def align(n: int) -> int:
    return (n + 63) // 64 * 64


def encode_shard(entries: Sequence[tuple[str, torch.Tensor]], *, version: int, dtype: str,
                 truncated: Collection[str] = (), meta: dict[str, Any] | None = None
                 ) -> tuple[bytes, list[Any], list[tuple[str, int, list[int], int]]]:
    """``(prefix, payload blobs, rows)`` of a shard of ``entries`` (CPU tensors in ``dtype``).

    The blobs are zero-copy byte views of the tensors; rows give offsets into the payload
    (the file offset is ``len(prefix)`` more).
    """
    import torch

    dt = getattr(torch, dtype)
    blobs: list[Any] = []
    rows: list[tuple[str, int, list[int], int]] = []
    flagged: list[int] = []
    offset = 0
    for i, (k, t) in enumerate(entries):
        if t.dtype != dt:
            raise ValueError(f"feature cache holds {dtype}, got a {t.dtype} tensor")
        blob: Any = (t if t.is_contiguous() else t.contiguous()).view(torch.uint8).numpy()  # no copy
        rows.append((k, offset, list(t.shape), zlib.crc32(blob)))
        blobs.append(blob)
        offset += blob.nbytes
        if k in truncated:
            flagged.append(i)
    header = json.dumps({"version": version, "dtype": dtype, "payload_bytes": offset, "entries": rows,
                         "truncated": flagged, "meta": meta or {}}).encode()
    prefix = PREFIX.pack(MAGIC, len(header), zlib.crc32(header)) + header
    return prefix + b"\0" * (align(len(prefix)) - len(prefix)), blobs, rows


def read_header(path: Path, *, version: int, dtype: str, itemsize: int) -> ShardHeader | None:
    """The header of the shard at ``path``; None if it is another format or dtype (not ours to judge).

    Raises `ShardError` when it cannot be read or trusted.
    """
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            magic, hlen, hcrc = PREFIX.unpack(fh.read(PREFIX.size))
            header = fh.read(min(hlen, size))  # a corrupt length must not allocate gigabytes
    except (OSError, struct.error) as exc:
        raise ShardError(f"has an unreadable header ({exc})") from exc
    if magic != MAGIC or len(header) != hlen or zlib.crc32(header) != hcrc:
        raise ShardError("has a corrupt header")
    try:
        meta = json.loads(header)
    except ValueError:
        raise ShardError("has a header that is not JSON") from None
    if isinstance(meta, dict) and (meta.get("version") != version or meta.get("dtype") != dtype):
        return None
    base = align(PREFIX.size + hlen)
    problem = header_problem(meta, size - base, itemsize)
    if problem is not None:
        raise ShardError(problem)
    name = path.name
    entries = meta["entries"]
    return ShardHeader({k: (name, base + off, tuple(shape), crc) for k, off, shape, crc in entries},
                       {entries[i][0] for i in meta.get("truncated", [])})


def header_problem(meta: Any, payload: int, itemsize: int) -> str | None:
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
    flags = meta.get("truncated", [])
    if not isinstance(flags, list) or not all(_is_int(i) and 0 <= i < len(entries) for i in flags):
        return f"has a bad truncated list {flags!r:.80}"
    return None


def check_entries(path: Path, entries: list[tuple[int, int, int]]) -> str | None:
    """Read ``(offset, nbytes, crc32)`` entries of one shard in file order: None, or what is wrong.

    Plain reads, not the mapping: an I/O error is then an `OSError`, not a SIGBUS.
    """
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


def map_file(path: Path) -> torch.Tensor:
    """The whole file as a uint8 tensor over a private (copy-on-write) memory mapping.

    The mapping lives as long as any tensor viewing it, so dropping this reference never
    invalidates slices handed out before; it works on read-only files too.
    """
    import torch

    size = os.stat(path).st_size
    if size == 0:
        return torch.empty(0, dtype=torch.uint8)
    try:
        return torch.from_file(os.fspath(path), shared=False, size=size, dtype=torch.uint8)
    except RuntimeError as exc:  # torch reports a failed open or mmap this way
        raise OSError(str(exc)) from exc


def crc32(t: torch.Tensor) -> int:
    """crc32 of a contiguous uint8 CPU tensor's bytes, without copying them."""
    data: Any = t.numpy()
    return zlib.crc32(data)


def write_file(path: Path, chunks: Iterable[Any], *, fsync: bool) -> None:
    """Create ``path`` (it must not exist) and write ``chunks`` (bytes-like) with ``os.write``."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o644)
    try:
        for chunk in chunks:
            view = memoryview(chunk)
            if view.nbytes == 0:  # an entry of zero tokens (every token dropped): nothing to write
                continue
            view = view.cast("B")
            while view:
                view = view[os.write(fd, view):]
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)


def fsync_files(paths: Iterable[Path]) -> None:
    """fsync files written earlier (and since closed); ones removed meanwhile are skipped."""
    for path in paths:
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        except FileNotFoundError:
            continue  # dropped since: nothing to keep
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def fsync_dir(path: Path) -> None:
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


def new_name() -> str:
    """A fresh shard file name: creation time first, so a listing sorts oldest first."""
    return f"{time.time_ns():020d}-{os.getpid()}-{uuid.uuid4().hex[:8]}{SUFFIX}"


def tmp_path(folder: Path, name: str) -> Path:
    """Where ``name`` is written before its rename: hidden, tagged with this host and pid."""
    return folder / f".{name}.{owner_tag()}-{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp"


def remove_stale_tmp(folder: Path) -> None:
    """Remove temp files in ``folder`` whose writer is dead, or that are old.

    A temp file of a live writer (another rank or run) stays.  One whose writer is dead
    (killed, or failed on a full disk) goes now, so it cannot fill the disk for this run;
    pids are only comparable on this host and pid namespace, others wait out the age.
    """
    now, tag = time.time(), owner_tag()
    try:
        listing = list(os.scandir(folder))
    except OSError:
        return  # `FeatureCache.refresh` says why
    for entry in listing:
        if not entry.name.endswith(".tmp"):
            continue
        m = _TMP_RE.search(entry.name)
        try:
            old = now - entry.stat().st_mtime > _STALE_TMP_S
        except OSError:
            continue
        if old or (m is not None and m.group(1) == tag and not _pid_alive(int(m.group(2)))):
            unlink(Path(entry.path))


@functools.cache
def owner_tag() -> str:
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


def unlink(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass


def _is_int(x: object) -> TypeGuard[int]:
    return isinstance(x, int) and not isinstance(x, bool)
