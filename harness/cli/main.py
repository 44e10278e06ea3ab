"""The ``harness`` command: run | train | list | pairs | validate | correlate | report | build-data.

The only code that prints or exits."""

from __future__ import annotations

import argparse
import functools
import logging
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console

from harness._exceptions import ConfigError, HarnessError
from harness.cli.outputs import check_output_place
from harness.cli.parser import build_parser
from harness.cli.progress import progress_bars as _progress
from harness.cli.run import cmd_run, write_config
from harness.data.build import run_build_data
from harness.plugins import get_plugin_manager, plugin_listing
from harness.registry import Registry, load_plugin_registry

__all__ = ["build_parser", "main"]


def _registry(pm: Any, extra: Sequence[str], include_paths: Sequence[str] = ()) -> Registry:
    return load_plugin_registry(pm, extra, include_paths=include_paths)


def _cmd_pairs(args: argparse.Namespace, console: Console) -> int:
    from harness.data.pairs import write_pairs

    check_output_place(args.out, "--out", kind="file")  # before the dataset is read
    report = write_pairs(args.source, args.out, caption_column=args.caption_column, id_column=args.id_column,
                         caption_type_column=args.caption_type_column, caption_type=args.caption_type,
                         split=args.split, max_per_item=args.max_per_item)
    console.print(f"{report.path}: {report.pairs} caption pairs from {report.items_with_pairs} of {report.items} "
                  "items (group = item id)", markup=False, highlight=False)
    return 0


def _cmd_list(args: argparse.Namespace, pm: Any, console: Console) -> int:
    from rich.table import Table

    from harness.data.category_defs import category_dirs, load_categories
    from harness.registry import task_origins

    for folder in args.include_path:  # every kind of list refuses it, not only those that read tasks
        if not Path(folder).is_dir():
            raise ConfigError(f"Include path {folder!r} is not a folder; --include-path takes a folder of task YAMLs")

    what = args.what
    rows: Sequence[tuple[str, ...]]
    if what == "plugins":
        rows = plugin_listing(pm)
    elif what in ("encoders", "tasks", "pairs"):
        reg = _registry(pm, args.registry, args.include_path)
        if what == "pairs":
            rows = [(n, p.source, str(p.default_max or "all"), p.description) for n, p in sorted(reg.pairs.items())]
        elif what == "encoders":
            rows = [(n, s.family, s.checkpoint, s.revision or "-", s.description) for n, s in sorted(reg.encoders.items())]
        else:
            where = task_origins(pm, args.include_path)
            rows = [(n, t.version or "-", t.source, ",".join(t.categories or ("*",)), ",".join(t.groups),
                     where.get(n, "-")) for n, t in sorted(reg.tasks.items())]
            rows += [(g, "", "group", f"{len(ts)} tasks", "", "") for g, ts in sorted(reg.groups.items())]
    elif what == "categories":
        cats = load_categories(category_dirs(pm)).values()
        rows = [(c.slug, c.name, f"{c.plugin}: {c.source}", c.definition) for c in cats]
    else:
        hook = {"extractors": pm.hook.harness_extractor_names, "aggregators": pm.hook.harness_aggregator_names,
                "families": pm.hook.harness_encoder_families,
                "llm-backends": pm.hook.harness_llm_backend_names,
                "baselines": pm.hook.harness_baseline_names}.get(what)
        names = [n for ns in (hook or pm.hook.harness_scorer_names)() for n in ns]
        rows = [(n,) for n in sorted(set(names))]
    table = Table(title=what)
    heads = {"encoders": ("name", "family", "checkpoint", "revision", "description"), "plugins": ("name", "module"),
             "tasks": ("name", "version", "source", "categories", "groups", "from"),
             "categories": ("slug", "name", "from", "definition"),
             "pairs": ("name", "path", "default run uses", "description")}.get(what, ("name",))
    for h in heads:
        table.add_column(h)
    for row in rows:
        table.add_row(*map(str, row))
    console.print(table)
    return 0


