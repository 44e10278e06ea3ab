"""``harness results DIR... [--csv OUT] [--json OUT]``: every score of some runs as one table.

Reads each results.json behind the arguments (files, or folders searched recursively) through
`harness.evaluation.table` -- the rows of ``harness.load_results`` -- prints a compact table
(encoder, extractor, aggregator, task, slice, seed, accuracy with its interval and permutation
null) and writes every column (provenance included) to ``--csv`` and/or ``--json`` (a list of
objects).  Output places are checked before anything is read; a missing path, a folder with no
results.json or a damaged file is one line and exit status 2.  Needs no pandas.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from harness._exceptions import ConfigError
from harness.cli.outputs import atomic_write, check_output_place
from harness.evaluation.results import read_results
from harness.evaluation.table import COLUMN_NAMES, find_results, result_rows

__all__ = ["add_parser", "run_command"]


def add_parser(sub: Any) -> None:
    p = sub.add_parser("results", help="every score of results folders as one table; --csv/--json write it with "
                                       "provenance columns")
    p.add_argument("results", nargs="+", metavar="RESULTS",
                   help="results.json files or folders (searched recursively for results.json)")
    p.add_argument("--csv", metavar="FILE", help="write every row and column (harness.load_results's) as CSV here")
    p.add_argument("--json", metavar="FILE", help="write every row and column as a JSON list of objects here")


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def _interval(low: float | None, high: float | None) -> str:
    return "-" if low is None or high is None else f"[{_pct(low)}, {_pct(high)}]"


def _csv_text(rows: Sequence[dict[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(COLUMN_NAMES), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)  # floats as repr (exact), None as an empty field
    return buf.getvalue()


def _json_text(rows: Sequence[dict[str, Any]]) -> str:
    return json.dumps(list(rows), indent=1, allow_nan=False) + "\n"


def run_command(args: argparse.Namespace, pm: Any, console: Console) -> int:
    """Run ``harness results``; returns the exit status (a `HarnessError` reaches main: one line, 2)."""
    for flag, value in (("--csv", args.csv), ("--json", args.json)):
        if value is not None:
            if value.strip() and Path(value).is_dir():  # '' is refused as empty below
                raise ConfigError(f"{flag} {value!r} is a folder; give a file path "
                                  f"(e.g. {str(Path(value) / ('results' + flag.replace('--', '.')))!r})")
            check_output_place(value, flag, kind="file")  # before any results are read
    files = find_results(args.results)
    rows = [row for f in files for row in result_rows(read_results(f), str(f.parent))]
    runs = sorted({r["run"] for r in rows})
    table = Table(title="accuracy (%)", caption="CI: 95% bootstrap interval; null: permutation null, mean "
                                               "[95% interval]; every column: --csv / --json")
    heads = (["run"] if len(runs) > 1 else []) + ["encoder", "extractor", "aggregator", "task", "slice", "seed",
                                                  "accuracy", "CI", "null"]
    for head in heads:
        table.add_column(head, justify="right" if head in ("seed", "accuracy") else "left")
    for r in rows:
        label = r["slice"] + (f" [{r['control']}]" if r["control"] else "")
        cells = ([r["run"]] if len(runs) > 1 else []) + [
            r["encoder"], r["extractor"], r["aggregator"], r["task"], label, str(r["seed"]), _pct(r["value"]),
            _interval(r["ci_low"], r["ci_high"]),
            "-" if r["null_mean"] is None else f"{_pct(r['null_mean'])} {_interval(r['null_low'], r['null_high'])}"]
        table.add_row(*(Text(c) for c in cells))  # names and paths are data, never rich markup
    console.print(table)

    def say(text: str) -> None:
        console.print(text, markup=False, highlight=False, soft_wrap=True)

    say(f"{len(rows)} rows from {len(files)} results file{'s' if len(files) != 1 else ''}")
    for flag, target, text in (("--csv", args.csv, _csv_text), ("--json", args.json, _json_text)):
        if target is not None:
            try:
                Path(target).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ConfigError(f"{flag} {target!r} cannot be written ({exc.strerror or exc}); "
                                  f"choose another {flag}") from None
            say(f"wrote {atomic_write(target, text(rows))}")
    return 0
