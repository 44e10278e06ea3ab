"""Rich tables in the shape of the paper's Tables 1-2: rows = encoder x extractor, columns = slices."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from rich.table import Table

from harness.data.categories import CATEGORIES
from harness.data.versioning import task_label
from harness.evaluation.reference import PaperValue, is_ted6k_task, reference_for
from harness.evaluation.results import RunResult, ScoreRecord

__all__ = ["comparison_table", "format_p", "result_tables"]


def _cell(records: Sequence[ScoreRecord], *, with_ci: bool) -> str:
    vals = [r.value for r in records]
    if len(vals) == 1:
        r = records[0]
        ci = "" if r.ci_low is None or r.ci_high is None or not with_ci else f" [{100 * r.ci_low:.1f},{100 * r.ci_high:.1f}]"
        return f"{100 * r.value:.1f}{ci}"
    mean = sum(vals) / len(vals)
    return f"{100 * mean:.1f} r{100 * (max(vals) - min(vals)):.1f}"


def _columns(records: Sequence[ScoreRecord]) -> list[tuple[str, str]]:
    """Overall, each category, each caption type (category x caption type slices stay in results.json)."""
    cats = {r.category for r in records if r.category != "all"}
    ordered = [c for c in CATEGORIES if c in cats] + sorted(cats - set(CATEGORIES))
    ctypes = sorted({r.caption_type for r in records if r.caption_type != "all"})
    return [("all", "all"), *((c, "all") for c in ordered), *(("all", t) for t in ctypes)]


def _null_cell(records: Sequence[ScoreRecord]) -> str:
    nulls = [r for r in records if r.null_mean is not None]
    if not nulls:
        return "-"
    mean = sum(r.null_mean or 0.0 for r in nulls) / len(nulls)
    if len(nulls) == 1 and nulls[0].null_low is not None and nulls[0].null_high is not None:
        return f"{100 * mean:.1f} [{100 * nulls[0].null_low:.1f},{100 * nulls[0].null_high:.1f}]"
    return f"{100 * mean:.1f}"


def _chance_line(records: Sequence[ScoreRecord]) -> str:
    overall = [r for r in records if r.category == "all" and r.caption_type == "all" and r.chance is not None]
    if not overall:
        return ""
    line = f"chance (mean 1/k over the instances): {100 * (overall[0].chance or 0.0):.1f}%"
    if any(r.null_mean is not None for r in records):
        line += "; null = accuracy with every caption swapped for another (permutation null, mean [95% interval])"
    return line


def _data_lines(result: RunResult, task: str) -> str:
    """"\ndata: ted-open-action v1 (sha256 1a2b3c4d…)", one line per task file behind ``task`` (none unrecorded)."""
    prov = result.provenance.tasks.get(task)
    if prov is None:
        return ""
    return "".join(f"\ndata: {task_label(name, tp.version, tp.sha256)}" for name, tp in prov.tasks.items())


def _paper_cells(records: Sequence[ScoreRecord], ref: PaperValue | None) -> list[str]:
    if ref is None:
        return ["-", "-"]
    mean = sum(r.value for r in records) / len(records)
    return [f"{ref.value:.2f} (T{ref.table})", f"{100 * mean - ref.value:+.1f}"]


def _reference_note(rows: Sequence[tuple[str, str, str]], refs: dict[tuple[str, str, str, str, str], PaperValue],
                    task: str) -> str:
    without = [" / ".join(row) for row in rows if (task, *row, "all") not in refs]
    line = "paper = GRAN-TED's value for the same encoder and setting (T = its table); Δ = ours - paper, points"
    return line + (f"\nno paper value for: {', '.join(without)}" if without else "")


def result_tables(result: RunResult) -> list[Table]:
    """One table per task.  Cells: accuracy % with 95% CI; with several seeds: mean ± half-range.

    On TED-6K itself, each row also shows the paper's value for its setting and the difference."""
    tables = []
    refs = reference_for(result)
    by_task: dict[str, list[ScoreRecord]] = defaultdict(list)
    for r in result.scores:
        by_task[r.task].append(r)
    for task, records in by_task.items():
        n_seeds = len({r.seed for r in records})
        cols = _columns(records)
        control = records[0].control
        title = f"{task}: accuracy (%)" + (f" — control: {control}" if control else "")
        caption = ("overall: 95% bootstrap CI in brackets; per-slice CIs in results.json" if n_seeds == 1
                   else f"mean and range (r, points) over {n_seeds} seeds; CIs in results.json")
        chance = _chance_line(records)
        if chance:
            caption += "\n" + chance
        caption += _data_lines(result, task)
        table = Table(title=title, caption=caption, show_lines=False)
        for head in ("encoder", "extractor", "aggregator"):
            table.add_column(head, style="bold" if head == "encoder" else None)
        for cat, ctype in cols:
            n = max((r.n for r in records if r.category == cat and r.caption_type == ctype), default=0)
            label = "overall" if (cat, ctype) == ("all", "all") else (cat if ctype == "all" else ctype)
            table.add_column(f"{label}\n(n={n})", justify="right")
        with_null = any(r.null_mean is not None for r in records)
        if with_null:
            table.add_column("null\n(overall)", justify="right", style="dim")
        with_paper = is_ted6k_task(result, task) and not control
        if with_paper:
            table.add_column("paper\n(overall)", justify="right")
            table.add_column("Δ\n(points)", justify="right")
        cells: dict[tuple[Any, ...], list[ScoreRecord]] = defaultdict(list)
        rows: list[tuple[str, str, str]] = []
        for r in records:
            if r.category != "all" and r.caption_type != "all":
                continue  # category x caption type: in results.json and the report
            row = (r.encoder, r.extractor, r.aggregator)
            if row not in rows:
                rows.append(row)
            cells[(row, r.category, r.caption_type)].append(r)
        for row in rows:
            values = [_cell(cells[(row, c, t)], with_ci=(c, t) == ("all", "all")) if cells[(row, c, t)] else "-"
                      for c, t in cols]
            if with_null:
                values.append(_null_cell(cells[(row, "all", "all")]))
            if with_paper:
                values += _paper_cells(cells[(row, "all", "all")], refs.get((task, *row, "all")))
            table.add_row(*row, *values)
        if with_paper:
            table.caption = f"{table.caption}\n{_reference_note(rows, refs, task)}"
        tables.append(table)
    return tables


