"""The ``harness`` command: run | train | list | pairs | validate | correlate | report | build-data.

The only code that prints or exits."""

from __future__ import annotations

import argparse
import functools
import json
import logging
import math
import os
import sys
import time
from collections import Counter
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path
from typing import Any, NoReturn

from rich.console import Console

from harness.features import distributed
from harness.cli.argtypes import batch_size as _batch_size
from harness.cli.argtypes import byte_size as _byte_size
from harness.cli.argtypes import csv_list as _csv
from harness.cli.argtypes import encoder_list as _encoder_list
from harness.cli.argtypes import MAX_DIM, MAX_EPOCHS, MAX_TOKENS
from harness.cli.argtypes import resamples as _resamples
from harness.cli.argtypes import seed_list as _seeds
from harness.cli.argtypes import number as _number
from harness._exceptions import ConfigError, HarnessError, unknown_name
from harness.data.build import add_build_data_parser, run_build_data
from harness.options import AggregatorOptions, FeatureOptions, TrainingOptions
from harness.cli.outputs import check_output_place, write_outputs
from harness.cli.tblogs import add_tensorboard_args, clear_default_folder, tensorboard_dir
from harness.plugins import get_plugin_manager, plugin_listing
from harness.cli.progress import progress_bars as _progress
from harness.registry import Registry, load_plugin_registry
from harness.types import EncoderSpec

__all__ = ["main"]

_AGG_FLAGS = {  # CLI flag -> AggregatorOptions field
    "preset": "preset", "lr": "lr", "epochs": "epochs", "train_batch_size": "batch_size",
    "weight_decay": "weight_decay", "temperature": "temperature", "dim_out": "dim_out", "heads": "heads",
    "layer_weights": "layer_weights", "layer_weights_file": "layer_weights_file", "layer_lr": "layer_lr",
}
_ENC_FLAGS = {"dtype": "dtype", "device": "device", "max_length": "max_length", "template": "template",
              "drop_prefix_tokens": "drop_prefix_tokens", "trust_remote_code": "trust_remote_code",
              "allow_missing_weights": "allow_missing_weights", "system_prompt": "system_prompt"}


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad option in one line (no usage block) and exits 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {self.prog}: {message}\n")


