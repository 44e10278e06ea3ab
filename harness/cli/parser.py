"""The ``harness`` command line: every sub-command's flags (`build_parser`), errors in one line, exit 2."""

from __future__ import annotations

import argparse
from typing import Any, NoReturn

from harness.cli.argtypes import number as _number
from harness.cli.run_args import add_run_args
from harness.data.build import add_build_data_parser

__all__ = ["build_parser"]

_DESCRIPTION = "The ``harness`` command: run | train | list | pairs | validate | correlate | report | build-data."


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad option in one line (no usage block) and exits 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {self.prog}: {message}\n")


def build_parser(pm: Any = None) -> argparse.ArgumentParser:
    """The whole command line; with a plugin manager, ``harness run`` also takes its baselines' flags."""
    parser = _Parser(prog="harness", description=_DESCRIPTION)
    parser.add_argument("-p", dest="plugins", action="append", default=[], metavar="NAME",
                        help="load plugin module NAME; -p no:NAME blocks plugin NAME")
    parser.add_argument("--registry", action="append", default=[], help="extra registry YAML (overrides)")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)
    add_run_args(sub.add_parser("run", help="evaluate encoders x extractors on tasks"), pm=pm)
    add_run_args(sub.add_parser("train", help="train (or reuse) aggregators only"), train_only=True)
    ls = sub.add_parser("list", help="list encoders, tasks, pairs, categories, extractors, aggregators, baselines, "
                                      "scorers, llm-backends, plugins, families")
    ls.add_argument("what", choices=["encoders", "tasks", "pairs", "extractors", "aggregators", "baselines", "scorers",
                                     "plugins", "families", "llm-backends", "categories"])
    ls.add_argument("--include-path", action="append", default=[], metavar="DIR", help="extra folder of task YAMLs")
    pairs = sub.add_parser("pairs", help="caption pairs from a datasets dataset with several captions per item")
    pairs.add_argument("source", help="a datasets hub id, a local save_to_disk folder, or one JSON/JSONL/CSV/TSV/Parquet file")
    pairs.add_argument("--out", required=True, help="JSONL to write ({a, b, group, caption_type} per line)")
    pairs.add_argument("--caption-column", default="caption", help="a string or a list of strings per row")
    pairs.add_argument("--id-column", help="the image/video id shared by rows of one item (default: each row is one)")
    pairs.add_argument("--caption-type-column", help="column holding image/video (default: --caption-type)")
    pairs.add_argument("--caption-type", default="image", choices=["image", "video"],
                       help="caption type of every pair without --caption-type-column")
    pairs.add_argument("--split")
    pairs.add_argument("--max-per-item", type=_number(int, low=0, strict=True),
                       help="at most N pairs per item (a seeded sample of all combinations)")
    val = sub.add_parser("validate", help="check a TED file, caption-pair file or task YAML and count its instances")
    val.add_argument("path", help="a TED data file (JSONL, official JSON), a caption-pair file, or a task or category "
                                  "YAML (its fields and its data are checked)")
    val.add_argument("--pairs", action="store_true", help="the file holds caption pairs")
    val.add_argument("--include-path", action="append", default=[], metavar="DIR",
                     help="extra folder of task YAMLs (where a task YAML's include: base may live)")
    from harness.cli.report import add_parsers  # correlate, report

    add_parsers(sub)
    add_build_data_parser(sub)
    from harness.cli.score import add_parser as add_score_parser

    add_score_parser(sub)
    from harness.cli.check import add_parser as add_check_parser

    add_check_parser(sub)
    from harness.cli.results import add_parser as add_results_parser

    add_results_parser(sub)
    return parser