def comparison_table(result: RunResult) -> Table | None:
    """Paired tests of each row against the first row (same instances)."""
    if not result.comparisons:
        return None
    boot = any(c.p_bootstrap is not None for c in result.comparisons)
    heads = ["task", "seed", "row", "reference", "diff (pts)", *(("95% CI", "p (bootstrap)") if boot else ()),
             "p (McNemar)"]
    table = Table(title="paired comparisons vs the first row (same instances)")
    for head in heads:
        table.add_column(head, justify="right" if head not in ("task", "row", "reference") else "left")
    for c in result.comparisons:
        cells = [c.task, str(c.seed), c.row, c.reference, f"{100 * c.diff:+.1f}"]
        if boot:
            ci = "-" if c.ci_low is None or c.ci_high is None else f"[{100 * c.ci_low:+.1f},{100 * c.ci_high:+.1f}]"
            cells += [ci, format_p(c.p_bootstrap, resolution=1 / max(c.n_resamples, 1))]
        table.add_row(*cells, format_p(c.p_mcnemar, exact=True))
    return table


def format_p(p: float | None, *, exact: bool = False, resolution: float = 1e-3, missing: str = "-") -> str:
    """A p-value for people: 3 significant digits, never "0".

    Below ``resolution`` a resampled p prints "< 1e-3" (a bootstrap p of 0 means below 1/resamples);
    an ``exact`` (analytic) p keeps its small value in scientific notation ("1.0e-05")."""
    if p is None or p != p:
        return missing
    if p >= resolution:
        return f"{p:.3g}"
    if exact and p > 0:
        return f"{p:.1e}"
    return f"< {resolution:.0e}".replace("e-0", "e-")

