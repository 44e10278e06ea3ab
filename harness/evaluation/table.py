"""Results as one table: every ``results.json`` score with its run's provenance, one row each.

`load_results` (exported as ``harness.load_results``) reads results folders into a
``pandas.DataFrame`` -- one row per encoder x extractor x aggregator x task x slice x seed (a
`ScoreRecord`), with its interval, permutation null and chance, and the provenance that makes the
number what it is (checkpoint and revision, encoder options, task data hash, training pairs,
aggregator config, harness version).  `find_results` and `result_rows` do the same without pandas
(plain dicts in `COLUMNS` order); ``harness results DIR... --csv OUT`` prints and writes them.

pandas is an optional extra (``pip install 'ted-harness[results]'``) and is imported only when
`load_results` is called, never at ``import harness``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness._exceptions import ConfigError
from harness.evaluation.results import RunResult, TrainingRecord, read_results

if TYPE_CHECKING:
    import pandas

__all__ = ["COLUMNS", "find_results", "load_results", "result_rows", "slice_label"]

# (name, kind, meaning): the table's columns in their stable order.  kind: str | int | float | datetime
# (int columns are pandas' nullable Int64, str columns may hold None where a run did not record it).
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("run", "str", "the folder holding the results.json"),
    ("encoder", "str", "encoder name"),
    ("extractor", "str", "feature extractor (layer read)"),
    ("aggregator", "str", "aggregator"),
    ("task", "str", "--tasks entry"),
    ("slice", "str", "all, a category, a caption type, or CATEGORY/CAPTION_TYPE"),
    ("category", "str", "statement category, or all"),
    ("caption_type", "str", "image, video, or all"),
    ("control", "str", "control run (e.g. shuffled captions), None for the real evaluation"),
    ("seed", "int", "seed of the aggregator / resampling"),
    ("metric", "str", "what value measures (accuracy)"),
    ("value", "float", "the score as a fraction in [0, 1], exactly as in results.json (x100 for percent)"),
    ("n", "int", "instances in the slice"),
    ("correct", "int", "instances answered right (value x n) for accuracy"),
    ("ci_low", "float", "95% bootstrap interval of value, low (None without --bootstrap)"),
    ("ci_high", "float", "95% bootstrap interval of value, high"),
    ("null_mean", "float", "permutation null: accuracy with captions deranged, mean (fraction)"),
    ("null_low", "float", "permutation null, 95% interval low"),
    ("null_high", "float", "permutation null, 95% interval high"),
    ("chance", "float", "mean over the slice's instances of 1 / number of candidates"),
    ("encoder_family", "str", "plugin family that loaded the encoder"),
    ("encoder_checkpoint", "str", "checkpoint (hub id, path or pkg: path)"),
    ("encoder_revision", "str", "pinned or loaded revision"),
    ("encoder_dtype", "str", "dtype the encoder ran in"),
    ("encoder_max_length", "int", "evaluation texts cut at this many tokens"),
    ("encoder_template", "str", "caption template applied"),
    ("feature_dtype", "str", "dtype the features were kept in"),
    ("extractor_layers", "str", "hidden-state indices the extractor read, comma-separated"),
    ("task_n", "int", "instances evaluated in the task (all categories)"),
    ("task_source", "str", "task data file(s); several distinct ones joined with ';'"),
    ("task_revision", "str", "task data revision"),
    ("task_version", "str", "task version, where the task file declares one"),
    ("task_sha256", "str", "sha256 of the task data file(s)"),
    ("train_pairs_source", "str", "caption pairs the aggregator was trained on (None: untrained)"),
    ("train_pairs_sha256", "str", "sha256 of those pairs"),
    ("train_pairs_n", "int", "pairs used in training"),
    ("aggregator_key", "str", "hash of the aggregator's training config and inputs (its checkpoint key)"),
    ("aggregator_checkpoint_sha256", "str", "sha256 of the saved aggregator checkpoint"),
    ("aggregator_config", "str", "the aggregator's training config, JSON with sorted keys"),
    ("limit", "int", "--limit: instances per category (None: all)"),
    ("bootstrap", "int", "--bootstrap resamples behind ci_low/ci_high"),
    ("null_resamples", "int", "--null-resamples behind null_*"),
    ("harness_version", "str", "ted-harness version"),
    ("harness_git", "str", "harness commit ('-dirty' with local changes)"),
    ("started", "datetime", "when the run started (UTC)"),
    ("encoder_options", "str", "every encoder option as loaded, JSON with sorted keys"),
)
COLUMN_NAMES = tuple(name for name, _, _ in COLUMNS)


def slice_label(category: str, caption_type: str) -> str:
    """``all``, the category, the caption type, or ``CATEGORY/CAPTION_TYPE``."""
    if caption_type == "all":
        return category
    return caption_type if category == "all" else f"{category}/{caption_type}"


def find_results(paths: str | Path | Iterable[str | Path]) -> list[Path]:
    """The ``results.json`` files behind ``paths``: each a results.json file, or a folder searched
    recursively (hidden folders skipped).  A path that does not exist, or a folder holding none, is a
    `ConfigError` naming it; the same file reached twice is listed once."""
    items = [paths] if isinstance(paths, (str, Path)) else list(paths)
    if not items:
        raise ConfigError("no results given: pass results.json files or folders holding them")
    found: list[Path] = []
    seen: set[Path] = set()
    for item in items:
        path = Path(item)
        if not str(item).strip():
            raise ConfigError("a results path is empty; give a results.json file or a folder holding one")
        if path.is_file():
            files = [path]
        elif path.is_dir():
            files = sorted(p for p in path.rglob("results.json")
                           if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts))
            if not files:
                raise ConfigError(f"{str(path)!r} holds no results.json (harness run --output DIR writes one)")
        else:
            raise ConfigError(f"results path {str(path)!r} does not exist; give a results.json file or a folder "
                              "holding one")
        for f in files:
            key = f.resolve()
            if key not in seen:
                seen.add(key)
                found.append(f)
    return found


def _joined(values: Iterable[str | None]) -> str | None:
    distinct = sorted({v for v in values if v is not None})
    return ";".join(distinct) if distinct else None


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True, default=str)


def result_rows(result: RunResult, run: str) -> list[dict[str, Any]]:
    """One dict per score of ``result`` (keys: `COLUMN_NAMES`, in order), ``run`` as its run column."""
    prov = result.provenance
    opts = prov.options
    training: dict[tuple[str, str, str, int], TrainingRecord] = {
        (t.encoder, t.extractor, t.aggregator, t.seed): t for t in result.training}
    rows: list[dict[str, Any]] = []
    for s in result.scores:
        enc = prov.encoders.get(s.encoder)
        eopts = enc.options if enc else {}
        ext = enc.extractors.get(s.extractor, {}) if enc else {}
        layers = ext.get("resolved_layers") or ext.get("layers")
        taskset = prov.tasks.get(s.task)
        files = list(taskset.tasks.values()) if taskset else []
        trained = training.get((s.encoder, s.extractor, s.aggregator, s.seed))
        product = s.value * s.n
        correct = round(product) if s.metric == "accuracy" and math.isclose(product, round(product), abs_tol=1e-6) \
            else None
        row = {
            "run": run, "encoder": s.encoder, "extractor": s.extractor, "aggregator": s.aggregator, "task": s.task,
            "slice": slice_label(s.category, s.caption_type), "category": s.category, "caption_type": s.caption_type,
            "control": s.control, "seed": s.seed, "metric": s.metric, "value": s.value, "n": s.n, "correct": correct,
            "ci_low": s.ci_low, "ci_high": s.ci_high, "null_mean": s.null_mean, "null_low": s.null_low,
            "null_high": s.null_high, "chance": s.chance,
            "encoder_family": enc.family if enc else None,
            "encoder_checkpoint": enc.checkpoint if enc else None,
            "encoder_revision": (enc.revision or eopts.get("loaded_revision")) if enc else None,
            "encoder_dtype": (eopts.get("torch_dtype") or eopts.get("dtype")) if enc else None,
            "encoder_max_length": (enc.max_length or eopts.get("max_length_effective") or eopts.get("max_length"))
            if enc else None,
            "encoder_template": (enc.template or eopts.get("template")) if enc else None,
            "feature_dtype": enc.feature_dtype if enc else None,
            "extractor_layers": ",".join(map(str, layers)) if isinstance(layers, list) else None,
            "task_n": taskset.n if taskset else None,
            "task_source": _joined(t.source for t in files),
            "task_revision": _joined(t.revision for t in files),
            "task_version": _joined(None if getattr(t, "version", None) is None else str(getattr(t, "version"))
                                    for t in files),
            "task_sha256": _joined(t.sha256 for t in files),
            "train_pairs_source": trained.pairs.source if trained else None,
            "train_pairs_sha256": trained.pairs.sha256 if trained else None,
            "train_pairs_n": trained.pairs.n if trained else None,
            "aggregator_key": trained.key if trained else None,
            "aggregator_checkpoint_sha256": trained.checkpoint_sha256 if trained else None,
            "aggregator_config": _json(trained.config) if trained else None,
            "limit": opts.get("limit"), "bootstrap": opts.get("bootstrap"), "null_resamples": opts.get("null_resamples"),
            "harness_version": prov.versions.get("ted-harness"),
            "harness_git": prov.harness_git,
            "started": prov.started or None,
            "encoder_options": _json(eopts) if enc else None,
        }
        rows.append(row)
    return rows


def read_rows(paths: str | Path | Iterable[str | Path]) -> list[dict[str, Any]]:
    """`result_rows` of every results.json behind ``paths`` (`find_results`), read with `read_results`
    (a damaged file is a one-line `DataError` naming it)."""
    rows: list[dict[str, Any]] = []
    for res in find_results(paths):
        rows += result_rows(read_results(res), str(res.parent))
    return rows


def require_pandas(what: str = "harness.load_results") -> Any:
    """The pandas module, or a one-line `ConfigError` saying how to install it."""
    try:
        import pandas
    except ImportError:
        raise ConfigError(f"{what} needs pandas: pip install 'ted-harness[results]'") from None
    return pandas


def rows_frame(rows: Sequence[dict[str, Any]]) -> pandas.DataFrame:
    """``rows`` as a DataFrame: `COLUMNS` order and dtypes (Int64, float64, datetime64 UTC, strings)."""
    pd = require_pandas()
    frame = pd.DataFrame.from_records(list(rows), columns=list(COLUMN_NAMES))
    for name, kind, _ in COLUMNS:
        if kind == "int":
            frame[name] = frame[name].astype("Int64")
        elif kind == "float":
            frame[name] = frame[name].astype("float64")
        elif kind == "datetime":
            frame[name] = pd.to_datetime(frame[name], utc=True, errors="coerce", format="ISO8601")
        else:
            frame[name] = frame[name].astype(object).where(frame[name].notna(), None)
    return frame


def load_results(paths: str | Path | Iterable[str | Path]) -> pandas.DataFrame:
    """Every score of the results behind ``paths`` as one ``pandas.DataFrame``.

    ``paths``: a results.json file or a folder (searched recursively for results.json files, as
    ``harness run --output`` writes them), or a list of those.  One row per encoder x extractor x
    aggregator x task x slice (category x caption type, and control) x seed -- each `ScoreRecord` of
    each file -- with the columns of `COLUMNS` in that order: ``value`` is the fraction in [0, 1] as
    in results.json, with ``ci_low``/``ci_high``, ``null_mean``/``null_low``/``null_high``, ``chance``,
    ``n`` and ``correct``; then provenance (encoder checkpoint, revision and options, task data hash,
    training pairs, aggregator key and config, harness version and commit, start time).

    A path that does not exist, a folder without results.json or a damaged file raises a one-line
    `harness.HarnessError` naming it; without pandas installed, a `ConfigError` saying how to install it.
    """
    require_pandas()
    return rows_frame(read_rows(paths))
