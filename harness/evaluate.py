"""Score instances with embeddings and turn correctness into records and statistics."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from harness.results import Comparison, SampleRecord, ScoreRecord, SeedSummaryRecord
from harness.stats import bootstrap_ci, is_correct, paired_bootstrap, summarize_seeds
from harness.types import Instance

__all__ = ["Row", "compare_rows", "sample_records", "score_instances", "slice_records", "summarize_over_seeds"]

Row = tuple[str, str, str]  # (encoder, extractor, aggregator)


def score_instances(instances: Sequence[Instance], vectors: Mapping[str, np.ndarray],
                    fmt: Callable[[Instance], tuple[str, list[str]]]) -> list[tuple[list[float], bool]]:
    """Cosine of each caption with its candidates (positive first) and correctness (strict max)."""
    out = []
    for inst in instances:
        cap, cands = fmt(inst)
        c = vectors[cap]
        scores = [float(np.dot(c, vectors[t])) for t in cands]
        out.append((scores, is_correct(scores)))
    return out


def slice_records(row: Row, task: str, instances: Sequence[Instance], correct: Sequence[bool], *,
                  seed: int, n_boot: int, control: str | None = None) -> list[ScoreRecord]:
    """Accuracy with a 95% bootstrap CI overall, per category and per caption type."""
    slices: dict[tuple[str, str], list[bool]] = defaultdict(list)
    for inst, ok in zip(instances, correct):
        slices[("all", "all")].append(ok)
        slices[(inst.category, "all")].append(ok)
        slices[("all", inst.caption_type)].append(ok)
    records = []
    for (cat, ctype), oks in slices.items():
        ci = bootstrap_ci(oks, n_resamples=n_boot, seed=seed) if n_boot > 0 else None
        records.append(ScoreRecord(
            encoder=row[0], extractor=row[1], aggregator=row[2], task=task, category=cat,
            caption_type=ctype, seed=seed, metric="accuracy", value=float(np.mean(oks)), n=len(oks),
            ci_low=None if ci is None else ci.low, ci_high=None if ci is None else ci.high, control=control,
        ))
    return records


def sample_records(row: Row, task: str, instances: Sequence[Instance],
                   scored: Sequence[tuple[list[float], bool]], *, seed: int) -> list[SampleRecord]:
    """One `SampleRecord` per instance (for samples.jsonl)."""
    return [SampleRecord(encoder=row[0], extractor=row[1], aggregator=row[2], task=task, seed=seed, id=inst.id,
                         category=inst.category, caption_type=inst.caption_type, scores=scores, correct=ok,
                         n_candidates=len(scores))
            for inst, (scores, ok) in zip(instances, scored)]


def summarize_over_seeds(records: Sequence[ScoreRecord]) -> list[SeedSummaryRecord]:
    """Mean, std and range across seeds for every (row, task, slice)."""
    cells: dict[tuple[Any, ...], list[float]] = defaultdict(list)
    for r in records:
        cells[(r.encoder, r.extractor, r.aggregator, r.task, r.category, r.caption_type, r.control)].append(r.value)
    out = []
    for key, values in cells.items():
        s = summarize_seeds(values)
        out.append(SeedSummaryRecord(
            encoder=key[0], extractor=key[1], aggregator=key[2], task=key[3], category=key[4],
            caption_type=key[5], control=key[6], metric="accuracy", n_seeds=s.n,
            mean=s.mean, std=s.std, min=s.min, max=s.max, range=s.range,
        ))
    return out


def compare_rows(correct: Mapping[tuple[Row, str, int], Sequence[bool]], *, n_boot: int) -> list[Comparison]:
    """Paired bootstrap + exact McNemar of every row against the first row, per task and seed."""
    out: list[Comparison] = []
    by_task: dict[tuple[str, int], list[Row]] = defaultdict(list)
    for row, task, seed in correct:
        by_task[(task, seed)].append(row)
    for (task, seed), rows in by_task.items():
        ref = rows[0]
        for row in rows[1:]:
            a, b = correct[(row, task, seed)], correct[(ref, task, seed)]
            if len(a) != len(b):
                continue
            c = paired_bootstrap(a, b, n_resamples=max(n_boot, 1), seed=seed)
            out.append(Comparison(
                task=task, seed=seed, row="/".join(row), reference="/".join(ref),
                diff=c.diff, ci_low=c.low, ci_high=c.high, p_bootstrap=c.p_value,
                p_mcnemar=c.mcnemar_p, n=c.n, only_row=c.only_a, only_reference=c.only_b,
            ))
    return out
