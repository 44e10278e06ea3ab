"""``harness score``: run a downstream scorer on each (encoder, extractor) row and write what
``harness correlate`` reads.

A generator scorer (``toy-t2i``) trains one model per row, so this is the long step of the loop::

    harness run --encoders minilm --extract last,layer:3,norm-avg,learned --output runs/ted
    harness score runs/ted --scorer toy-t2i:cpu --baseline --out runs/gen
    harness correlate runs/ted --downstream runs/gen/downstream.csv

Rows come from TED results (their accuracy goes into the ``ted`` column) or from ``--rows``.
The scorer reads each row through one `harness.downstream.context.ScoreContext` built here: this
command's plugins (``-p``) and registry (``--registry``, ``--include-path``), each row's encoder as
the run recorded it (``FAMILY:PATH`` names, ``--max-length``, ``--template``, ``--dtype``, ...) and
its features through the run's feature cache and dtype.
``DIR/downstream.csv`` is rewritten after every row, so a killed run keeps every finished row
and a rerun with the same scorer and options goes on from there; the scorer writes its own
files (sample grids, layer weights) under ``DIR/rows/``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from harness._exceptions import ConfigError, DataError
from harness.types import DownstreamMetric, ScoredRow

if TYPE_CHECKING:
    from harness.downstream.context import ScoreContext

__all__ = ["add_parser", "parse_options", "run_command", "score_context", "score_rows"]

MANIFEST = "score.json"
CSV = "downstream.csv"


def add_parser(sub: Any) -> None:
    p = sub.add_parser("score", help="run a downstream scorer (e.g. the toy-t2i generator) per row; writes "
                                     "DIR/downstream.csv for harness correlate")
    p.add_argument("--config", metavar="FILE", help="a run file: YAML of these options by long name (flags given "
                   "here override it); the resolved one is written to OUT/config.yaml")
    p.add_argument("results", nargs="*", metavar="RESULTS",
                   help="TED results (folders, results.json or a CSV of encoder, extractor, ted): the rows to score "
                        "and their TED accuracy")
    p.add_argument("--scorer", default="toy-t2i", metavar="NAME[:ARG]", help="scorer (harness list scorers); "
                   "default toy-t2i (its ARG is a config: smoke, cpu, gpu)")
    p.add_argument("--rows", metavar="ENC/EXT,...", help="rows to score (without RESULTS: these; with: only these)")
    p.add_argument("--option", "-O", action="append", default=[], metavar="KEY=VALUE",
                   help="a scorer option, repeatable (toy-t2i: steps=300, n1=150, layer_weights=continuous, ...)")
    p.add_argument("--baseline", action="store_true",
                   help="also train the same model without text once and report the conditioned-minus-"
                        "unconditioned margin per row (toy-t2i)")
    p.add_argument("--aggregator", help="TED rows of this aggregator (default: the first in the results)")
    p.add_argument("--task", help="TED rows of this task (default: the first in the results)")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for downstream.csv and the scorer's files")
    p.add_argument("--include-path", action="append", default=[], metavar="DIR", help="extra folder of task YAMLs")
    p.add_argument("--cache-dir", help="feature cache root (default: the one the row's run used, when it exists "
                                       "here; else $HARNESS_CACHE_DIR/features or ~/.cache/ted-harness/features)")
    p.add_argument("--no-cache", action="store_true", help="keep features in RAM only; never read or write the cache")
    p.add_argument("--feature-dtype", choices=["auto", "float32", "float16", "bfloat16"], default="auto",
                   help="dtype of cached features (auto: the row's run's; without one, bfloat16 when the encoder "
                        "runs on CUDA, else float32)")
    p.add_argument("--device", help="load every row's encoder on this device (default: the device its run recorded)")
    from harness.cli.tblogs import add_tensorboard_args

    add_tensorboard_args(p, default="OUT/tb; a row trained again replaces its own run folder")


def parse_options(items: Sequence[str]) -> dict[str, str]:
    """``KEY=VALUE`` strings -> a dict (values stay text; the scorer converts them)."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise ConfigError(f"--option {item!r}: expected KEY=VALUE (e.g. --option steps=300)")
        if key in out:
            raise ConfigError(f"--option {key} is given twice")
        out[key] = value.strip()
    return out


