"""The QA baseline (paper Table 7) and the paper's §4.4 QA shuffle control: the engine, called by
`harness_plugins.baselines.qa_baseline` (``harness run --aggregator qa|qa-choice``) or directly.

An LLM (the *rewriter*, paid once per dataset) turns each instance's statements into one question
with options (positive first in the saved file).  The encoder under test, when its family can
generate, reads the caption and answers:

- ``open``: a free answer; an LLM *judge* (the ``judge`` prompt, fed the answer where it says
  caption) picks the option the answer states.  Correct = the positive.
- ``choice``: the options as A, B, C, ... in a seeded order (recorded); the letter decides.

Bad output (empty, not JSON, missing fields, a letter with no option) is asked again with a
stricter reminder and another seed, at most ``retries`` times; then the instance is *unanswerable*:
counted wrong, and counted separately in ``provenance.options["qa"]``.  Nothing raises on bad output.
An encoder that cannot generate (``answerer_for`` gives None) has no scores: it is listed under
``not_applicable`` (n/a, never 0).

``shuffle_control`` (choice mode) asks the same questions with captions deranged across instances
(`derange_captions`, one derangement per seed); those records carry ``control="qa-shuffled-captions"``
-- not the similarity control ``--control shuffled-captions``.
"""

from __future__ import annotations

import functools
import json
import os
import random
import re
import string
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from harness import ConfigError
from harness.api import Row, compare_rows, derange_captions, slice_records, summarize_over_seeds
from harness.api import ProgressFactory
from harness.api import ChatRequest, ChatResult, LLMBackend, fill_prompt, load_prompt, summarize_usage
from harness.api import Provenance, RunResult, SampleRecord, collect_versions, git_hash, jsonable
from harness.api import TaskSet
from harness.api import EncoderSpec, Instance

__all__ = ["JUDGE_PROMPT", "MODES", "QA_AGGREGATORS", "QA_CONTROL", "REWRITE_PROMPT", "Question", "control_summary",
           "load_questions", "run_qa", "split_control", "write_questions"]

MODES = ("open", "choice")
QA_AGGREGATORS = {"qa": "open", "qa-choice": "choice"}  # --aggregator name -> mode
QA_CONTROL = "qa-shuffled-captions"
MIN_CONTROL_SEEDS = 5
REWRITE_PROMPT = "qa-rewrite"  # shipped prompt names (harness.llm.backend.load_prompt), or a path
JUDGE_PROMPT = "judge"
LETTERS = string.ascii_uppercase
_ANSWER_OPEN = ("CAPTION: $caption\n\nQUESTION: $question\n\nAnswer in one short sentence, using only what the "
                "caption says.")
_ANSWER_CHOICE = ("CAPTION: $caption\n\nQUESTION: $question\nOPTIONS:\n$options\n\nUsing only what the caption "
                  "says, reply with the letter of the right option and nothing else.")
_REMINDER = {"rewrite": "Reply with only the JSON object, with a non-empty \"question\".",
             "open": "Reply with one short, non-empty sentence.",
             "choice": "Reply with exactly one letter: $letters.",
             "judge": "Reply with only the JSON object: {\"answer\": <option number or null>, \"reason\": \"...\"}."}
_LETTER = re.compile(r"\s*(?i:answer\s*:?\s*)?[(\[]?([A-Z])[)\].:]?(?:\s|$)")


@dataclass(frozen=True)
class Question:
    """One instance as a question; ``options[answer]`` is the positive (``answer`` is 0 unless edited)."""

    id: str
    question: str
    options: tuple[str, ...]
    answer: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "question": self.question, "options": list(self.options), "answer": self.answer}


