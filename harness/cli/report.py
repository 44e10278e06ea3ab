"""The ``harness correlate`` and ``harness report`` commands: their arguments and what they print.

Like `harness.cli.main` (which adds these sub-commands and dispatches to `run_command`), this is
command-line code: it prints, and lets `HarnessError` reach `harness.cli.main.main` for the
one-line message and exit status 2.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from harness.cli.argtypes import MAX_RESAMPLES, MAX_SEED, number
from harness._exceptions import ConfigError
from harness.cli.outputs import REPORT_FILES, atomic_write, check_output_place, staged_folder
from harness.downstream.correlate import (
    CorrelateResult,
    TedSet,
    correlate_downstream,
    make_scorer,
    read_ted,
    ted_from_results,
)

__all__ = ["add_parsers", "run_command"]

COMMANDS = ("correlate", "report")
CORRELATE_FILES = ("correlate.json", "correlate.png")


def _series_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--downstream", metavar="FILE|SCORER",
                   help="downstream results: a CSV/JSON/JSONL of encoder, extractor, benchmark, metric, value[, n]"
                        "[, ted] (e.g. pkg:harness_tasks/data/downstream_paper.csv), or a scorer name (harness list "
                        "scorers), NAME:ARG")
    p.add_argument("--aggregator", help="TED rows of this aggregator (default: the first in the results)")
    p.add_argument("--task", help="TED rows of this task (default: the first in the results)")
    p.add_argument("--n-boot", type=number(int, low=0, strict=True, high=MAX_RESAMPLES, why="a bound against typos"),
                   default=2000, help="bootstrap resamples for the CI on r")
    p.add_argument("--seed", type=number(int, low=0, high=MAX_SEED), default=0, help="seed of the bootstrap (0..2**32-1)")


def add_parsers(sub: Any) -> None:
    """Add ``correlate`` and ``report`` to the ``harness`` sub-command parsers."""
    cor = sub.add_parser("correlate", help="correlate TED accuracy with downstream (generator) scores")
    cor.add_argument("results", nargs="*", metavar="RESULTS",
                     help="results.json files or folders, or a CSV of encoder, extractor, ted[, category]; none: "
                          "the ted column of --downstream")
    _series_args(cor)
    cor.add_argument("--out", metavar="DIR", help="write correlate.json and correlate.png here")
    rep = sub.add_parser("report", help="write report.md and a self-contained report.html from results")
    rep.add_argument("results", nargs="+", metavar="RESULTS_DIR", help="results folders (or results.json files)")
    rep.add_argument("--out", required=True, metavar="DIR", help="folder for report.md, report.html and figures")
    rep.add_argument("--baseline", metavar="ENCODER/EXTRACTOR/AGGREGATOR",
                     help="row the per-category table compares against (default: each task's first row)")
    rep.add_argument("--title", default="TED-6K report")
    _series_args(rep)


def run_command(args: argparse.Namespace, pm: Any, console: Console) -> int:
    """Run ``harness correlate`` or ``harness report``; returns the exit status."""
    if args.out is not None:
        check_output_place(args.out, "--out")  # before any results are read or scored
    empty = next((r for r in args.results if not r.strip()), None)
    if empty is not None:
        raise ConfigError(f"harness {args.command}: {empty!r} names no results; give results folders or "
                          "results.json files")
    if args.command == "correlate":
        if not args.downstream:
            raise ConfigError("harness correlate needs --downstream FILE|SCORER (e.g. --downstream "
                              "pkg:harness_tasks/data/downstream_paper.csv)")
        ted = read_ted(args.results) if args.results else None
        result = _correlate(args, pm, ted)
        _print_correlation(result, console)
        if args.out:
            _say(console, "wrote " + ", ".join(map(str, _write_correlation(result, args.out))))
        return 0
    from harness.report.page import read_runs, write_report

    runs = read_runs(args.results)
    correlation = None
    if args.downstream:
        ted = TedSet(sources=[label for label, _ in runs])
        for _, res in runs:
            points, rows = ted_from_results(res)
            ted.points += points
            for key, row in rows.items():
                ted.rows.setdefault(key, row)
        correlation = _correlate(args, pm, ted)
    from harness.registry import resolve_path

    scored = resolve_path(args.downstream) if args.downstream else None
    with staged_folder(args.out, "--out", ours=REPORT_FILES) as stage:  # every file written, or none moved in
        paths = write_report(runs, stage, baseline=args.baseline, correlation=correlation, title=args.title,
                             downstream=scored if scored and Path(scored).is_file() else None)
    paths = [Path(args.out) / p.name for p in paths]
    _say(console, "wrote " + ", ".join(str(p) for p in paths[:2]) + (f" and {len(paths) - 2} figures" if paths[2:] else ""))
    return 0


def _correlate(args: argparse.Namespace, pm: Any, ted: TedSet | None) -> CorrelateResult:
    scorer = make_scorer(pm, args.downstream)
    return correlate_downstream(ted, scorer, label=args.downstream, aggregator=args.aggregator, task=args.task,
                                n_boot=args.n_boot, seed=args.seed)


def _say(console: Console, text: str) -> None:
    console.print(text, markup=False, highlight=False, soft_wrap=True)


def _print_correlation(result: CorrelateResult, console: Console) -> None:
    from harness.report.page import CORRELATION_HEADS, SPEARMAN_NOTE, correlation_rows

    table = Table(title=f"TED vs downstream ({result.downstream})",
                  caption="p: two-sided; r CI: percentile bootstrap over the points. " + SPEARMAN_NOTE)
    for i, head in enumerate(CORRELATION_HEADS):
        table.add_column(head, justify="left" if i < 3 else "right")
    for row in correlation_rows(result):
        table.add_row(*row)
    console.print(table)
    _say(console, f"TED from {', '.join(result.ted_sources)}"
         + "".join(f"; {k} {v}" for k, v in (("task", result.task), ("aggregator", result.aggregator)) if v))
    for note in result.notes:
        _say(console, f"note: {note}")
    if result.unmatched:
        _say(console, f"note: downstream rows with no TED row (left out): {', '.join(result.unmatched)}")


def _write_correlation(result: CorrelateResult, out_dir: str) -> list[Path]:
    from harness.downstream.correlate import write_correlate_json
    from harness.report.page import correlation_png

    png = correlation_png(result)
    with staged_folder(out_dir, "--out", ours=CORRELATE_FILES) as stage:  # both written, or neither moved in
        paths = [write_correlate_json(result, stage)]
        if png is not None:
            paths.append(atomic_write(stage / "correlate.png", png))
    return [Path(out_dir) / p.name for p in paths]
