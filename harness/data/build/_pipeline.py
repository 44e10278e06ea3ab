"""Ask an LLM for one positive and three negative statements per (caption, category), checking each answer.

Every request is deterministic (prompt, previous bad answer, reminder, seed = attempt number), so
the response cache answers a rerun with no new request; finished items are also appended to
``items.jsonl`` as they finish and are not asked again at all.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness.data.build._validate import check_negatives, check_positive
from harness.data.category_defs import CategoryDef
from harness.llm.backend import (
    ChatRequest,
    ChatResult,
    LLMBackend,
    UsageSummary,
    fill_prompt,
    load_prompt,
    summarize_usage,
)

__all__ = ["ITEMS_FILE", "BuildOptions", "BuildReport", "CaptionItem", "ItemRecord", "ProgressFactory",
           "build_statements", "read_records"]

ITEMS_FILE = "items.jsonl"
ProgressFactory = Callable[[str, int], Any]  # (description, total) -> a bar with .advance(n)
DEFAULT_POSITIVE_PROMPT = "positive"  # shipped prompt names (harness.llm.backend.load_prompt), or a path
DEFAULT_NEGATIVES_PROMPT = "negatives"
FINAL = ("ok", "null", "rejected")  # statuses a rerun does not ask again ("error": the backend failed)


@dataclass(frozen=True)
class CaptionItem:
    id: str
    caption: str
    caption_type: str = "image"


@dataclass(frozen=True)
class BuildOptions:
    """``max_reasks``: re-asks (with a reminder naming the problem) after an invalid answer, per stage."""

    model: str | None = None
    temperature: float = 0.0
    max_tokens: int | None = 512
    max_reasks: int = 2
    max_length_change: float = 0.4
    min_overlap: float = 0.3
    positive_prompt: str = DEFAULT_POSITIVE_PROMPT
    negatives_prompt: str = DEFAULT_NEGATIVES_PROMPT


@dataclass
class ItemRecord:
    """One (caption, category).  ``status``: ok | null (no statement of this kind) | rejected | error."""

    id: str
    caption_id: str
    category: str
    caption: str
    caption_type: str
    status: str = "pending"
    positive: str | None = None
    negatives: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    reasks: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class BuildReport:
    """Counts of one run (items finished by an earlier run count as ``resumed``)."""

    captions: int = 0
    skipped: list[dict[str, str]] = field(default_factory=list)
    asked: int = 0
    resumed: int = 0
    answered: int = 0
    null: int = 0
    rejected: int = 0
    retried: int = 0
    failed: int = 0
    problems: list[dict[str, Any]] = field(default_factory=list)
    usage: UsageSummary | None = None

    def as_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k != "usage"}
        out["usage"] = self.usage.as_dict() if self.usage else None
        return out


def read_records(path: Path) -> dict[str, ItemRecord]:
    """Finished items from ``items.jsonl`` (the last line of an id wins; a torn line is skipped)."""
    out: dict[str, ItemRecord] = {}
    if not path.exists():
        return out
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rec = ItemRecord(**json.loads(line))
        except (ValueError, TypeError):
            continue
        out[rec.id] = rec
    return out


def _append(path: Path, records: Sequence[ItemRecord]) -> None:
    if not records:
        return
    with open(path, "a", encoding="utf-8") as fh:
        fh.writelines(json.dumps(r.to_dict(), ensure_ascii=False) + "\n" for r in records)
        fh.flush()
        os.fsync(fh.fileno())


def _examples(cat: CategoryDef, *, with_negatives: bool) -> str:
    lines = []
    for ex in cat.examples:
        lines.append(f"- Caption: {ex.caption}\n  True statement: {ex.positive}")
        if with_negatives:
            lines.extend(f"  False statement: {n}" for n in ex.negatives)
    return "\n".join(lines) or "(none)"


@dataclass
class _Ask:
    record: ItemRecord
    prompt: str
    history: list[dict[str, str]] = field(default_factory=list)  # earlier bad answers and reminders
    attempt: int = 0  # the request's seed: a re-ask is a new request, a rerun the same one


def _request(ask: _Ask, options: BuildOptions) -> ChatRequest:
    return ChatRequest(messages=[{"role": "user", "content": ask.prompt}, *ask.history], model=options.model,
                       max_tokens=options.max_tokens, temperature=options.temperature, json=True,
                       seed=ask.attempt)


def _ticker(bar: Any) -> Callable[[int, ChatResult], None]:
    def arrived(i: int, result: ChatResult) -> None:
        if bar is not None:
            bar.advance(1)
    return arrived


def _stage(backend: LLMBackend, asks: list[_Ask], check: Callable[[ItemRecord, ChatResult], str | None], *,
           options: BuildOptions, bar: Any, results: list[ChatResult]) -> None:
    """Ask every item, re-asking invalid answers up to ``max_reasks`` times; ``check`` fills the record."""
    first_round = True
    while asks:
        # The bar counts items, so only first answers move it; a raise from it stops the batch (a crash midway).
        answers = backend.complete([_request(a, options) for a in asks], progress=_ticker(bar if first_round else None))
        first_round = False
        results.extend(answers)
        again: list[_Ask] = []
        for ask, result in zip(asks, answers):
            rec = ask.record
            if not result.ok:
                rec.status = "error"
                rec.problems.append(f"backend: {result.error}")
                continue
            problem = check(rec, result)
            if problem is None:
                continue
            rec.problems.append(problem)
            if ask.attempt >= options.max_reasks:
                rec.status = "rejected"
                continue
            ask.attempt += 1
            rec.reasks += 1
            ask.history += [{"role": "assistant", "content": result.text},
                            {"role": "user", "content": f"Your answer is not valid: {problem}. Answer again, "
                                                        "with only the JSON object the task asks for."}]
            again.append(ask)
        asks = again


def build_statements(backend: LLMBackend, captions: Sequence[CaptionItem], categories: Sequence[CategoryDef], *,
                     out_dir: str | Path, options: BuildOptions, report: BuildReport | None = None,
                     progress: ProgressFactory | None = None) -> tuple[list[ItemRecord], BuildReport]:
    """Positives then negatives for every (caption, category); returns every record, in input order.

    Finished items are appended to ``out_dir/items.jsonl`` as each stage ends; items already there
    (from a killed or earlier run) are taken from it and not asked again.  Never raises for a bad
    answer: it is re-asked, then reported in the record and in ``report.problems``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    items_path = out / ITEMS_FILE
    done = read_records(items_path)
    report = report or BuildReport()
    report.captions = len(captions)
    pos_template, neg_template = load_prompt(options.positive_prompt), load_prompt(options.negatives_prompt)
    records: list[ItemRecord] = []
    todo: list[ItemRecord] = []
    for cap in captions:
        for cat in categories:
            rid = f"{cap.id}/{cat.slug}"
            prior = done.get(rid)
            if prior is not None and prior.status in FINAL and prior.caption == cap.caption:
                records.append(prior)
                report.resumed += 1
                continue
            rec = ItemRecord(id=rid, caption_id=cap.id, category=cat.slug, caption=cap.caption,
                             caption_type=cap.caption_type)
            records.append(rec)
            todo.append(rec)
    report.asked = len(records)
    by_slug = {c.slug: c for c in categories}
    results: list[ChatResult] = []

    def fields(rec: ItemRecord) -> dict[str, str]:
        cat = by_slug[rec.category]
        return {"caption": rec.caption, "caption_type": rec.caption_type, "category_name": cat.name,
                "definition": cat.definition}

    def check_pos(rec: ItemRecord, result: ChatResult) -> str | None:
        statement, problem = check_positive(result.parsed_json())
        if problem is None:
            rec.positive, rec.status = statement, "null" if statement is None else "positive"
        return problem

    def check_neg(rec: ItemRecord, result: ChatResult) -> str | None:
        negs, problem = check_negatives(result.parsed_json(), rec.positive or "",
                                        max_length_change=options.max_length_change, min_overlap=options.min_overlap)
        if problem is None:
            rec.negatives, rec.status = negs, "ok"
        return problem

    bar = progress("positive statements", len(todo)) if progress and todo else None
    asks = [_Ask(r, fill_prompt(pos_template, **fields(r), examples=_examples(by_slug[r.category], with_negatives=False)))
            for r in todo]
    _stage(backend, asks, check_pos, options=options, bar=bar, results=results)
    _append(items_path, [r for r in todo if r.status in ("null", "rejected", "error")])
    with_pos = [r for r in todo if r.status == "positive"]
    bar = progress("negative statements", len(with_pos)) if progress and with_pos else None
    asks = [_Ask(r, fill_prompt(neg_template, **fields(r), positive=r.positive or "",
                         examples=_examples(by_slug[r.category], with_negatives=True))) for r in with_pos]
    _stage(backend, asks, check_neg, options=options, bar=bar, results=results)
    _append(items_path, with_pos)
    report.usage = summarize_usage(results)
    _count(report, records)
    return records, report


def _count(report: BuildReport, records: Sequence[ItemRecord]) -> None:
    report.answered = sum(r.status == "ok" for r in records)
    report.null = sum(r.status == "null" for r in records)
    report.rejected = sum(r.status == "rejected" for r in records)
    report.failed = sum(r.status == "error" for r in records)
    report.retried = sum(r.reasks > 0 for r in records)
    report.problems = [{"id": r.id, "status": r.status, "problems": r.problems} for r in records if r.problems]