def load_questions(path: Path, instances: Sequence[Instance] = ()) -> dict[str, Question]:
    """The saved questions by id.  Options default to the instance's statements; a count that does not
    match the instance's candidates is an error naming the line (the file is for people to edit)."""
    if not path.is_file():
        return {}
    k_of = {i.id: len(i.candidates) for i in instances}
    by_id = {i.id: i for i in instances}
    out: dict[str, Question] = {}
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{where}: not valid JSON ({exc.msg}); fix the line or delete it to ask again") from None
        if not isinstance(rec, dict) or not isinstance(rec.get("id"), str) or not str(rec.get("question", "")).strip():
            raise ConfigError(f"{where}: needs {{\"id\": str, \"question\": non-empty str}}, got {line[:80]!r}")
        inst = by_id.get(rec["id"])
        options = rec.get("options") or (list(inst.candidates) if inst else [])
        answer = rec.get("answer", 0)
        k = k_of.get(rec["id"], len(options))
        if not isinstance(options, list) or len(options) != k or not isinstance(answer, int) \
                or not 0 <= answer < k:
            raise ConfigError(f"{where}: id {rec['id']!r} needs {k} options and an answer index in 0..{k - 1}, got "
                              f"options={options!r} answer={answer!r}")
        out[rec["id"]] = Question(rec["id"], str(rec["question"]).strip(), tuple(map(str, options)), answer)
    return out


def write_questions(path: Path, questions: Sequence[Question]) -> None:
    """Write the questions file (one JSON object per line), replacing it atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("".join(json.dumps(q.as_dict(), ensure_ascii=False) + "\n" for q in questions), encoding="utf-8")
    os.replace(tmp, path)


Parse = Callable[[ChatResult, int], Any]  # (result, index into the batch) -> parsed value, or None when bad


def _ask(backend: LLMBackend, prompts: Sequence[str], parse: Parse, *, reminder: str, retries: int, seed: int,
         max_tokens: int, json_mode: bool, log: list[ChatResult],
         progress: ProgressFactory | None, desc: str) -> list[Any]:
    """Every prompt answered and parsed; bad ones asked again (reminder, new seed) up to ``retries`` times.
    Returns the parsed values, None where every attempt was bad."""
    out: list[Any] = [None] * len(prompts)
    todo = list(range(len(prompts)))
    bar = progress(desc, len(prompts)) if progress else None
    for attempt in range(retries + 1):
        if not todo:
            break
        extra = [] if attempt == 0 else [{"role": "user", "content": reminder}]
        reqs = [ChatRequest(messages=[{"role": "user", "content": prompts[i]}, *extra], max_tokens=max_tokens,
                            json=json_mode, seed=seed + attempt) for i in todo]
        results = backend.complete(reqs)
        log.extend(results)
        left = []
        for i, res in zip(todo, results):
            value = parse(res, i) if res.ok else None
            if value is None:
                left.append(i)
            else:
                out[i] = value
        if bar is not None:
            bar.advance(len(todo) - len(left))
        todo = left
    if bar is not None and todo:
        bar.advance(len(todo))
    return out


def _rewrite(rewriter: LLMBackend, template: str, instances: Sequence[Instance], *, retries: int,
             log: list[ChatResult], progress: ProgressFactory | None) -> dict[str, Question]:
    def parse(res: ChatResult, i: int) -> Question | None:
        data, inst = res.parsed_json(), instances[i]
        if not isinstance(data, dict) or not isinstance(data.get("question"), str) or not data["question"].strip():
            return None
        opts, ans, k = data.get("options"), data.get("answer", 0), len(inst.candidates)
        if not (isinstance(opts, list) and len(opts) == k and all(isinstance(o, str) and o.strip() for o in opts)
                and isinstance(ans, int) and 0 <= ans < k):
            opts, ans = list(inst.candidates), 0  # the statements themselves: always well-formed
        return Question(inst.id, data["question"].strip(), tuple(opts), ans)

    prompts = [fill_prompt(template, positive=i.positive, negatives="\n".join(f"- {n}" for n in i.negatives))
               for i in instances]
    got = _ask(rewriter, prompts, parse, reminder=_REMINDER["rewrite"], retries=retries, seed=0, max_tokens=512,
               json_mode=True, log=log, progress=progress, desc="qa: writing questions")
    return {q.id: q for q in got if q is not None}


def _order(question: Question, seed: int) -> list[int]:
    """The options' presentation order for one seed (indices into ``question.options``)."""
    order = list(range(len(question.options)))
    random.Random(f"{seed}:{question.id}").shuffle(order)
    return order


