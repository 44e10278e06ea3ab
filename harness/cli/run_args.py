"""``harness run`` / ``harness train``: their flags, and every check of them that runs before a model loads.

`add_run_args` adds the flags; `check_flags`, `check_applies`, `check_checkpoints` and `check_cache_dir`
refuse a mistake in one line before anything is computed; `encoder_specs` and `run_options` turn the
parsed flags into the typed options `harness.evaluation.runner.run` takes."""

from __future__ import annotations

import argparse
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness._exceptions import ConfigError
from harness.cli.argtypes import MAX_DIM, MAX_EPOCHS, MAX_TOKENS
from harness.cli.argtypes import batch_size as _batch_size
from harness.cli.argtypes import byte_size as _byte_size
from harness.cli.argtypes import csv_list as _csv
from harness.cli.argtypes import encoder_list as _encoder_list
from harness.cli.argtypes import number as _number
from harness.cli.argtypes import resamples as _resamples
from harness.cli.argtypes import seed_list as _seeds
from harness.cli.tblogs import add_tensorboard_args
from harness.options import AggregatorOptions, FeatureOptions, TrainingOptions
from harness.registry import Registry
from harness.types import EncoderSpec

__all__ = ["add_run_args", "check_applies", "check_cache_dir", "check_checkpoints", "check_device", "check_flags",
           "encoder_specs", "run_options"]

_AGG_FLAGS = {  # CLI flag -> AggregatorOptions field
    "preset": "preset", "lr": "lr", "epochs": "epochs", "train_batch_size": "batch_size",
    "weight_decay": "weight_decay", "temperature": "temperature", "dim_out": "dim_out", "heads": "heads",
    "layer_weights": "layer_weights", "layer_weights_file": "layer_weights_file", "layer_lr": "layer_lr",
}
_ENC_FLAGS = {"dtype": "dtype", "device": "device", "max_length": "max_length", "template": "template",
              "drop_prefix_tokens": "drop_prefix_tokens", "trust_remote_code": "trust_remote_code",
              "allow_missing_weights": "allow_missing_weights", "system_prompt": "system_prompt"}


def add_run_args(p: argparse.ArgumentParser, *, train_only: bool = False, pm: Any = None) -> None:
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


def check_flags(args: argparse.Namespace) -> None:
    """Options whose mistakes would otherwise surface after a model has loaded."""
    if args.device is not None:
        check_device(args.device, "--device")
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


def check_device(value: str, what: str) -> None:
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


def check_applies(args: argparse.Namespace, extractors: Sequence[Any], *, trains: bool,
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


def check_checkpoints(encoders: Sequence[EncoderSpec]) -> None:
    """A local checkpoint folder that is not there, for every encoder before the first one loads."""
    for spec in encoders:
        path = os.path.expanduser(spec.checkpoint)
        if spec.checkpoint.startswith(("/", "./", "../", "~")) and not os.path.exists(path):
            raise ConfigError(f"Encoder {spec.name!r}: checkpoint {spec.checkpoint!r} does not exist; point it at a "
                              "saved model folder or a hub id ORG/NAME")



def check_cache_dir(args: argparse.Namespace) -> None:
    """Before a model loads: an unusable feature cache folder must not cost the load."""
    if not args.no_cache:
        from harness.features.cache import default_cache_dir, ensure_cache_folder

        ensure_cache_folder(args.cache_dir or default_cache_dir())


def encoder_specs(registry: Registry, args: argparse.Namespace) -> list[EncoderSpec]:
    """Every ``--encoders`` name resolved, with the encoder flags applied on top of its registry options."""
    overrides = {field: getattr(args, flag) for flag, field in _ENC_FLAGS.items() if getattr(args, flag) is not None}
    specs = [registry.encoder(name, overrides) for name in args.encoders]
    names = [s.name for s in specs]
    dup = next((n for n in names if names.count(n) > 1), None)
    if dup is not None:
        raise ConfigError(f"--encoders names {dup!r} twice; give each its own settings or name=...")
    for spec in specs:
        if "device" in spec.extra.get("args", {}):
            check_device(spec.options.device, f"encoder {spec.name!r}: device")
    return specs


def run_options(args: argparse.Namespace, registry: Registry, *, tasks: Sequence[Any] = (),
             trains: bool = True) -> tuple[AggregatorOptions, TrainingOptions, FeatureOptions]:
    """The typed options of a run, built once here and passed down as they are (the pairs: see
    `harness.evaluation.tasks.training_options`)."""
    from harness.evaluation.tasks import training_options

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