def _rows(args: argparse.Namespace) -> list[ScoredRow]:
    wanted: list[tuple[str, str]] = []
    for item in (args.rows or "").split(","):
        if not item.strip():
            continue
        enc, sep, ext = item.strip().rpartition("/")  # an ad hoc encoder name holds a path: FAMILY:DIR/NAME
        if not sep or not enc or not ext:
            raise ConfigError(f"--rows {item!r}: expected ENCODER/EXTRACTOR (e.g. minilm/norm-avg)")
        wanted.append((enc, ext))
    if args.rows is not None and not wanted:
        raise ConfigError("--rows names no row; expected ENCODER/EXTRACTOR,...")
    if not args.results:
        if not wanted:
            raise ConfigError("harness score needs rows: TED results (harness run --output DIR) or --rows ENC/EXT,...")
        return [ScoredRow(enc, ext) for enc, ext in dict.fromkeys(wanted)]
    from harness.downstream.correlate import one_series, read_ted, scored_rows

    ted = read_ted(args.results)
    points, _ = one_series(ted.points, args.aggregator, args.task)
    rows: dict[tuple[str, str], ScoredRow] = {}
    for row in scored_rows([p for p in points if p.category == "all"], ted.rows):
        rows.setdefault((row.encoder, row.extractor), row)
    if wanted:
        missing = [f"{e}/{x}" for e, x in wanted if (e, x) not in rows]
        if missing:
            raise ConfigError(f"--rows {', '.join(missing)}: not in the TED results; they hold "
                              f"{', '.join(f'{e}/{x}' for e, x in rows)}")
        return [rows[key] for key in dict.fromkeys(wanted)]
    if not rows:
        raise DataError(", ".join(args.results), None, None, "holds no TED rows to score")
    return list(rows.values())


def _manifest(out: Path, spec: str, options: dict[str, Any], baseline: bool) -> None:
    """Record the scorer and options; refuse a folder that holds scores made another way."""
    plain = json.loads(json.dumps(options, default=lambda o: f"<{type(o).__name__}>"))  # objects by type
    want = {"scorer": spec, "options": plain, "baseline": baseline}
    path = out / MANIFEST
    if path.is_file():
        try:
            have = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise DataError(str(path), None, None, f"cannot be read ({exc}); remove it or use another --out") from None
        if {k: have.get(k) for k in want} != want:
            raise ConfigError(f"{out} holds scores made with {have.get('scorer')!r} and options "
                              f"{have.get('options')} (baseline {have.get('baseline')}); use another --out, or the "
                              "same scorer and options to go on")
        return
    path.write_text(json.dumps(want, indent=1) + "\n", encoding="utf-8")


def score_context(args: argparse.Namespace, pm: Any) -> ScoreContext:
    """The `ScoreContext` of a ``harness score`` command line: built once, handed to the scorer."""
    from harness.downstream.context import ScoreContext
    from harness.options import FeatureOptions

    if args.cache_dir and not args.no_cache:
        from harness.features.cache import ensure_cache_folder

        ensure_cache_folder(args.cache_dir)  # an unusable --cache-dir must not cost a model load
    features = FeatureOptions(dtype=args.feature_dtype, cache_dir=args.cache_dir, no_cache=args.no_cache)
    return ScoreContext.create(pm, registry_files=args.registry or (), include_paths=args.include_path,
                               feature_options=features, device=args.device)