def _cmd_validate(args: argparse.Namespace, pm: Any, console: Console) -> int:
    from harness.data.loaders import load_instances_file, load_pairs_file
    from harness.registry import resolve_path

    if not args.path.strip():  # Path('') is the current folder: never validate (or scan) that by accident
        raise ConfigError(f"harness validate: the path {args.path!r} is empty; give a data file, a caption-pair file "
                          "or a task YAML")
    path = Path(resolve_path(args.path))  # as typed when it exists; else $VARS, ~ and pkg: expand

    def say(text: str) -> None:  # paths and caption types are data, never rich markup
        console.print(text, markup=False, highlight=False)

    if path.suffix in (".yaml", ".yml") and not args.pairs:  # a task or category YAML: its fields, then its data
        from harness.evaluation.tasks import load_task_sets

        registry = _registry(pm, args.registry, args.include_path)
        for task_set in load_task_sets(pm, registry, [str(path)]):
            cats = Counter(i.category for i in task_set.instances)
            for cat, n in sorted(cats.items()):
                say(f"  {cat:<14} {n}")
            say(f"{path}: task {task_set.name}: {len(task_set.instances)} instances — OK")
        return 0
    is_pairs = args.pairs or _looks_like_pairs(path)
    if is_pairs:
        pairs = load_pairs_file(path)
        groups = {p.group for p in pairs if p.group is not None}
        say(f"{path}: {len(pairs)} caption pairs, {len(groups)} groups — OK")
        return 0
    instances = load_instances_file(path)
    cats = Counter(i.category for i in instances)
    ctypes = Counter(i.caption_type for i in instances)
    for cat, n in sorted(cats.items()):
        say(f"  {cat:<14} {n}")
    say(f"{path}: {len(instances)} instances, caption types {dict(ctypes)} — OK")
    return 0


def _looks_like_pairs(path: Path) -> bool:
    from harness.data.loaders import is_pairs_file

    return is_pairs_file(path)


def _plugin_args(argv: Sequence[str]) -> list[str]:
    """The ``-p`` values before the sub-command (the full parse, which needs the plugins, reports errors)."""
    pre = argparse.ArgumentParser(add_help=False, exit_on_error=False)
    pre.add_argument("-p", dest="plugins", action="append", default=[])
    pre.add_argument("--registry", action="append")
    pre.add_argument("-v", "--verbose", action="store_true")
    pre.add_argument("rest", nargs=argparse.REMAINDER)  # the sub-command and its flags: not looked into
    try:
        return list(pre.parse_known_args(argv)[0].plugins)
    except argparse.ArgumentError:
        return []


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (2 for any error the user can fix)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:  # plugins load before parsing, as in pytest: a baseline plugin adds `harness run` flags
        from harness.cli.config import config_plugins, expand_config

        pm = get_plugin_manager([*config_plugins(argv), *_plugin_args(argv)])
        argv = expand_config(argv, build_parser(pm))  # --config FILE: its options first, the flags after them
    except HarnessError as exc:
        Console(stderr=True).print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
        return 2
    args = build_parser(pm).parse_args(argv)
    console = Console(width=None if sys.stdout.isatty() else 200)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(name)s: %(message)s")
    command = args.command or "run"
    if args.command is None:  # bare `harness` = `harness run` with the embedded default
        args = build_parser(pm).parse_args([*argv, "run"])
    try:
        if command == "validate":
            return _cmd_validate(args, pm, console)
        if command == "pairs":
            return _cmd_pairs(args, console)
        if command == "list":
            return _cmd_list(args, pm, console)
        if command == "build-data":
            return run_build_data(args, pm, console, progress=functools.partial(_progress, console))
        if command in ("correlate", "report"):
            from harness.cli.report import run_command

            return run_command(args, pm, console)
        if command == "check":
            from harness.cli.check import run_command as run_check

            return run_check(args, pm, console)
        if command == "results":
            from harness.cli.results import run_command as run_results

            return run_results(args, pm, console)
        if command == "score":
            from harness.cli import score as score_cli

            status = score_cli.run_command(args, pm, console, progress=functools.partial(_progress, console))
            if status == 0:
                write_config(args, pm, console, "score", args.out)
            return status
        return cmd_run(args, pm, console, train_only=command == "train")
    except HarnessError as exc:
        Console(stderr=True).print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
