"""Trained aggregators on disk: content keys, atomic saves, verified loads.

A checkpoint is ``<key[:24]>.pt`` (whatever the aggregator's ``save`` writes) plus
``<key[:24]>.json`` (what training reported, and the sha256 of the ``.pt``).  The key
is the sha256 of everything that determines the weights (`content_key`): encoder
fingerprint, extractor, feature dtype, the training pairs, the aggregator's
``config()`` and the seed.  Writes go to unique temporary names in the same folder
and are renamed into place, so concurrent runs never see half a file; a load checks
the recorded sha256 and treats anything unreadable, truncated or altered as missing
(the caller retrains).  Without a writable folder the store keeps nothing and says so.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.data.loaders import file_sha256
from harness.types import Aggregator

__all__ = ["CheckpointStore", "Loaded", "content_key", "default_ckpt_dir", "file_sha256"]

log = logging.getLogger("harness")


def content_key(parts: Any) -> str:
    """sha256 hex of ``parts`` as canonical JSON (sorted keys; unknown objects as ``str``)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def default_ckpt_dir() -> Path:
    """``$HARNESS_CACHE_DIR/aggregators``, else ``~/.cache/ted-harness/aggregators``."""
    root = os.environ.get("HARNESS_CACHE_DIR") or os.path.join(Path.home(), ".cache", "ted-harness")
    return Path(root) / "aggregators"


@dataclass(frozen=True)
class Loaded:
    """A checkpoint found and verified: its file, sha256 and the metadata saved with it."""

    path: Path
    sha256: str
    meta: dict[str, Any]


class CheckpointStore:
    """Aggregator checkpoints in ``root`` (created on demand), keyed by `content_key`."""

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self.root = Path(root) if root is not None else default_ckpt_dir()

    def path(self, key: str) -> Path:
        return self.root / f"{key[:24]}.pt"

    def load(self, key: str, aggregator: Aggregator) -> Loaded | None:
        """Load the checkpoint of ``key`` into ``aggregator``; None if missing, unreadable or altered."""
        pt, meta_path = self.path(key), self.path(key).with_suffix(".json")
        if not pt.exists() or not meta_path.exists():
            return None
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            if not isinstance(meta, dict):
                raise ValueError("metadata is not a JSON object")
            sha = file_sha256(pt)
        except (OSError, ValueError) as exc:
            log.warning("aggregator checkpoint %s is unreadable (%s); retraining", meta_path, exc)
            return None
        recorded = meta.get("checkpoint_sha256")
        if recorded != sha:
            log.warning("aggregator checkpoint %s does not match its recorded sha256 (%s != %s); retraining",
                        pt, sha[:12], str(recorded)[:12])
            return None
        try:
            aggregator.load(str(pt))
        except Exception as exc:  # a file that passed the checksum but does not fit this aggregator
            log.warning("aggregator checkpoint %s cannot be loaded (%s); retraining", pt, exc)
            return None
        return Loaded(path=pt, sha256=sha, meta=meta)

    def save(self, key: str, aggregator: Aggregator, meta: dict[str, Any]) -> Loaded:
        """Save ``aggregator`` and ``meta`` (plus the file's sha256) under ``key``, atomically."""
        self.root.mkdir(parents=True, exist_ok=True)
        pt = self.path(key)
        tmp = _temp_name(pt)
        try:
            aggregator.save(str(tmp))
            sha = file_sha256(tmp)
            os.replace(tmp, pt)
        finally:
            _unlink(tmp)
        meta = {**meta, "checkpoint_sha256": sha}
        meta_path = pt.with_suffix(".json")
        tmp = _temp_name(meta_path)
        try:
            tmp.write_text(json.dumps(meta, allow_nan=False), encoding="utf-8")
            os.replace(tmp, meta_path)
        finally:
            _unlink(tmp)
        return Loaded(path=pt, sha256=sha, meta=meta)


def _temp_name(final: Path) -> Path:
    """A fresh, unique name beside ``final`` (created empty by this process: nothing planted there is followed)."""
    fd, name = tempfile.mkstemp(dir=final.parent, prefix=f".{final.name}.", suffix=".tmp")
    os.close(fd)
    return Path(name)


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass
