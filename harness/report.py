"""Rich tables in the shape of the paper's Tables 1-2: rows = encoder x extractor, columns = slices."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from rich.table import Table

from harness.categories import CATEGORIES
from harness.results import RunResult, ScoreRecord

__all__ = ["comparison_table", "result_tables"]


def _cell(records: Sequence[ScoreRecord], *, with_ci: bool) -> str:
    vals = [r.value for r in records]
    if len(vals) == 1:
        r = records[0]
        ci = "" if r.ci_low is None or r.ci_high is None or not with_ci else f" [{100 * r.ci_low:.1f},{100 * r.ci_high:.1f}]"
        return f"{100 * r.value:.1f}{ci}"
    mean = sum(vals) / len(vals)
    return f"{100 * mean:.1f} r{100 * (max(vals) - min(vals)):.1f}"


def _columns(records: Sequence[ScoreRecord]) -> list[tuple[str, str]]:
    cats = {r.category for r in records if r.category != "all"}
    ordered = [c for c in CATEGORIES if c in cats] + sorted(cats - set(CATEGORIES))
    ctypes = sorted({r.caption_type for r in records if r.caption_type != "all"})
    return [("all", "all"), *((c, "all") for c in ordered), *(("all", t) for t in ctypes)]


def result_tables(result: RunResult) -> list[Table]:
    """One table per task.  Cells: accuracy % with 95% CI; with several seeds: mean ± half-range."""
    tables = []
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
        table = Table(title=title, caption=caption, show_lines=False)
        for head in ("encoder", "extractor", "aggregator"):
            table.add_column(head, style="bold" if head == "encoder" else None)
        for cat, ctype in cols:
            n = max((r.n for r in records if r.category == cat and r.caption_type == ctype), default=0)
            label = "overall" if (cat, ctype) == ("all", "all") else (cat if ctype == "all" else ctype)
            table.add_column(f"{label}\n(n={n})", justify="right")
        cells: dict[tuple[Any, ...], list[ScoreRecord]] = defaultdict(list)
        rows: list[tuple[str, str, str]] = []
        for r in records:
            row = (r.encoder, r.extractor, r.aggregator)
            if row not in rows:
                rows.append(row)
            cells[(row, r.category, r.caption_type)].append(r)
        for row in rows:
            table.add_row(*row, *(_cell(cells[(row, c, t)], with_ci=(c, t) == ("all", "all"))
                                  if cells[(row, c, t)] else "-" for c, t in cols))
        tables.append(table)
    return tables


def comparison_table(result: RunResult) -> Table | None:
    """Paired tests of each row against the first row (same instances)."""
    if not result.comparisons:
        return None
    table = Table(title="paired comparisons vs the first row (same instances)")
    for head in ("task", "seed", "row", "reference", "diff (pts)", "95% CI", "p (bootstrap)", "p (McNemar)"):
        table.add_column(head, justify="right" if head not in ("task", "row", "reference") else "left")
    for c in result.comparisons:
        table.add_row(c.task, str(c.seed), c.row, c.reference, f"{100 * c.diff:+.1f}",
                      f"[{100 * c.ci_low:+.1f},{100 * c.ci_high:+.1f}]", f"{c.p_bootstrap:.3g}", f"{c.p_mcnemar:.3g}")
    return table