@dataclass
class _Cell:
    """What one (encoder, task, seed, control) produced, per instance."""

    chosen: list[int | None]  # option index (into Question.options) or None
    raw: list[str]
    unanswerable: int


def _answer_cell(answerer: LLMBackend, judge: LLMBackend | None, judge_template: str, mode: str,
                 instances: Sequence[Instance], questions: Sequence[Question], *, seed: int, retries: int,
                 logs: dict[str, list[ChatResult]], progress: ProgressFactory | None, desc: str) -> _Cell:
    orders = [_order(q, seed) for q in questions]
    listed = ["\n".join(f"{LETTERS[n]}. {q.options[j]}" for n, j in enumerate(o)) for q, o in zip(questions, orders)]
    if mode == "choice":
        def pick(res: ChatResult, i: int) -> int | None:
            m = _LETTER.match(res.text)
            pos = LETTERS.index(m.group(1)) if m else len(orders[i])
            return orders[i][pos] if pos < len(orders[i]) else None

        prompts = [fill_prompt(_ANSWER_CHOICE, caption=i.caption, question=q.question, options=o)
                   for i, q, o in zip(instances, questions, listed)]
        letters = ", ".join(LETTERS[: max(len(q.options) for q in questions)])
        chosen = _ask(answerer, prompts, pick, reminder=fill_prompt(_REMINDER["choice"], letters=letters), retries=retries,
                      seed=seed, max_tokens=8, json_mode=False, log=logs["answer"], progress=progress, desc=desc)
        raw = [""] * len(chosen)
        return _Cell(chosen, raw, sum(c is None for c in chosen))
    prompts = [fill_prompt(_ANSWER_OPEN, caption=i.caption, question=q.question) for i, q in zip(instances, questions)]
    answers = _ask(answerer, prompts, lambda r, i: r.text.strip() or None, reminder=_REMINDER["open"],
                   retries=retries, seed=seed, max_tokens=64, json_mode=False, log=logs["answer"], progress=progress,
                   desc=desc)
    if judge is None:
        raise ConfigError("--qa-mode open needs a judge: give --qa-judge MODEL (or use --qa-mode choice)")
    asked = [n for n, a in enumerate(answers) if a is not None]

    def judged(res: ChatResult, n: int) -> tuple[int | None] | None:
        data, order = res.parsed_json(), orders[asked[n]]
        if not isinstance(data, dict) or "answer" not in data:
            return None
        a = data["answer"]
        if a is None:
            return (None,)  # the judge says the answer decides nothing: wrong, not unanswerable
        if isinstance(a, bool) or not isinstance(a, int) or not 0 <= a < len(order):
            return None
        return (order[a],)

    jprompts = [fill_prompt(judge_template, caption=answers[n], question=questions[n].question,
                      options="\n".join(f"{k}. {questions[n].options[j]}" for k, j in enumerate(orders[n])))
                for n in asked]
    verdicts = _ask(judge, jprompts, judged, reminder=_REMINDER["judge"], retries=retries, seed=seed, max_tokens=128,
                    json_mode=True, log=logs["judge"], progress=progress, desc=desc + " (judge)")
    chosen_open: list[int | None] = [None] * len(instances)
    bad = len(instances) - len(asked)
    for n, v in zip(asked, verdicts):
        bad += v is None
        chosen_open[n] = None if v is None else v[0]
    return _Cell(chosen_open, [a or "" for a in answers], bad)


def _questions(rewriter: LLMBackend | None, template: str, instances: Sequence[Instance], path: Path, *, retries: int,
               log: list[ChatResult], progress: ProgressFactory | None) -> dict[str, Question]:
    """The saved questions (an edited file wins), with only the missing ids asked and appended."""
    saved = load_questions(path, instances)
    missing = list({i.id: i for i in instances if i.id not in saved}.values())
    if not missing:
        return saved
    if rewriter is None:
        raise ConfigError(f"{len(missing)} instance(s) have no question in {str(path)!r} (e.g. {missing[0].id!r}): "
                          "give --qa-rewriter MODEL to write them, or add them to the file")
    saved.update(_rewrite(rewriter, template, missing, retries=retries, log=log, progress=progress))
    write_questions(path, list(saved.values()))
    return saved


