"""``harness run`` and ``harness train``: resolve everything, run, print the tables, write the folder.

`cmd_run` is the command (`cmd_run(..., train_only=True)` is ``harness train``); a baseline plugin's
aggregator name goes to `_cmd_baseline`.  The flags and their early checks are in
`harness.cli.run_args`."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path
from typing import Any

from rich.console import Console

from harness._exceptions import ConfigError, HarnessError, unknown_name
from harness.cli.outputs import check_output_place, write_outputs
from harness.cli.parser import build_parser
from harness.cli.progress import progress_bars as _progress
from harness.cli.run_args import (check_applies, check_cache_dir, check_checkpoints, check_flags, encoder_specs,
                                  run_options)
from harness.cli.tblogs import clear_default_folder, tensorboard_dir
from harness.features import distributed
from harness.registry import Registry, load_plugin_registry
from harness.types import EncoderSpec

__all__ = ["cmd_run", "write_config", "write_run_outputs"]


def cmd_run(args: argparse.Namespace, pm: Any, console: Console, *, train_only: bool = False) -> int:
    from harness.features.extractors import parse_extractors
    from harness.evaluation.tasks import load_task_sets
    from harness.evaluation.runner import run

    # Resolve every name and load every task before any encoder work: a typo costs nothing.
    if not train_only and args.output is not None and os.environ.get("RANK", "0") == "0":
        # a bad --output (or '') must not cost a run; under torchrun only rank 0 writes, so only it checks
        check_output_place(args.output, "--output")
    check_flags(args)
    registry = load_plugin_registry(pm, args.registry, include_paths=args.include_path)
    encoders = encoder_specs(registry, args)
    extractors = parse_extractors(pm, args.extract)
    from harness.baselines import baseline_names

    baselines = baseline_names(pm)
    if args.aggregator in baselines:
        if train_only:
            raise ConfigError(f"aggregator {args.aggregator!r} trains nothing: use `harness run`")
        tensorboard_dir(args, output=None, trains=False, say=lambda _: None,
                        why=f"--aggregator {args.aggregator!r} trains nothing")
        return _cmd_baseline(args, pm, console, registry=registry, encoders=encoders)
    known = [n for ns in pm.hook.harness_aggregator_names() for n in ns]
    if args.aggregator not in known:
        raise unknown_name("aggregator", args.aggregator, [*known, *baselines])
    trains = bool(pm.hook.harness_aggregator_trains(name=args.aggregator))
    notes = check_applies(args, extractors, trains=trains, train_only=train_only)
    head_file = getattr(args, "aggregator_file", None)  # `harness train` has no such flag
    if head_file is not None:
        from harness.evaluation.aggregator_file import check_aggregator_file

        check_aggregator_file(head_file, aggregator=args.aggregator, trains=trains, n_encoders=len(encoders),
                              n_extractors=len(extractors), n_seeds=len(args.seeds),
                              unused={"--train-pairs": args.train_pairs, "--max-pairs": args.max_pairs,
                                      "--retrain": args.retrain})
    check_checkpoints(encoders)
    if train_only and args.ckpt_dir is not None and os.environ.get("RANK", "0") == "0":
        check_output_place(args.ckpt_dir, "--ckpt-dir")  # the checkpoint is what `harness train` is for
    rank0 = os.environ.get("RANK", "0") == "0"  # under torchrun only rank 0 prints and writes
    tb = tensorboard_dir(args, output=None if train_only else args.output, trains=trains, say=notes.append,
                         check=rank0, why=f"--aggregator {args.aggregator!r} trains nothing")

    def say(line: str) -> None:
        if rank0:
            console.print(line, markup=False, highlight=False, soft_wrap=True)

    tasks = [] if train_only else load_task_sets(pm, registry, args.tasks, limit=args.limit, say=say,
                                                 official_filters=args.official_filters)
    agg, training, features = run_options(args, registry, tasks=tasks, trains=trains and head_file is None)
    if train_only:  # the checkpoint is all `harness train` makes: failing to write it stops it, in one line
        training = replace(training, require_checkpoint=True)
    training = replace(training, aggregator_file=head_file)
    training = replace(training, tensorboard_dir=tb)
    check_cache_dir(args)
    for note in notes:
        say(note)
    if rank0:
        clear_default_folder(tb, args)  # OUTPUT/tb holds this run's trainings only (docs/logging.md)

    with _progress(console) if rank0 else nullcontext() as bar:
        result = run(pm, encoders=encoders, tasks=tasks, extractors=extractors, aggregator=args.aggregator,
                     aggregator_options=agg, training=training, features=features, seeds=args.seeds,
                     control=None if train_only else args.control, bootstrap=0 if train_only else args.bootstrap,
                     null_resamples=0 if train_only else args.null_resamples,
                     recorded_options=_recorded(args), progress=bar,
                     say=say if rank0 else None)
    if not rank0 or not distributed.is_main():
        return 0
    _print_run(result, console)
    unsaved = [t for t in result.training if not t.reused and t.checkpoint is None and t.steps]
    if train_only and unsaved:  # the checkpoint is all `harness train` produces
        t = unsaved[0]
        raise HarnessError(f"aggregator {t.encoder}/{t.extractor} seed {t.seed} was trained but its checkpoint could "
                           f"not be written under {args.ckpt_dir or 'the cache folder'!r} (see the warning above); "
                           "give a writable --ckpt-dir")
    if not train_only and args.output:
        from harness.cli.config import CONFIG_FILE, resolved_config

        config = resolved_config(args, build_parser(pm), "run", plugins=args.plugins, registry=args.registry)
        write_run_outputs(result, args.output, console, files={CONFIG_FILE: config})
    return 0


def _print_run(result: Any, console: Console) -> None:
    """The result tables, the paired comparisons (up to 30), and one line per trained aggregator and encoder."""
    from harness.report.tables import comparison_table, result_tables

    for table in result_tables(result):
        console.print(table)
    comp = comparison_table(result)
    if comp is not None and len(result.comparisons) <= 30:
        console.print(comp)
    for t in result.training:
        state = ("loaded from --aggregator-file" if t.from_file else "reused" if t.reused
                 else f"trained {t.steps} steps in {t.seconds}s")
        loss = "" if t.first_loss is None or t.final_loss is None else f", loss {t.first_loss:.3f} -> {t.final_loss:.3f}"
        loop = ", encoder in the loop" if t.features == "encoder-in-the-loop" else ""
        console.print(f"aggregator {t.encoder}/{t.extractor} seed {t.seed}: {state}{loss}{loop}  "
                      f"({t.checkpoint or 'not saved'})", markup=False, highlight=False)
    for name, enc in result.provenance.encoders.items():
        parts = []
        if enc.n_eval_texts:
            parts.append(f"{enc.texts_truncated} of {enc.n_eval_texts} evaluation texts truncated at "
                         f"{enc.max_length} tokens")
        if enc.n_train_texts:
            parts.append(f"{enc.train_texts_truncated} of {enc.n_train_texts} training texts truncated at "
                         f"{enc.train_max_length}")
        cut = "; ".join(parts) or "no texts"
        if parts and enc.texts_encoded == 0:  # a warm cache: nothing was tokenized, so nothing was counted
            cut = (f"all {enc.n_eval_texts + enc.n_train_texts} texts from the feature cache; truncation is counted "
                   "when texts are encoded (--no-cache counts it)")
        elif parts and enc.texts_encoded < enc.n_eval_texts + enc.n_train_texts:
            cut += f"; truncation counted over the {enc.texts_encoded} texts encoded in this run, not the cached ones"
        console.print(f"{name}: {enc.texts_encoded} texts encoded in {enc.encode_seconds}s ({cut})",
                      markup=False, highlight=False)
        console.print(_feature_line(name, enc), markup=False, highlight=False, soft_wrap=True)


def write_config(args: argparse.Namespace, pm: Any, console: Console, command: str, folder: str) -> None:
    """``folder/config.yaml``: the resolved options, so ``harness COMMAND --config`` it reruns the same."""
    from harness._atomic import atomic_write
    from harness.cli.config import CONFIG_FILE, resolved_config

    text = resolved_config(args, build_parser(pm), command, plugins=args.plugins, registry=args.registry)
    path = atomic_write(Path(folder) / CONFIG_FILE, text)
    console.print(f"wrote {path}", markup=False, highlight=False)


def _recorded(args: argparse.Namespace) -> dict[str, Any]:
    """The options a run records: all but the sub-command's name and secrets (API keys)."""
    from harness.cli.config import SECRET

    return {k: v for k, v in vars(args).items() if k != "command" and not SECRET.search(k)}