def _add_run_args(p: argparse.ArgumentParser, *, train_only: bool = False, pm: Any = None) -> None:
    positive, non_negative = _number(int, low=0, strict=True), _number(int, low=0)
    p.add_argument("--config", metavar="FILE", help="a run file: YAML of this command's options by long name "
                   "(flags given here override it); a run with --output writes its own as config.yaml")
    p.add_argument("--encoders", type=_encoder_list, default=("minilm",),
                   help="registry names or FAMILY:PATH, comma-separated; each may carry its own settings, "
                        "NAME[dtype=bfloat16,max_length=512,revision=abc] (keys: the encoder flags' names with _, "
                        "revision, name), which override the run-wide flags")
    if not train_only:
        p.add_argument("--tasks", type=_csv, default=("ted-open",),
                       help="task names, groups, data files, task YAML files or folders of them, hf:ORG/NAME")
        p.add_argument("--limit", type=positive, help="at most N instances per category")
        p.add_argument("--control", choices=["shuffled-captions"],
                       help="similarity control: every caption swapped for another, per seed (should sit at the "
                            "permutation null). Not the paper's §4.4 QA control")
        p.add_argument("--null-resamples", type=_resamples, default=100,
                       help="caption derangements for each slice's permutation null (0: none)")
        p.add_argument("--output", "--out", dest="output", help="write results.json, samples.jsonl, figures here")
        p.add_argument("--bootstrap", type=_resamples, default=1000, help="bootstrap resamples for CIs (0: none)")
        p.add_argument("--strict-contamination", action="store_true",
                       help="stop, before training, when a training pair shares a caption (equal, or contained "
                            "with >= 8 words) or an image/video id with an evaluated instance; without it the "
                            "count is printed and recorded")
        p.add_argument("--aggregator-file", metavar="PT",
                       help="score with this trained head instead of training one (one encoder, extractor, seed): "
                            "a checkpoint `harness train` saved, or the official trainer's epoch_N.pt")
        p.add_argument("--official-filters", action="store_true",
                       help="drop image captions' temporal instances, as the official evaluator's filter_data")
    p.add_argument("--include-path", action="append", default=[], metavar="DIR",
                   help="extra folder of task YAML files (overrides shipped tasks of the same name)")
    p.add_argument("--extract", type=_csv, default=("last", "norm-avg"),
                   help="last, penultimate, layer:K, avg, norm-avg[:rms], learned[:rms], all-layers")
    p.add_argument("--aggregator", default="context", help="context (trained), mean-pool (harness list "
                   "aggregators), or a baseline such as qa / qa-choice (harness list baselines; see docs/qa.md)")
    p.add_argument("--seeds", type=_seeds, default=(0,))
    p.add_argument("--train-pairs", help="caption pairs that train the aggregator: a JSONL/JSON file, or a named "
                   "pair set (harness list pairs; default: the set the tasks name, e.g. open for ted-open)")
    p.add_argument("--preset", choices=["default", "official", "paper", "baby"],
                   help="aggregator hyper-parameters: default (small data), official (GRAN-TED trainer), paper, baby")
    width = _number(int, low=0, strict=True, high=MAX_DIM, why="the aggregator's output width; the default is 1024")
    for flag, typ in (("lr", _number(float, low=0, strict=True)),
                      ("epochs", _number(int, low=0, strict=True, high=MAX_EPOCHS, why="a bound against typos")),
                      ("train-batch-size", _number(int, low=1, strict=True, what="an integer")),
                      ("weight-decay", _number(float, low=0)),
                      ("temperature", _number(float, low=0, strict=True)),
                      ("dim-out", width), ("heads", _number(int, low=0, strict=True, high=MAX_DIM))):
        p.add_argument(f"--{flag}", type=typ)
    p.add_argument("--max-pairs", type=non_negative,
                   help="train on the first N pairs (a task's default pair set: its default_max unless given; 0: all)")
    p.add_argument("--layer-weights", choices=["train", "frozen"], help="learned extractor: train or freeze α")
    p.add_argument("--layer-weights-file",
                   help="layer logits to start α from (or keep, with --layer-weights frozen): a JSON list, "
                        "{\"logits\": [...]}, or the official .pt holding {'layer_weights': logits}")
    p.add_argument("--layer-lr", type=_number(float, low=0, strict=True),
                   help="learning rate of the learned layer logits (own optimiser group; default 1e-2)")
    p.add_argument("--include-embedding", action=argparse.BooleanOptionalAction, default=None,
                   help="include the embedding output in avg/norm-avg/learned (default: per family)")
    p.add_argument("--batch-size", type=_batch_size, default=32,
                   help="encoder batch size, or 'auto' (CUDA: largest that fits, up to 512; else 64)")
    p.add_argument("--feature-dtype", choices=["auto", "float32", "float16", "bfloat16"], default="auto",
                   help="dtype of cached features (auto: bfloat16 when the encoder runs on CUDA, else float32)")
    p.add_argument("--dtype", choices=["float32", "bfloat16", "float16"])
    p.add_argument("--device")
    why = "a bound against typos: 16M tokens"
    p.add_argument("--max-length", type=_number(int, low=0, strict=True, high=MAX_TOKENS, why=why))
    p.add_argument("--template", help="plain | chat | granted-caption | a string with {text}")
    p.add_argument("--system-prompt")
    p.add_argument("--drop-prefix-tokens", type=_number(int, low=0, high=MAX_TOKENS, why=why))
    p.add_argument("--trust-remote-code", action=argparse.BooleanOptionalAction, default=None,
                   help="run a checkpoint's own code (pinned revisions only); --no-trust-remote-code refuses it "
                        "even where the registry entry allows it")
    p.add_argument("--allow-missing-weights", action="store_true", default=None)
    p.add_argument("--ckpt-dir", help="aggregator checkpoints (default: $HARNESS_CACHE_DIR or ~/.cache/ted-harness)")
    p.add_argument("--retrain", action="store_true", help="ignore saved aggregator checkpoints")
    add_tensorboard_args(p, default="none" if train_only else "OUTPUT/tb with --output, emptied at the start")
    p.add_argument("--cache-dir", help="feature cache (default: $HARNESS_CACHE_DIR/features or ~/.cache/ted-harness/features)")
    p.add_argument("--no-cache", action="store_true", help="keep features in RAM only; never read or write the cache")
    p.add_argument("--cache-budget", type=_byte_size, metavar="SIZE",
                   help="at most SIZE of new features written to the feature cache by this run (500M, 3G, 1.5T). "
                        "Default: 10%% of its free space, at most 5 GB, for learned layer stacks (views that must be "
                        "cached are held only to the free space). A learned extractor's layer stack that does not "
                        "fit is not cached: it is trained and evaluated with the encoder in the loop")
    p.add_argument("--cache-fsync", choices=["shard", "group", "none"], default="group",
                   help="when feature-cache writes are forced to disk: every shard, once per group of shards "
                        "(default), or never (fastest; a crash may lose recent shards, which are then re-encoded)")
    if not train_only and pm is not None:
        pm.hook.harness_add_baseline_options(parser=p)  # e.g. the QA baseline's --qa-* / --llm-* flags


