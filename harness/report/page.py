"""``harness report``: ``report.md`` and one self-contained ``report.html`` from results.

Sections: leaderboard (the paper's Table 1), per category against a baseline row (Table 2),
layer sweep, learned layer weights, seed spread, paired comparisons, the TED–downstream
correlation (with ``--downstream``) and provenance.  The accuracy sections are built in
`harness.report.sections`, figures in `harness.report.figures`, rendering in
`harness.report.render`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.downstream.correlate import CorrelateResult
from harness.data.versioning import task_label
from harness.downstream.rows import short_task
from harness.report.figures import ScatterPanel, layer_weights_png, scatter_png
from harness.report.render import Cell, Figure, Para, Section, Table, format_p, signed, to_html, to_markdown
from harness.report.sections import (
    NO_MPL,
    Board,
    category_section,
    leaderboard_section,
    seed_section,
    sweep_section,
)
from harness.evaluation.reference import is_ted6k_task, reference_for
from harness.evaluation.results import RunResult, read_results

__all__ = ["CORRELATION_HEADS", "build_report", "correlation_png", "correlation_rows", "correlation_section", "read_runs",
           "samples_section", "write_report"]


def read_runs(paths: Sequence[str]) -> list[tuple[str, RunResult]]:
    """(label, result) per results file or folder; the label is the folder's name."""
    runs = []
    for p in paths:
        path = Path(p)
        label = (path if path.is_dir() else path.parent).resolve().name or str(path)
        runs.append((label, read_results(path)))
    return runs


def paper_section(runs: Sequence[tuple[str, RunResult]]) -> Section:
    """Our rows beside the paper's values for the same encoder and setting (TED-6K only)."""
    sec = Section("paper", "Against the paper")
    sec.blocks.append(Para("GRAN-TED's printed accuracies (Tables 1, 2, 3 and 7) beside each row evaluated on TED-6K "
                           "with the same encoder, extractor and aggregator; Δ = ours − paper, in points. The paper's "
                           "aggregators were trained on ~500k caption pairs that are not released, so Δ measures the "
                           "training pairs as well as the code."))
    body: list[list[str | Cell]] = []
    without: list[str] = []
    other_tasks: set[str] = set()
    for label, res in runs:
        refs = reference_for(res)
        values: dict[tuple[str, str, str, str, str], list[float]] = {}
        for r in res.scores:  # several seeds: one line with their mean
            if r.caption_type == "all" and not r.control:
                values.setdefault((r.task, r.encoder, r.extractor, r.aggregator, r.category), []).append(r.value)
        for key, vals in values.items():
            task, enc, ext, agg, cat = key
            if not is_ted6k_task(res, task):
                other_tasks.add(short_task(task))
            elif key in refs:
                ref, ours = refs[key], 100 * sum(vals) / len(vals)
                body.append([f"{enc} / {ext} / {agg}", cat, f"{ours:.2f}", f"{ref.value:.2f}",
                             Cell(signed(ours - ref.value), "good" if ours >= ref.value else "bad"),
                             f"Table {ref.table} ({ref.paper_name})", ref.note])
            elif cat == "all":
                without.append(f"{enc} / {ext} / {agg} [{label}]")
    if body:
        sec.blocks.append(Table(["row", "category", "ours", "paper", "Δ", "paper row", "note"], body))
    if without:
        sec.blocks.append(Para("No paper value for: " + "; ".join(without) + ".", "note"))
    if other_tasks:
        sec.blocks.append(Para(f"Rows on {', '.join(sorted(other_tasks))} have no paper value: the paper's numbers "
                               "are for TED-6K (--tasks ted6k with TED6K_PATH set).", "note"))
    return sec


def weights_section(runs: Sequence[tuple[str, RunResult]]) -> Section | None:
    """Learned layer weights α: final values and their path during training."""
    training = [t for _, res in runs for t in res.training if t.layer_weights]
    if not training:
        return None
    sec = Section("layer-weights", "Learned layer weights")
    body: list[list[str | Cell]] = []
    for t in training:
        w = t.layer_weights or []
        layers = t.layers or list(range(len(w)))
        top = sorted(zip(w, layers), reverse=True)[:3]
        body.append([f"{t.encoder} / {t.extractor} / {t.aggregator}", str(t.seed), str(len(w)), f"{1 / len(w):.3f}",
                     ", ".join(f"{layer}: {a:.3f}" for a, layer in top), f"{max(w) - min(w):.4f}",
                     str(t.steps), "reused" if t.reused else "trained"])
    sec.blocks.append(Table(["row", "seed", "layers", "uniform α", "top layers (α)", "max − min", "steps", "state"],
                            body, caption="α = softmax of the learned layer logits; uniform α is Norm-Avg"))
    png = layer_weights_png(training)
    sec.blocks.append(Figure("layer-weights", png, "final α per layer (left) and α during training (right)")
                      if png else Para(NO_MPL, "note"))
    return sec


def comparison_section(runs: Sequence[tuple[str, RunResult]]) -> Section | None:
    """Paired tests of each row against its run's first row, on the same instances."""
    comps = [(label, c) for label, res in runs for c in res.comparisons]
    if not comps:
        return None
    sec = Section("comparisons", "Paired comparisons")
    body: list[list[str | Cell]] = []
    for label, c in comps:
        ci = "–" if c.ci_low is None or c.ci_high is None else f"[{signed(100 * c.ci_low)}, {signed(100 * c.ci_high)}]"
        res = 1 / max(getattr(c, "n_resamples", 0) or 1000, 1)
        cells: list[str | Cell] = [c.row, c.reference, short_task(c.task), str(c.seed),
                                   Cell(signed(100 * c.diff), "good" if c.diff > 0 else "bad" if c.diff < 0 else ""),
                                   ci, format_p(c.p_bootstrap, resolution=res), format_p(c.p_mcnemar, exact=True),
                                   f"{c.only_row} / {c.only_reference}"]
        body.append(cells + ([label] if len(runs) > 1 else []))
    heads = ["row", "reference", "task", "seed", "diff (pts)", "95% CI", "p (bootstrap)", "p (McNemar)",
             "only row / only ref"] + (["run"] if len(runs) > 1 else [])
    sec.blocks.append(Table(heads, body, caption="paired bootstrap over instances and exact McNemar test; "
                            "p below the bootstrap's resolution prints as '< 1e-3'"))
    return sec


CORRELATION_HEADS = ("benchmark", "metric", "TED slice", "n", "Pearson r", "p", "r 95% CI (bootstrap)", "Spearman ρ",
                     "p", "Kendall τ", "p")
SPEARMAN_NOTE = ("scipy's Spearman p is a t approximation, undefined at |ρ| = 1: read Kendall's exact p for a "
                 "handful of points")


def correlation_rows(result: CorrelateResult) -> list[list[str]]:
    """One row of `CORRELATION_HEADS` per (benchmark, metric, TED slice); a skipped one says why."""
    rows = []
    for line in result.lines:
        c = line.correlation
        head = [line.benchmark, line.metric, "overall" if line.category == "all" else line.category, str(line.n)]
        if c is None:
            rows.append(head + [f"– ({line.skipped})", *["–"] * 6])
            continue
        rho_p = "n/a (|ρ| = 1)" if abs(c.spearman_rho) == 1 else format_p(c.spearman_p, exact=True)
        rows.append(head + [f"{c.pearson_r:.4f}", format_p(c.pearson_p, exact=True),
                            f"[{c.r_ci_low:.3f}, {c.r_ci_high:.3f}]", f"{c.spearman_rho:.4f}", rho_p,
                            f"{c.kendall_tau:.4f}", format_p(c.kendall_p, exact=True)])
    return rows


def correlation_png(result: CorrelateResult) -> bytes | None:
    """The scatter of TED (overall) against each downstream metric, points labelled, with its fit line."""
    panels = [ScatterPanel(f"{line.benchmark} — {line.metric}", [p.ted for p in line.points],
                           [p.value for p in line.points], [f"{p.encoder}/{p.extractor}" for p in line.points],
                           stats="" if line.correlation is None else
                           f"r = {line.correlation.pearson_r:.4f}, p = {format_p(line.correlation.pearson_p, exact=True)}"
                           f", n = {line.n}", ylabel=line.metric)
              for line in result.lines if line.category == "all" and line.points]
    return scatter_png(panels)