def score_rows(pm: Any, spec: str, rows: Sequence[ScoredRow], out_dir: str | Path, *,
               options: dict[str, Any] | None = None, baseline: bool = False, progress: Any = None,
               say: Any = print, context: ScoreContext | None = None,
               tensorboard: str | None = None) -> list[tuple[ScoredRow, DownstreamMetric]]:
    """Score ``rows`` with scorer ``spec``; (re)write ``out_dir/downstream.csv`` after each row and
    return every (row, metric), the ones already there first.

    ``context`` (None: `ScoreContext.create` over ``pm``) goes to the scorer's ``bind`` when it has one.
    ``tensorboard``: the folder a training scorer writes TensorBoard run folders to (``context.tensorboard``)."""
    from harness.downstream.context import ScoreContext
    from harness.downstream.correlate import make_scorer
    from harness.downstream.rows import read_downstream_file, write_downstream_csv

    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"--out {str(out)!r} cannot be created ({exc.strerror or exc})") from None
    options = dict(options or {})
    extra: dict[str, Any] = {**options, "out_dir": str(out / "rows"), "progress": progress}
    if baseline:
        extra["baseline"] = True
    scorer = make_scorer(pm, spec, options=extra)  # bad options fail here, before the folder is claimed
    bind = getattr(scorer, "bind", None)
    if callable(bind):  # optional: a scorer that reads encoders or features takes the command's context
        context = context if context is not None else ScoreContext.create(pm)
        bind(context if tensorboard is None else dataclasses.replace(context, tensorboard=tensorboard))
    _manifest(out, spec, options, baseline)
    done: list[tuple[ScoredRow, DownstreamMetric]] = []
    if (out / CSV).is_file():
        done = read_downstream_file(out / CSV)
    have = {(r.encoder, r.extractor) for r, _ in done}
    for row in rows:
        if (row.encoder, row.extractor) in have:
            say(f"{row.encoder}/{row.extractor}: already scored in {out / CSV}")
            continue
        t0 = time.monotonic()
        metrics = scorer.score(row)
        if not metrics:
            say(f"{row.encoder}/{row.extractor}: the scorer has no numbers for this row")
            continue
        done += [(row, m) for m in metrics]
        write_downstream_csv(out / CSV, done)
        say(f"{row.encoder}/{row.extractor}: {_summary(metrics)} ({time.monotonic() - t0:.0f} s)")
    return done


def _fmt(m: DownstreamMetric) -> str:
    ci = f" [{m.ci[0]:.3f}, {m.ci[1]:.3f}]" if m.ci else ""
    sign = "+" if m.metric.endswith("margin") and m.value > 0 else ""
    return f"{sign}{m.value:.3f}{ci}"


def _summary(metrics: Sequence[DownstreamMetric]) -> str:
    parts = [f"{m.benchmark} {m.metric} {_fmt(m)}" for m in metrics if ":" not in m.metric]
    return "; ".join(parts)


def run_command(args: argparse.Namespace, pm: Any, console: Console, progress: Any = None) -> int:
    """Run ``harness score``; returns the exit status."""
    from harness.cli.outputs import check_output_place

    check_output_place(args.out, "--out")  # before any row is read or scored
    from harness.cli.tblogs import tensorboard_dir

    notes: list[str] = []
    tb = tensorboard_dir(args, output=args.out, output_flag="--out", trains=True, say=notes.append)
    options = parse_options(args.option)
    rows = _rows(args)
    context = score_context(args, pm)

    def say(text: str) -> None:
        console.print(text, markup=False, highlight=False, soft_wrap=True)

    for note in notes:
        say(note)
    say(f"scoring {len(rows)} row(s) with {args.scorer}: {', '.join(f'{r.encoder}/{r.extractor}' for r in rows)}")
    if progress is not None:
        with progress() as bar:
            done = score_rows(pm, args.scorer, rows, args.out, options=options, baseline=args.baseline,
                              progress=bar, say=say, context=context, tensorboard=tb)
    else:
        done = score_rows(pm, args.scorer, rows, args.out, options=options, baseline=args.baseline, say=say,
                          context=context, tensorboard=tb)
    _print_table(done, console)
    say(f"wrote {Path(args.out) / CSV}; next: harness correlate {' '.join(args.results) or ''} "
        f"--downstream {Path(args.out) / CSV}".replace("  ", " "))
    return 0


def _print_table(done: Sequence[tuple[ScoredRow, DownstreamMetric]], console: Console) -> None:
    metrics = list(dict.fromkeys((m.benchmark, m.metric) for _, m in done if ":" not in m.metric))
    table = Table(title="downstream scores (95% bootstrap interval over prompts)")
    table.add_column("row")
    table.add_column("TED %", justify="right")
    for bench, metric in metrics:
        table.add_column(f"{bench} {metric}", justify="right")
    by_row: dict[tuple[str, str], dict[tuple[str, str], DownstreamMetric]] = {}
    teds: dict[tuple[str, str], float | None] = {}
    for row, m in done:
        by_row.setdefault((row.encoder, row.extractor), {})[(m.benchmark, m.metric)] = m
        teds[(row.encoder, row.extractor)] = row.ted
    for key, ms in by_row.items():
        ted = teds.get(key)
        table.add_row(f"{key[0]}/{key[1]}", "–" if ted is None else f"{ted:.1f}",
                      *(_fmt(ms[k]) if k in ms else "–" for k in metrics))
    console.print(table)