def build_parser(pm: Any = None) -> argparse.ArgumentParser:
    """The whole command line; with a plugin manager, ``harness run`` also takes its baselines' flags."""
    parser = _Parser(prog="harness", description=__doc__)
    parser.add_argument("-p", dest="plugins", action="append", default=[], metavar="NAME",
                        help="load plugin module NAME; -p no:NAME blocks plugin NAME")
    parser.add_argument("--registry", action="append", default=[], help="extra registry YAML (overrides)")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)
    _add_run_args(sub.add_parser("run", help="evaluate encoders x extractors on tasks"), pm=pm)
    _add_run_args(sub.add_parser("train", help="train (or reuse) aggregators only"), train_only=True)
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


def _registry(pm: Any, extra: Sequence[str], include_paths: Sequence[str] = ()) -> Registry:
    return load_plugin_registry(pm, extra, include_paths=include_paths)


def _check_flags(args: argparse.Namespace) -> None:
    """Options whose mistakes would otherwise surface after a model has loaded."""
    if args.device is not None:
        _check_device(args.device, "--device")
    if args.template is not None:
        from harness._encoder_args import template_problem

        why = template_problem(args.template)
        if why is not None:
            raise ConfigError(f"--template {args.template!r} {why}")
    path = args.layer_weights_file
    if path is not None and not os.path.isfile(path):
        raise ConfigError(f"--layer-weights-file {path!r} does not exist (a JSON list of layer logits, "
                          "or the official .pt holding {'layer_weights': logits})")
    if path is not None:
        _check_layer_logits(path)


