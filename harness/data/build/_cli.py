"""The ``harness build-data`` command: its arguments and what it prints (like `harness.cli.report`)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console

from harness.cli.argtypes import csv_list, non_negative_int, number, positive_int
from harness._exceptions import ConfigError, HarnessError
from harness.data.build._io import (
    OUTPUT_FILES,
    REVIEW_APPLIED_FILE,
    apply_review,
    apply_saved_review,
    read_captions,
    screen_captions,
    write_outputs,
)
from harness.data.build._pipeline import (
    DEFAULT_NEGATIVES_PROMPT,
    DEFAULT_POSITIVE_PROMPT,
    BuildOptions,
    BuildReport,
    build_statements,
)
from harness.data.category_defs import category_dirs, load_categories, select_categories

__all__ = ["add_build_data_parser", "run_build_data"]


def add_build_data_parser(sub: Any) -> None:
    """Add ``build-data`` to the ``harness`` sub-command parsers."""
    p = sub.add_parser("build-data", help="write TED statements for your captions with an LLM (positive + 3 negatives)")
    p.add_argument("captions", nargs="?", metavar="CAPTIONS",
                   help="JSONL of {id, caption, caption_type}, or a datasets hub id / save_to_disk folder")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="writes ted.jsonl, ted6k.json, review.csv, build_report.json (and items.jsonl, llm-cache/)")
    p.add_argument("--types", type=csv_list, default=("all",), help="categories, comma-separated (harness list categories); default all")
    p.add_argument("--apply-review", metavar="SHEET", help="fold a filled review.csv (verdict: keep/edit/drop) into --out")
    p.add_argument("--caption-column", default="caption")
    p.add_argument("--id-column", default="id")
    p.add_argument("--caption-type-column", default="caption_type")
    p.add_argument("--caption-type", default="image", choices=["image", "video"], help="caption type of rows without one")
    p.add_argument("--split")
    p.add_argument("--max-caption-chars", type=positive_int, default=6000, help="skip longer captions (reported)")
    p.add_argument("--backend", default="openai", help="openai | hf (harness list llm-backends)")
    p.add_argument("--model")
    p.add_argument("--llm-base-url")
    p.add_argument("--llm-api-key")
    p.add_argument("--llm-cache", metavar="DIR", help="response cache (default: DIR/llm-cache); a rerun asks nothing twice")
    p.add_argument("--concurrency", type=positive_int, default=8, help="requests in flight at once")
    p.add_argument("--max-retries", type=non_negative_int, default=4, help="retries of a failed request (with back-off)")
    p.add_argument("--max-reasks", type=non_negative_int, default=2,
                   help="re-asks of an invalid answer (reminder naming the problem, new seed) before it is reported")
    p.add_argument("--temperature", type=number(float, low=0, what="a number"), default=0.0)
    p.add_argument("--positive-prompt", default=DEFAULT_POSITIVE_PROMPT, help="a prompt file ($caption, $definition...)")
    p.add_argument("--negatives-prompt", default=DEFAULT_NEGATIVES_PROMPT)
    p.add_argument("--usd-per-m-prompt", type=number(float, low=0, what="a number"), default=0.0, help="price per million prompt tokens (cost line)")
    p.add_argument("--usd-per-m-completion", type=number(float, low=0, what="a number"), default=0.0)


def _say(console: Console, text: str) -> None:
    console.print(text, markup=False, highlight=False)


def run_build_data(args: argparse.Namespace, pm: Any, console: Console,
                   progress: Callable[[], Any] | None = None) -> int:
    """Run ``harness build-data``; ``progress()`` gives a context manager yielding a bar factory."""
    from contextlib import nullcontext

    from harness.llm.backend import LLMOptions
    from harness.llm.factory import make_llm_backend

    from harness.cli.outputs import check_output_place

    check_output_place(args.out, "--out")  # before any caption is read or any request sent
    categories = load_categories(category_dirs(pm))
    if args.apply_review:
        review = apply_review(args.apply_review, args.out, categories)
        _say(console, f"review {args.apply_review}: {review.kept} kept ({review.edited} edited), {review.dropped} "
                      f"dropped, {review.unreviewed} unreviewed")
        for problem in review.problems:
            _say(console, f"  {problem}")
        _say(console, f"wrote {Path(args.out) / OUTPUT_FILES['ted']}, {Path(args.out) / OUTPUT_FILES['official']}")
        return 0
    if not args.captions:
        raise ConfigError("harness build-data needs CAPTIONS (a JSONL file or a datasets source), or --apply-review")
    types = list(categories) if tuple(args.types) == ("all",) else list(args.types)
    chosen = select_categories(categories, types)
    rows = read_captions(args.captions, caption_column=args.caption_column, id_column=args.id_column,
                         caption_type_column=args.caption_type_column, caption_type=args.caption_type,
                         split=args.split)
    captions, skipped = screen_captions(rows, max_chars=args.max_caption_chars)
    for s in skipped:
        _say(console, f"skipped {s['id']}: {s['reason']}")
    if not captions:  # nothing to ask: an empty file must not end in an empty ted.jsonl and exit 0
        raise ConfigError(f"captions {args.captions!r} hold no usable caption ({len(rows)} row(s), {len(skipped)} "
                          "skipped); give a JSONL of {id, caption, caption_type} with at least one caption")
    out = Path(args.out)
    options = LLMOptions(model=args.model, base_url=args.llm_base_url, api_key=args.llm_api_key,
                         concurrency=args.concurrency, max_retries=args.max_retries,
                         cache_dir=args.llm_cache or str(out / "llm-cache"))
    backend = make_llm_backend(pm, args.backend, options)
    build = BuildOptions(model=args.model, temperature=args.temperature, max_reasks=args.max_reasks,
                         positive_prompt=args.positive_prompt, negatives_prompt=args.negatives_prompt)
    report = BuildReport(skipped=skipped)
    with progress() if progress else nullcontext() as bar:
        records, report = build_statements(backend, captions, chosen, out_dir=out, options=build, report=report,
                                           progress=bar)
    generated = records
    if records and not any(r.status in ("ok", "null") for r in records):  # every request failed or was rejected
        _print_report(console, report, args)
        raise HarnessError(f"none of the {len(records)} item(s) got statements ({report.failed} failed, "
                           f"{report.rejected} rejected; the reasons are above); nothing written to "
                           f"{str(out / OUTPUT_FILES['ted'])!r}. Check --backend/--llm-base-url/--model and rerun "
                           "(answers already received are kept)")
    records, reviewed, stale = apply_saved_review(out, records)  # a rerun never undoes a review
    paths = write_outputs(out, records, categories, report, review=reviewed)
    _print_report(console, report, args)
    if reviewed is not None:
        dropped = sum(r.status == "dropped" for r in records)
        edited = sum(r.status == "ok" and (r.positive, r.negatives) != (g.positive, g.negatives)
                     for r, g in zip(records, generated))
        _say(console, f"kept the review applied earlier ({out / REVIEW_APPLIED_FILE}): {dropped} dropped, "
                      f"{edited} edited")
    for problem in stale:
        _say(console, f"  {problem}")
    _say(console, "wrote " + ", ".join(map(str, paths)))
    return 0


def _print_report(console: Console, report: BuildReport, args: argparse.Namespace) -> None:
    for item in report.problems:
        if item["status"] in ("rejected", "error"):
            problems = list(dict.fromkeys(item["problems"]))  # the same problem on every re-ask: say it once
            _say(console, f"{item['status']} {item['id']} (after {len(item['problems']) - 1} re-asks): "
                          f"{' / '.join(problems)}")
    _say(console, f"{report.captions} captions ({len(report.skipped)} skipped); {report.asked} items asked "
                  f"({report.resumed} from an earlier run): {report.answered} answered, {report.null} null, "
                  f"{report.rejected} rejected by validation, {report.retried} retried, {report.failed} failed")
    u = report.usage
    if u is not None:
        cost = u.cost(args.usd_per_m_prompt, args.usd_per_m_completion)
        price = f", ${cost:.4f}" if args.usd_per_m_prompt or args.usd_per_m_completion else ""
        _say(console, f"LLM: {u.requests} requests, {u.cache_hits} from the cache, {u.errors} errors; "
                      f"{u.prompt_tokens} prompt + {u.completion_tokens} completion tokens{price}")
