"""Score instances with embeddings and turn correctness into records and statistics."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from harness._exceptions import ConfigError
from harness.evaluation.results import Comparison, SampleRecord, ScoreRecord, SeedSummaryRecord
from harness.evaluation.stats import bootstrap_ci, is_correct, paired_bootstrap, summarize_seeds
from harness.types import Instance

__all__ = ["Null", "Row", "compare_rows", "derange_captions", "permutation_null", "sample_records", "score_instances",
           "slice_records", "summarize_over_seeds"]

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


Slice = tuple[str, str]  # (category or "all", caption type or "all")


def _slices(inst: Instance) -> tuple[Slice, ...]:
    """Every slice an instance counts in: overall, its category, its caption type, and both (official)."""
    return (("all", "all"), (inst.category, "all"), ("all", inst.caption_type), (inst.category, inst.caption_type))


@dataclass(frozen=True)
class Null:
    """Accuracy of one slice when every caption is swapped for another (over many derangements)."""

    mean: float
    low: float
    high: float
    n_resamples: int


def derange_captions(instances: Sequence[Instance], *, seed: int) -> list[Instance]:
    """Every instance gets the caption (and caption type) of another caption: a seeded, uniformly drawn
    derangement of the *distinct* captions, so the many statements of one caption move together and
    the draw never stalls (a permutation of instances almost never avoids every same-caption collision)."""
    captions = list(dict.fromkeys((i.caption, i.caption_type) for i in instances))
    if len(captions) < 2:
        raise ConfigError("the shuffled-captions control needs instances of at least 2 distinct captions")
    moved = dict(zip(captions, (captions[j] for j in _derangement(len(captions), np.random.default_rng(seed)))))
    return [replace(i, caption=moved[(i.caption, i.caption_type)][0], caption_type=moved[(i.caption, i.caption_type)][1])
            for i in instances]


def _derangement(n: int, rng: np.random.Generator) -> list[int]:
    """A uniform random permutation of range(n) with no fixed point (rejection: ~e draws expected)."""
    if n < 2:
        raise ValueError(f"no derangement of {n} item(s)")
    while True:
        perm = rng.permutation(n)
        if not bool((perm == np.arange(n)).any()):
            return [int(x) for x in perm]


def permutation_null(instances: Sequence[Instance], vectors: Mapping[str, np.ndarray],
                     fmt: Callable[[Instance], tuple[str, list[str]]], *, n_resamples: int,
                     seed: int) -> dict[Slice, Null]:
    """Accuracy per slice over ``n_resamples`` caption derangements: what an uninformative caption scores.

    Negatives are minimal edits of the positive, so the positive is the most central candidate and
    a wrong caption picks it *less* often than 1/k; this, not 1/k, is the floor of the shuffled control.
    Only embeddings already computed are reused (deranged captions are captions of the same set).
    """
    rng = np.random.default_rng(seed)
    caps = [fmt(i)[0] for i in instances]
    distinct = list(dict.fromkeys(caps))
    if len(distinct) < 2:  # one caption: there is nothing to swap it with
        return {}
    position = {c: k for k, c in enumerate(distinct)}
    cap_idx = np.array([position[c] for c in caps])
    cap_mat = np.stack([vectors[c] for c in distinct])
    k_max = max(len(fmt(i)[1]) for i in instances)
    cand = np.zeros((len(instances), k_max, cap_mat.shape[1]), dtype=cap_mat.dtype)
    valid = np.zeros((len(instances), k_max), dtype=bool)
    for n, inst in enumerate(instances):
        texts = fmt(inst)[1]
        cand[n, : len(texts)] = np.stack([vectors[t] for t in texts])
        valid[n, : len(texts)] = True
    members: dict[Slice, list[int]] = defaultdict(list)
    for n, inst in enumerate(instances):
        for s in _slices(inst):
            members[s].append(n)
    draws: dict[Slice, list[float]] = defaultdict(list)
    for _ in range(n_resamples):
        perm = np.array(_derangement(len(distinct), rng))
        scores = np.einsum("nkd,nd->nk", cand, cap_mat[perm[cap_idx]])
        scores = np.where(valid, scores, -np.inf)
        ok = scores[:, 0] > scores[:, 1:].max(axis=1)
        for s, idx in members.items():
            draws[s].append(float(ok[idx].mean()))
    out = {}
    for s, values in draws.items():
        low, high = np.quantile(values, [0.025, 0.975])
        out[s] = Null(mean=float(np.mean(values)), low=float(low), high=float(high), n_resamples=n_resamples)
    return out


def slice_records(row: Row, task: str, instances: Sequence[Instance], correct: Sequence[bool], *,
                  seed: int, n_boot: int, control: str | None = None,
                  null: Mapping[Slice, Null] | None = None) -> list[ScoreRecord]:
    """Accuracy with a 95% bootstrap CI overall, per category, per caption type and per category x caption
    type, with the chance level (mean 1/k) and, when given, the permutation null of each slice."""
    slices: dict[Slice, list[int]] = defaultdict(list)
    for n, inst in enumerate(instances):
        for s in _slices(inst):
            slices[s].append(n)
    if not slices:
        raise ConfigError(f"task {task!r} has no instances to score")
    records = []
    for (cat, ctype), idx in slices.items():
        oks = [correct[n] for n in idx]
        ci = bootstrap_ci(oks, n_resamples=n_boot, seed=seed) if n_boot > 0 else None
        nl = None if null is None else null.get((cat, ctype))
        records.append(ScoreRecord(
            encoder=row[0], extractor=row[1], aggregator=row[2], task=task, category=cat,
            caption_type=ctype, seed=seed, metric="accuracy", value=float(np.mean(oks)), n=len(oks),
            ci_low=None if ci is None else ci.low, ci_high=None if ci is None else ci.high, control=control,
            chance=float(np.mean([1.0 / len(instances[n].candidates) for n in idx])),
            null_mean=None if nl is None else nl.mean, null_low=None if nl is None else nl.low,
            null_high=None if nl is None else nl.high,
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
            boot = n_boot > 0  # without resamples there is no interval or bootstrap p, only McNemar
            out.append(Comparison(
                task=task, seed=seed, row="/".join(row), reference="/".join(ref), diff=c.diff,
                ci_low=c.low if boot else None, ci_high=c.high if boot else None,
                p_bootstrap=c.p_value if boot else None, p_mcnemar=c.mcnemar_p, n=c.n, only_row=c.only_a,
                only_reference=c.only_b, n_resamples=n_boot,
            ))
    return out