def _check_device(value: str, what: str) -> None:
    import torch

    try:
        device = torch.device(value)
    except (RuntimeError, ValueError):
        raise ConfigError(f"{what} {value!r} is not a device; use cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"{what} {value!r}: no CUDA device is visible here; use cpu")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ConfigError(f"{what} {value!r}: only {torch.cuda.device_count()} CUDA device(s) are visible")


_LOGITS_FORMS = ("a JSON list of finite numbers, {\"logits\": [...]}, or the official .pt holding "
                 "{'layer_weights': logits}")


def _check_layer_logits(path: str) -> None:
    """The content of ``--layer-weights-file`` at parse time (only its length needs the model)."""
    def bad(why: str) -> ConfigError:
        return ConfigError(f"--layer-weights-file {path!r} {why}; give {_LOGITS_FORMS}")

    data: Any
    try:
        raw = Path(path).read_bytes()
        if path.endswith((".pt", ".pth", ".bin")):
            import io

            import torch

            data = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
            data = data.get("layer_weights") if isinstance(data, dict) else data
            data = data.float().flatten().tolist() if isinstance(data, torch.Tensor) else data
        elif raw[:2] == b"\x1f\x8b":
            raise bad("is gzip-compressed")
        else:
            data = json.loads(raw.decode("utf-8"))
            data = data.get("logits", data.get("weights")) if isinstance(data, dict) else data
    except OSError as exc:
        raise bad(f"cannot be read ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise bad("is not UTF-8 text") from None
    except ValueError as exc:
        raise bad(f"is not valid JSON ({exc})") from None
    except Exception as exc:  # torch.load's many failure types for a file that is not a tensor file
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise bad(f"cannot be loaded ({first})") from None
    if not isinstance(data, list) or not data:
        raise bad(f"holds {type(data).__name__} {str(data)[:60]!r}, not a list of layer logits")
    for i, v in enumerate(data):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise bad(f"has {v!r} at position {i}, not a finite number")


def _check_applies(args: argparse.Namespace, extractors: Sequence[Any], *, trains: bool,
                   train_only: bool) -> list[str]:
    """Refuse an option that would be ignored: it does not apply to this aggregator or these extractors;
    return a note for one that is harmlessly unused (pairs given to an aggregator that trains nothing)."""
    notes: list[str] = []
    if getattr(args, "strict_contamination", False) and (not trains or getattr(args, "aggregator_file", None)):
        notes.append("note: --strict-contamination is unused: no caption pairs are read, so none can overlap")
    if train_only and not trains:
        raise ConfigError(f"--aggregator {args.aggregator!r} trains nothing, so `harness train` has nothing to do; "
                          "use `harness run`, or a trained aggregator such as context")
    if not trains and args.train_pairs is not None:
        from harness.registry import resolve_path

        pairs = args.train_pairs
        if any(c in pairs for c in "/\\.") and not os.path.exists(resolve_path(pairs)):  # a path, not a set name
            raise ConfigError(f"--train-pairs {pairs!r} does not exist, and --aggregator {args.aggregator!r} "
                              "trains nothing, so it would not be used; drop --train-pairs")
        notes.append(f"note: --train-pairs {pairs!r} is unused: --aggregator {args.aggregator!r} trains nothing")
    learned = any(getattr(x, "fusion", None) == "learned" for x in extractors)
    for flag, value in (("--layer-weights-file", args.layer_weights_file), ("--layer-weights", args.layer_weights)):
        if value is None:
            continue
        if not trains:
            raise ConfigError(f"{flag} {value!r} does not apply: --aggregator {args.aggregator!r} trains nothing; "
                              f"drop {flag} or use a trained aggregator such as context")
        if not learned:
            raise ConfigError(f"{flag} {value!r} applies to a learned extractor only, and --extract "
                              f"{','.join(args.extract)} has none; add learned to --extract or drop {flag}")
    return notes


def _check_checkpoints(encoders: Sequence[EncoderSpec]) -> None:
    """A local checkpoint folder that is not there, for every encoder before the first one loads."""
    for spec in encoders:
        path = os.path.expanduser(spec.checkpoint)
        if spec.checkpoint.startswith(("/", "./", "../", "~")) and not os.path.exists(path):
            raise ConfigError(f"Encoder {spec.name!r}: checkpoint {spec.checkpoint!r} does not exist; point it at a "
                              "saved model folder or a hub id ORG/NAME")



def _check_cache_dir(args: argparse.Namespace) -> None:
    """Before a model loads: an unusable feature cache folder must not cost the load."""
    if not args.no_cache:
        from harness.features.cache import default_cache_dir, ensure_cache_folder

        ensure_cache_folder(args.cache_dir or default_cache_dir())


def _encoder_specs(registry: Registry, args: argparse.Namespace) -> list[EncoderSpec]:
    """Every ``--encoders`` name resolved, with the encoder flags applied on top of its registry options."""
    overrides = {field: getattr(args, flag) for flag, field in _ENC_FLAGS.items() if getattr(args, flag) is not None}
    specs = [registry.encoder(name, overrides) for name in args.encoders]
    names = [s.name for s in specs]
    dup = next((n for n in names if names.count(n) > 1), None)
    if dup is not None:
        raise ConfigError(f"--encoders names {dup!r} twice; give each its own settings or name=...")
    for spec in specs:
        if "device" in spec.extra.get("args", {}):
            _check_device(spec.options.device, f"encoder {spec.name!r}: device")
    return specs


def _options(args: argparse.Namespace, registry: Registry, *, tasks: Sequence[Any] = (),
             trains: bool = True) -> tuple[AggregatorOptions, TrainingOptions, FeatureOptions]:
    """The typed options of a run, built once here and passed down as they are (the pairs: see
    `harness.evaluation.runner.training_options`)."""
    from harness.evaluation.runner import training_options

    agg = AggregatorOptions(**{field: getattr(args, flag) for flag, field in _AGG_FLAGS.items()
                               if getattr(args, flag) is not None})
    training = training_options(registry, train_pairs=args.train_pairs, max_pairs=args.max_pairs, tasks=tasks,
                                trains=trains, aggregator=args.aggregator, retrain=args.retrain,
                                ckpt_dir=args.ckpt_dir,
                                strict_contamination=getattr(args, "strict_contamination", False))  # run only
    features = FeatureOptions(batch_size=args.batch_size, dtype=args.feature_dtype, cache_dir=args.cache_dir,
                              no_cache=args.no_cache, cache_budget=args.cache_budget, fsync=args.cache_fsync,
                              include_embedding=args.include_embedding)
    return agg, training, features


def _cmd_run(args: argparse.Namespace, pm: Any, console: Console, *, train_only: bool = False) -> int:
    from harness.features.extractors import parse_extractors
    from harness.report.tables import comparison_table, result_tables
    from harness.evaluation.runner import load_task_sets, run

    # Resolve every name and load every task before any encoder work: a typo costs nothing.
    if not train_only and args.output is not None and os.environ.get("RANK", "0") == "0":
        # a bad --output (or '') must not cost a run; under torchrun only rank 0 writes, so only it checks
        check_output_place(args.output, "--output")
    _check_flags(args)
    registry = _registry(pm, args.registry, args.include_path)
    encoders = _encoder_specs(registry, args)
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
    notes = _check_applies(args, extractors, trains=trains, train_only=train_only)
    head_file = getattr(args, "aggregator_file", None)  # `harness train` has no such flag
    if head_file is not None:
        from harness.evaluation.aggregator_file import check_aggregator_file

        check_aggregator_file(head_file, aggregator=args.aggregator, trains=trains, n_encoders=len(encoders),
                              n_extractors=len(extractors), n_seeds=len(args.seeds),
                              unused={"--train-pairs": args.train_pairs, "--max-pairs": args.max_pairs,
                                      "--retrain": args.retrain})
    _check_checkpoints(encoders)
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
    agg, training, features = _options(args, registry, tasks=tasks, trains=trains and head_file is None)
    if train_only:  # the checkpoint is all `harness train` makes: failing to write it stops it, in one line
        training = replace(training, require_checkpoint=True)
    training = replace(training, aggregator_file=head_file)
    training = replace(training, tensorboard_dir=tb)
    _check_cache_dir(args)
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
    unsaved = [t for t in result.training if not t.reused and t.checkpoint is None and t.steps]
    if train_only and unsaved:  # the checkpoint is all `harness train` produces
        t = unsaved[0]
        raise HarnessError(f"aggregator {t.encoder}/{t.extractor} seed {t.seed} was trained but its checkpoint could "
                           f"not be written under {args.ckpt_dir or 'the cache folder'!r} (see the warning above); "
                           "give a writable --ckpt-dir")
    if not train_only and args.output:
        from harness.cli.config import CONFIG_FILE, resolved_config

        config = resolved_config(args, build_parser(pm), "run", plugins=args.plugins, registry=args.registry)
        _write_outputs(result, args.output, console, files={CONFIG_FILE: config})
    return 0


def _write_config(args: argparse.Namespace, pm: Any, console: Console, command: str, folder: str) -> None:
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
    from harness.evaluation.runner import load_task_sets

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
        _write_outputs(result, args.output, console)
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


def _write_outputs(result: Any, out_dir: str, console: Console, *, files: dict[str, str] | None = None) -> None:
    """Write a run's folder (`harness.cli.outputs.write_outputs`) and print which files were written."""
    write_outputs(result, out_dir, lambda line: console.print(line, markup=False, highlight=False), files=files)


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
        from harness.evaluation.runner import load_task_sets

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
                _write_config(args, pm, console, "score", args.out)
            return status
        return _cmd_run(args, pm, console, train_only=command == "train")
    except HarnessError as exc:
        Console(stderr=True).print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
