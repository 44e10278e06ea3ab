"""``harness run --aggregator qa|qa-choice``: the QA baseline's flags and command (called from harness.cli)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from harness._argtypes import non_negative_int, positive_int

__all__ = ["GENERATIVE_FAMILIES", "QA_NAMES", "add_qa_args", "cmd_qa"]

QA_NAMES = ("qa", "qa-choice")  # must match harness.qa.QA_AGGREGATORS (kept here so the CLI imports stay light)
GENERATIVE_FAMILIES = ("causal-lm", "mllm")  # families whose own checkpoint can answer through the ``hf`` backend


def add_qa_args(p: argparse.ArgumentParser) -> None:
    """The ``--qa-*`` and ``--llm-*`` flags of ``harness run``."""
    g = p.add_argument_group("QA baseline (--aggregator qa or qa-choice)")
    g.add_argument("--qa-rewriter", metavar="MODEL",
                   help="LLM that turns statements into questions, served at --llm-base-url (hf:PATH: a local model)")
    g.add_argument("--qa-judge", metavar="MODEL", help="LLM that judges open answers (default: the rewriter)")
    g.add_argument("--qa-answer-base-url", metavar="URL",
                   help="OpenAI-compatible server serving each encoder's checkpoint, to answer with instead of "
                        "loading it here (needed for families that cannot generate locally)")
    g.add_argument("--llm-base-url", metavar="URL", help="OpenAI-compatible server of the rewriter and judge "
                   "(default: $OPENAI_BASE_URL)")
    g.add_argument("--llm-api-key", help="API key (default: $OPENAI_API_KEY)")
    g.add_argument("--llm-concurrency", type=positive_int, default=8, help="requests in flight at once")
    g.add_argument("--qa-questions", metavar="FILE", help="questions JSONL to reuse and extend (edit it freely; an "
                   "edited question wins). Default: OUTPUT/qa-questions.jsonl, else in the cache folder")
    g.add_argument("--qa-mode", choices=["open", "choice"],
                   help="open: free answer + LLM judge (default for --aggregator qa); choice: option letter")
    g.add_argument("--qa-shuffle-control", action="store_true",
                   help="paper §4.4: the same option questions with captions shuffled across instances, per seed "
                        "(>= 5 seeds; choice mode). Not the similarity control --control shuffled-captions")
    g.add_argument("--qa-retries", type=non_negative_int, default=2, help="re-asks of a malformed answer before it is unanswerable")


def _backend(pm: Any, model: str, *, base_url: str | None, args: argparse.Namespace, cache: str | None,
             revision: str | None = None) -> Any:
    from harness.llm import LLMOptions, make_llm_backend

    if model.startswith("hf:"):
        extra = {"device": args.device, "dtype": args.dtype, "revision": revision}
        return make_llm_backend(pm, "hf", LLMOptions(model=model[3:], cache_dir=cache,
                                                     extra={k: v for k, v in extra.items() if v}))
    return make_llm_backend(pm, "openai", LLMOptions(model=model, base_url=base_url, api_key=args.llm_api_key,
                                                     concurrency=args.llm_concurrency, cache_dir=cache))


def cmd_qa(args: argparse.Namespace, pm: Any, console: Any, *, registry: Any, encoders: Any) -> int:
    """Run the QA baseline and print its tables, n/a rows, unanswerable counts and cost."""
    from harness._exceptions import ConfigError
    from harness.cache import default_cache_dir
    from harness.cli import _progress, _write_outputs
    from harness.qa import control_summary, run_qa, split_control
    from harness.report import comparison_table, result_tables
    from harness.results import check_output_dir
    from harness.runner import load_task_sets

    if args.output:
        check_output_dir(args.output)
    if args.control:
        raise ConfigError("--control shuffled-captions is the similarity control; for the QA baseline use "
                          "--qa-shuffle-control")
    mode = args.qa_mode or ("choice" if args.aggregator == "qa-choice" else "open")
    tasks = load_task_sets(pm, registry, args.tasks, limit=args.limit)
    root = default_cache_dir().parent
    cache = None if args.no_cache else str(root / "llm")
    questions = Path(args.qa_questions) if args.qa_questions else (
        Path(args.output) / "qa-questions.jsonl" if args.output else root / "qa" / f"{'+'.join(args.tasks)}.jsonl")
    rewriter = None if not args.qa_rewriter else _backend(pm, args.qa_rewriter, base_url=args.llm_base_url,
                                                           args=args, cache=cache)
    judge_model = args.qa_judge or args.qa_rewriter
    judge = None if mode == "choice" or not judge_model else _backend(pm, judge_model, base_url=args.llm_base_url,
                                                                       args=args, cache=cache)

    def answerer_for(spec: Any) -> Any:
        if args.qa_answer_base_url:
            return _backend(pm, spec.checkpoint, base_url=args.qa_answer_base_url, args=args, cache=cache)
        if spec.family in GENERATIVE_FAMILIES:
            return _backend(pm, f"hf:{spec.checkpoint}", base_url=None, args=args, cache=cache,
                            revision=spec.revision)
        return None

    rank0 = os.environ.get("RANK", "0") == "0"
    with _progress(console) if rank0 else _null() as bar:
        result = run_qa(pm, encoders=encoders, tasks=tasks, rewriter=rewriter, answerer_for=answerer_for, judge=judge,
                        questions_file=questions, mode=mode, seeds=args.seeds, bootstrap=args.bootstrap,
                        shuffle_control=args.qa_shuffle_control, retries=args.qa_retries,
                        recorded_options={k: v for k, v in vars(args).items() if k not in ("command", "llm_api_key")},
                        progress=bar)
    real, shuffled = split_control(result)

    def say(text: str) -> None:
        console.print(text, markup=False, highlight=False)

    for table in result_tables(real) + result_tables(shuffled):
        console.print(table)
    comp = comparison_table(result)
    if comp is not None and len(result.comparisons) <= 30:
        console.print(comp)
    qa = result.provenance.options["qa"]
    for line in control_summary(result):
        say(line)
    for name, why in qa["not_applicable"].items():
        say(f"{name}: n/a ({why})")
    for cell, n in qa["unanswerable"].items():
        if n:
            say(f"{cell}: {n} unanswerable (malformed after {args.qa_retries} re-asks; counted wrong)")
    say(f"questions: {qa['questions']} in {questions}")
    for role, u in [("rewrite", qa["usage"]["rewrite"]), ("judge", qa["usage"]["judge"]),
                    *((f"answer {k}", v) for k, v in qa["usage"]["answer"].items()), ("total", qa["usage"]["total"])]:
        say(f"LLM {role}: {u['requests']} requests, {u['prompt_tokens']} prompt + {u['completion_tokens']} "
            f"completion tokens, {u['cache_hits']} cached, {u['errors']} errors")
    if args.output:
        _write_outputs(result, args.output, console)
    return 0


def _null() -> Any:
    from contextlib import nullcontext

    return nullcontext()