def correlation_section(result: CorrelateResult) -> Section:
    """TED against each downstream metric: r, ρ, τ with p, a bootstrap CI for r, n; and the scatter."""
    sec = Section("correlation", "TED vs downstream")
    series = ", ".join(f"{k} {v}" for k, v in (("task", result.task), ("aggregator", result.aggregator)) if v)
    sec.blocks.append(Para(f"TED from {', '.join(result.ted_sources)}{f' ({series})' if series else ''}; downstream "
                           f"from {result.downstream}. Rows joined on encoder/extractor."))
    body: list[list[str | Cell]] = [[Cell(c, "dim") if c.startswith("– (") else c for c in row]
                                    for row in correlation_rows(result)]
    sec.blocks.append(Table(CORRELATION_HEADS, body, caption=SPEARMAN_NOTE))
    for note in [*result.notes, *(["downstream rows with no TED row: " + ", ".join(result.unmatched)]
                                  if result.unmatched else [])]:
        sec.blocks.append(Para(note, "note"))
    png = correlation_png(result)
    sec.blocks.append(Figure("correlation", png, "TED accuracy against each downstream metric, least-squares line")
                      if png else Para(NO_MPL, "note"))
    return sec


def samples_section(downstream: str | Path) -> Section | None:
    """Generator samples next to a downstream file written by ``harness score``: its scores with their
    intervals, and each row's sample grid (prompt under each picture) and layer-weight path."""
    from harness.downstream.rows import read_downstream_file

    path = Path(downstream)
    rows_dir = path.parent / "rows"
    if not path.is_file() or not rows_dir.is_dir():
        return None
    sec = Section("generator-samples", "Generator samples")
    metrics: dict[str, dict[str, str]] = {}
    for row, m in read_downstream_file(path):
        if ":" in m.metric:
            continue
        ci = f" [{m.ci[0]:.3f}, {m.ci[1]:.3f}]" if m.ci else ""
        metrics.setdefault(f"{row.encoder}/{row.extractor}", {})[f"{m.benchmark} {m.metric}"] = f"{m.value:.3f}{ci}"
    heads = list(dict.fromkeys(k for v in metrics.values() for k in v))
    sec.blocks.append(Table(["row", *heads], [[r, *(v.get(h, "–") for h in heads)] for r, v in metrics.items()],
                            caption=f"from {path}; intervals: 95% bootstrap over the held-out prompts"))
    for folder in sorted(p for p in rows_dir.iterdir() if p.is_dir()):
        for name, what in (("grid.png", "samples, the prompt under each (checker score in brackets)"),
                           ("omega.png", "layer weights ω learned with the generator")):
            if (folder / name).is_file():
                sec.blocks.append(Figure(f"{folder.name}-{name[:-4]}", (folder / name).read_bytes(),
                                         f"{folder.name.replace('--', '/')}: {what}"))
    return sec


def _short(text: str | None, n: int = 12) -> str:
    return "–" if not text else text[:n]


def _encoder_args(args: dict[str, Any]) -> str:
    """An encoder's own ``[key=value,...]`` settings, as given on ``--encoders``."""
    from harness._encoder_args import format_encoder_args

    return format_encoder_args(args)[1:-1] or "–"


