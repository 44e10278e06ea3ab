"""Where an HF encoder's weights come from: a local folder or a pinned, cached hub id.

Heavy imports (huggingface_hub) happen inside functions only.
"""

from __future__ import annotations

import os
import re
from typing import Any

from harness import EncoderError, EncoderSpec, resolve_path
from harness.api import hub_offline

__all__ = ["Checkpoint", "hf_error", "resolve_checkpoint"]

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


class Checkpoint:
    """Where weights come from: a local folder, or a hub id plus its pinned revision."""

    def __init__(self, path: str, *, revision: str | None, local: bool) -> None:
        self.path, self.revision, self.local = path, revision, local

    def kwargs(self, spec: EncoderSpec) -> dict[str, Any]:
        """Keyword arguments shared by every ``from_pretrained`` call."""
        out: dict[str, Any] = {"trust_remote_code": spec.options.trust_remote_code}
        if not self.local and self.revision:
            out["revision"] = self.revision
        return out


def resolve_checkpoint(spec: EncoderSpec) -> Checkpoint:
    """Resolve ``spec.checkpoint``; refuse missing folders and uncached hub ids when offline."""
    path = resolve_path(spec.checkpoint)
    if os.path.isdir(path):
        return Checkpoint(path, revision=None, local=True)
    looks_local = path.startswith(("/", ".", "~")) or os.path.exists(path) or "$" in path or "\\" in path
    if looks_local or not _HUB_ID.match(path):
        raise EncoderError(
            f"Encoder {spec.name!r}: checkpoint {spec.checkpoint!r} (resolved to {path!r}) is not a folder. "
            "Point it at a saved model folder or a hub id ORG/NAME (is an environment variable unset?)"
        )
    if hub_offline() and not _hub_cached(path, spec.revision):
        raise EncoderError(
            f"Encoder {spec.name!r}: checkpoint {path!r} is a hub id, but HF_HUB_OFFLINE=1 and it is not in "
            f"the local cache. Download it first (hf download {path}"
            f"{' --revision ' + spec.revision if spec.revision else ''}) or set checkpoint to a local folder"
        )
    return Checkpoint(path, revision=spec.revision, local=False)


def _hub_cached(repo: str, revision: str | None) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - transformers always brings it
        return False
    found = try_to_load_from_cache(repo, "config.json", revision=revision)
    return isinstance(found, str)


def hf_error(spec: EncoderSpec, ckpt: Checkpoint, exc: BaseException) -> EncoderError:
    """Turn a transformers load failure (OSError, ValueError) into one clear line."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    where = ckpt.path if ckpt.local else f"{ckpt.path}@{ckpt.revision or 'latest'}"
    return EncoderError(f"Encoder {spec.name!r} ({spec.family}): cannot load {where!r}: {first}")