def run_qa(pm: Any, *, encoders: Sequence[EncoderSpec], tasks: Sequence[TaskSet], rewriter: LLMBackend | None,
           answerer_for: Callable[[EncoderSpec], LLMBackend | None], judge: LLMBackend | None = None,
           questions_file: Path, mode: str = "open", seeds: Sequence[int] = (0,), bootstrap: int = 1000,
           shuffle_control: bool = False, retries: int = 2, rewrite_prompt: str = REWRITE_PROMPT,
           judge_prompt: str = JUDGE_PROMPT, recorded_options: dict[str, Any] | None = None,
           progress: ProgressFactory | None = None) -> RunResult:
    """Ask, answer, judge and score every (encoder, task, seed); see the module docstring."""
    t0 = time.time()
    if mode not in MODES:
        raise ConfigError(f"QA mode {mode!r} is not one of: {', '.join(MODES)}")
    if shuffle_control and mode != "choice":
        raise ConfigError("--qa-shuffle-control asks 4-option questions: use it with --qa-mode choice "
                          "(--aggregator qa-choice)")
    if shuffle_control and len(seeds) < MIN_CONTROL_SEEDS:
        raise ConfigError(f"--qa-shuffle-control needs at least {MIN_CONTROL_SEEDS} seeds (one derangement each), got "
                          f"{len(seeds)}: e.g. --seeds 0,1,2,3,4")
    if mode == "open" and judge is None:
        raise ConfigError("--qa-mode open needs a judge: give --qa-judge MODEL (or use --qa-mode choice)")
    agg = "qa" if mode == "open" else "qa-choice"
    logs: dict[str, list[ChatResult]] = {"rewrite": [], "answer": [], "judge": []}
    all_instances = [i for ts in tasks for i in ts.instances]
    questions = _questions(rewriter, load_prompt(rewrite_prompt, pm), all_instances, Path(questions_file),
                           retries=retries, log=logs["rewrite"], progress=progress)
    judge_template = load_prompt(judge_prompt, pm) if mode == "open" else ""
    result = RunResult(provenance=Provenance(
        harness_git=git_hash(), versions=collect_versions(), started=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        tasks={t.name: t.provenance for t in tasks}, plugins=sorted(n for n, p in pm.list_name_plugin() if p),
    ))
    unanswerable: dict[str, int] = {}
    not_applicable: dict[str, str] = {}
    usage: dict[str, Any] = {"answer": {}}
    correct: dict[tuple[Row, str, int], list[bool]] = {}
    for spec in encoders:
        answerer = answerer_for(spec)
        if answerer is None:
            not_applicable[spec.name] = (f"family {spec.family!r} cannot generate text: no QA answer (n/a, not 0); "
                                         "serve a generative model with --qa-answer-base-url to score it")
            continue
        start = len(logs["answer"])
        row: Row = (spec.name, "answer", agg)
        for ts in tasks:
            controls: list[str | None] = [None, QA_CONTROL] if shuffle_control else [None]
            for seed in seeds:
                for control in controls:
                    insts = derange_captions(ts.instances, seed=seed) if control else ts.instances
                    _score_cell(result, row, ts.name, insts, questions, seed=seed, control=control, correct=correct,
                                unanswerable=unanswerable, bootstrap=bootstrap,
                                cell=functools.partial(_answer_cell, answerer, judge, judge_template, mode,
                                                       seed=seed, retries=retries, logs=logs, progress=progress))
        usage["answer"][spec.name] = summarize_usage(logs["answer"][start:]).as_dict()
    if len(seeds) > 1:
        result.seed_summary = summarize_over_seeds(result.scores)
    result.comparisons = compare_rows(correct, n_boot=bootstrap)
    usage["rewrite"] = summarize_usage(logs["rewrite"]).as_dict()
    usage["judge"] = summarize_usage(logs["judge"]).as_dict()
    usage["total"] = summarize_usage([r for rs in logs.values() for r in rs]).as_dict()
    result.provenance.options = jsonable({
        **(recorded_options or {}), "aggregator": agg, "seeds": list(seeds), "bootstrap": bootstrap,
        "qa": {"mode": mode, "rewriter": None if rewriter is None else rewriter.model, "judge": None if judge is None else judge.model,
               "questions_file": str(questions_file), "questions": len(questions), "retries": retries,
               "shuffle_control": QA_CONTROL if shuffle_control else None, "unanswerable": unanswerable,
               "not_applicable": not_applicable, "usage": usage},
    })
    result.provenance.seconds = round(time.time() - t0, 2)
    return result