def _cmd_baseline(args: argparse.Namespace, pm: Any, console: Console, *, registry: Registry,
                  encoders: Sequence[EncoderSpec]) -> int:
    """``harness run --aggregator NAME`` for a baseline plugin's NAME: build it (its flags checked before
    any work), load the tasks, hand it the run (`harness.BaselineContext`), write what it returns."""
    from harness.baselines import BaselineContext, make_baseline
    from harness.features.cache import default_cache_dir
    from harness.evaluation.tasks import load_task_sets

    options = {k: v for k, v in vars(args).items() if k != "command"}
    if args.aggregator_file is not None:
        raise ConfigError(f"--aggregator-file {args.aggregator_file!r} does not apply: --aggregator "
                          f"{args.aggregator!r} is a baseline with no head to load; drop --aggregator-file")
    baseline = make_baseline(pm, args.aggregator, options)
    rank0 = os.environ.get("RANK", "0") == "0"  # under torchrun only rank 0 draws progress

    def say(text: str) -> None:  # names and paths are data, never rich markup
        console.print(text, markup=False, highlight=False)

    tasks = load_task_sets(pm, registry, args.tasks, limit=args.limit, say=say, official_filters=args.official_filters)

    ctx = BaselineContext(pm=pm, registry=registry, encoders=tuple(encoders), tasks=tuple(tasks),
                          task_names=tuple(args.tasks), seeds=tuple(args.seeds), bootstrap=args.bootstrap,
                          output=Path(args.output) if args.output else None, cache_root=default_cache_dir().parent,
                          no_cache=args.no_cache, options=options,
                          progress=lambda: _progress(console) if rank0 else nullcontext(), say=say, show=console.print)
    result = baseline.run(ctx)
    if args.output:
        write_run_outputs(result, args.output, console)
    return 0


def _feature_line(name: str, enc: Any) -> str:
    """Where features came from (cache, RAM, encoder in the loop) and what the cache holds on disk now."""
    from harness.features.disk_plan import format_bytes

    loop = sorted({f"{x} ({role})" for x, roles in enc.features.items() for role, how in roles.items()
                   if how == "encoder-in-the-loop"})
    how = (f"encoder in the loop for {', '.join(loop)}: {enc.in_loop_encodings} texts encoded batch by batch"
           if loop else "no features computed in the loop")
    if enc.cache_disk_bytes is None:
        return f"{name}: features in RAM (--no-cache), {how}"
    return (f"{name}: feature cache holds {format_bytes(enc.cache_disk_bytes)} on disk ({enc.feature_cache}), "
            f"features at {enc.feature_dtype}; {how}")


def write_run_outputs(result: Any, out_dir: str, console: Console, *, files: dict[str, str] | None = None) -> None:
    """Write a run's folder (`harness.cli.outputs.write_outputs`) and print which files were written."""
    write_outputs(result, out_dir, lambda line: console.print(line, markup=False, highlight=False), files=files)