def provenance_section(runs: Sequence[tuple[str, RunResult]]) -> Section:
    """Checkpoints, revisions, tasks, pairs, hyper-parameters and versions behind every number."""
    sec = Section("provenance", "Provenance")
    run_rows, enc_rows, task_rows, train_rows = [], [], [], []
    for label, res in runs:
        p, o = res.provenance, res.provenance.options
        v = p.versions
        git = "–" if not p.harness_git else p.harness_git[:12] + ("-dirty" if p.harness_git.endswith("-dirty") else "")
        run_rows.append([label, git, p.started or "–", f"{p.seconds:g}s",
                         ",".join(map(str, o.get("seeds") or [])) or "–", str(o.get("bootstrap", "–")),
                         str(o.get("null_resamples", "–")), str(o.get("aggregator", "–")),
                         ", ".join(f"{k} {v.get(k) or '–'}" for k in ("python", "torch", "transformers", "numpy"))])
        for name, e in p.encoders.items():
            enc_rows.append([name, e.family, e.checkpoint, e.revision or "unpinned", str(e.num_layers), str(e.width),
                             str(e.options.get("dtype", "–")), e.template or str(e.options.get("template", "–")),
                             str(e.max_length or e.options.get("max_length_effective") or e.options.get("max_length", "–")),
                             _encoder_args(e.args), str(e.texts_encoded), label])
        for set_name, ts in p.tasks.items():
            for task, tp in ts.tasks.items():
                task_rows.append([short_task(set_name), task_label(short_task(task), tp.version, tp.sha256), tp.source,
                                  tp.revision or "–", tp.category_version or "–", str(ts.n), label])
        for t in res.training:
            c = t.config
            train_rows.append([f"{t.encoder} / {t.extractor} / {t.aggregator}", str(t.seed), t.pairs.source,
                               f"{t.pairs.n}/{t.pairs.n_available}", _short(t.pairs.sha256),
                               *(str(c.get(k, "–")) for k in ("preset", "lr", "epochs", "batch_size", "temperature")),
                               str(t.steps), _short(t.checkpoint_sha256), label])
    sec.blocks.append(Table(["run", "harness git", "started", "time", "seeds", "bootstrap", "null resamples",
                             "aggregator", "versions"], run_rows))
    if enc_rows:
        sec.blocks.append(Table(["encoder", "family", "checkpoint", "revision", "layers", "width", "dtype", "template",
                                 "max length", "own settings", "texts", "run"], enc_rows))
    if task_rows:
        sec.blocks.append(Table(["task", "task file (version, data sha256)", "source", "revision", "category version",
                                 "n", "run"], task_rows))
    if train_rows:
        sec.blocks.append(Table(["aggregator", "seed", "pairs", "pairs used", "pairs sha256", "preset", "lr", "epochs",
                                 "batch", "temperature", "steps", "checkpoint sha256", "run"], train_rows))
    return sec


def build_report(runs: Sequence[tuple[str, RunResult]], *, baseline: str | None = None,
                 correlation: CorrelateResult | None = None, downstream: str | Path | None = None) -> list[Section]:
    """Every section the runs have data for, in reading order (``downstream``: a ``harness score``
    file, whose sample grids get a section)."""
    board = Board.build(runs)
    sections = [leaderboard_section(board), paper_section(runs), category_section(board, baseline), sweep_section(board),
                weights_section(runs), seed_section(board), comparison_section(runs),
                None if correlation is None else correlation_section(correlation),
                None if downstream is None else samples_section(downstream), provenance_section(runs)]
    return [s for s in sections if s is not None]


def write_report(runs: Sequence[tuple[str, RunResult]], out_dir: str | Path, *, baseline: str | None = None,
                 correlation: CorrelateResult | None = None, title: str = "TED-6K report",
                 downstream: str | Path | None = None) -> list[Path]:
    """Write ``report.md`` (figures as ``report-*.png`` beside it, an earlier report's removed) and a
    self-contained ``report.html``, each file atomically."""
    sections = build_report(runs, baseline=baseline, correlation=correlation, downstream=downstream)
    from harness._atomic import atomic_write  # the one atomic writer of every command's outputs

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [atomic_write(out / f"report-{fig.name}.png", fig.png) for sec in sections for fig in sec.figures]
    for old in out.glob("report-*.png"):  # an earlier report's figures must not sit beside this one
        if old not in paths:
            old.unlink()
    tasks = sorted({short_task(r.task) for _, res in runs for r in res.scores})
    subtitle = f"{len(runs)} run(s): {', '.join(label for label, _ in runs)}; tasks: {', '.join(tasks) or '–'}"
    atomic_write(out / "report.md", to_markdown(title, sections))
    atomic_write(out / "report.html", to_html(title, sections, subtitle=subtitle))
    return [out / "report.md", out / "report.html", *paths]