def _score_cell(result: RunResult, row: Row, task: str, instances: Sequence[Instance],
                questions: dict[str, Question], *, seed: int, control: str | None,
                correct: dict[tuple[Row, str, int], list[bool]], unanswerable: dict[str, int], bootstrap: int,
                cell: Callable[..., _Cell]) -> None:
    """Answer one (row, task, seed, control), then record slices, samples and the unanswerable count.
    An instance the rewriter gave no question is unanswerable without asking."""
    asked = [i for i in instances if i.id in questions]
    qs = [questions[i.id] for i in asked]
    desc = f"qa: {row[0]} {task} seed {seed}" + (f" ({control})" if control else "")
    got = cell(asked, qs, desc=desc) if asked else _Cell([], [], 0)
    chosen_by_id = {i.id: (c, q) for i, c, q in zip(asked, got.chosen, qs)}
    oks, samples = [], []
    for inst in instances:
        c, q = chosen_by_id.get(inst.id, (None, None))
        ok = q is not None and c == q.answer
        oks.append(ok)
        # scores, positive first as elsewhere: 1 for the option chosen (none when unanswered or undecided)
        k = len(inst.candidates)
        canon = [] if q is None else [q.answer, *(j for j in range(k) if j != q.answer)]
        scores = [float(c == j) for j in canon] if canon else [0.0] * k
        samples.append(SampleRecord(encoder=row[0], extractor=row[1], aggregator=row[2], task=task, seed=seed,
                                    id=inst.id, category=inst.category, caption_type=inst.caption_type,
                                    scores=scores, correct=ok, n_candidates=k))
    key = f"{row[0]}/{task}/seed {seed}" + (f"/{control}" if control else "")
    unanswerable[key] = got.unanswerable + (len(instances) - len(asked))
    if control is None:  # paired comparisons between encoders on the real captions only
        correct[(row, task, seed)] = oks
    result.scores.extend(slice_records(row, task, instances, oks, seed=seed, n_boot=bootstrap, control=control))
    result.samples.extend(samples)


def control_summary(result: RunResult) -> list[str]:
    """One line per (encoder, task) of the QA shuffle control: min, max and mean over seeds against chance
    (1/k from the records), next to the same questions with the right captions."""
    lines = []
    overall = [r for r in result.scores if r.category == "all" and r.caption_type == "all"]
    cells: dict[tuple[str, str], dict[str | None, list[float]]] = {}
    chance: dict[tuple[str, str], float] = {}
    for r in overall:
        cells.setdefault((r.encoder, r.task), {}).setdefault(r.control, []).append(r.value)
        chance[(r.encoder, r.task)] = r.chance or 0.0
    for (enc, task), by in cells.items():
        shuffled = by.get(QA_CONTROL)
        if not shuffled:
            continue
        real = by.get(None, [])
        right = f"; right captions mean {100 * sum(real) / len(real):.1f}%" if real else ""
        lines.append(f"{QA_CONTROL} ({enc}, {task}): min {100 * min(shuffled):.1f}% max {100 * max(shuffled):.1f}% "
                     f"mean {100 * sum(shuffled) / len(shuffled):.1f}% over {len(shuffled)} seeds; chance (1/k) "
                     f"{100 * chance[(enc, task)]:.1f}%{right}")
    return lines


def split_control(result: RunResult) -> tuple[RunResult, RunResult]:
    """(right captions, shuffled captions): each renders as its own table."""
    real = replace(result, scores=[r for r in result.scores if r.control is None])
    shuffled = replace(result, scores=[r for r in result.scores if r.control == QA_CONTROL], comparisons=[])
    return real, shuffled
