"""The accuracy sections of the report: leaderboard, categories vs a baseline, layer sweep, seeds.

`Board` merges the runs once: every (task, row, category) gets its accuracy over seeds
(`Acc`); the section builders only read it.  Tasks are named by their short name, rows by
``encoder / extractor / aggregator`` (plus the run when two runs hold the same row).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from harness._exceptions import ConfigError, unknown_name
from harness.data.categories import CATEGORIES
from harness.downstream.rows import short_task
from harness.report.figures import Curve, bars_png, heatmap_png, seeds_png, sweep_png
from harness.report.render import Cell, Figure, Para, Section, Table, pct, signed
from harness.evaluation.results import RunResult, ScoreRecord

__all__ = ["Acc", "Board", "RowId", "category_section", "leaderboard_section", "seed_section", "sweep_section"]

_LAYER = re.compile(r"^layer:(-?\d+)$")
NO_MPL = "(figure skipped: matplotlib is not installed -- pip install matplotlib)"


@dataclass(frozen=True)
class RowId:
    """A row of the leaderboard: (encoder, extractor, aggregator) of one run."""

    encoder: str
    extractor: str
    aggregator: str
    run: int
    control: str | None = None

    @property
    def key(self) -> str:
        return f"{self.encoder}/{self.extractor}/{self.aggregator}"


@dataclass(frozen=True)
class Acc:
    """Accuracy of one (task, row, slice): mean over seeds, with its 95% CI (union over seeds), as fractions."""

    value: float
    low: float | None
    high: float | None
    n: int
    seeds: int
    chance: float | None
    null: float | None
    null_low: float | None
    null_high: float | None


def _acc(records: Sequence[ScoreRecord]) -> Acc:
    def mean(xs: Sequence[float | None]) -> float | None:
        vals = [x for x in xs if x is not None]
        return sum(vals) / len(vals) if vals else None

    def edge(xs: Sequence[float | None], pick: Callable[[list[float]], float]) -> float | None:
        vals = [x for x in xs if x is not None]
        return pick(vals) if len(vals) == len(xs) and vals else None

    return Acc(value=sum(r.value for r in records) / len(records), low=edge([r.ci_low for r in records], min),
               high=edge([r.ci_high for r in records], max), n=max(r.n for r in records), seeds=len(records),
               chance=mean([r.chance for r in records]), null=mean([r.null_mean for r in records]),
               null_low=edge([r.null_low for r in records], min), null_high=edge([r.null_high for r in records], max))


@dataclass
class Board:
    """Every run's scores merged: accuracy per (task, row, category), rows in order of appearance."""

    runs: list[tuple[str, RunResult]]
    tasks: list[str] = field(default_factory=list)
    rows: dict[str, list[RowId]] = field(default_factory=dict)
    acc: dict[tuple[str, RowId, str], Acc] = field(default_factory=dict)
    labels: dict[RowId, str] = field(default_factory=dict)

    @classmethod
    def build(cls, runs: Sequence[tuple[str, RunResult]]) -> Board:
        board = cls(runs=list(runs))
        grouped: dict[tuple[str, RowId, str], list[ScoreRecord]] = defaultdict(list)
        for i, (_, result) in enumerate(runs):
            for r in result.scores:
                if r.caption_type == "all":
                    grouped[(short_task(r.task), RowId(r.encoder, r.extractor, r.aggregator, i, r.control), r.category)].append(r)
        for (task, row, cat), records in grouped.items():
            if task not in board.rows:
                board.tasks.append(task)
                board.rows[task] = []
            if row not in board.rows[task]:
                board.rows[task].append(row)
            board.acc[(task, row, cat)] = _acc(records)
        names: dict[tuple[str, str, str, str | None], set[int]] = defaultdict(set)
        for rows in board.rows.values():
            for row in rows:
                names[(row.encoder, row.extractor, row.aggregator, row.control)].add(row.run)
        for rows in board.rows.values():
            for row in rows:
                label = f"{row.encoder} / {row.extractor} / {row.aggregator}"
                if row.control:
                    label += f" (control: {row.control})"
                if len(names[(row.encoder, row.extractor, row.aggregator, row.control)]) > 1:
                    label += f" [{runs[row.run][0]}]"
                board.labels[row] = label
        return board

    def is_sweep(self, row: RowId) -> bool:
        """A ``layer:K`` row that an ``all-layers`` sweep produced (not one the user asked for by name)."""
        if not _LAYER.match(row.extractor):
            return False
        asked = self.runs[row.run][1].provenance.options.get("extract") or []
        return row.extractor not in asked

    def leaders(self, task: str) -> list[RowId]:
        return [r for r in self.rows[task] if not self.is_sweep(r)]

    def categories(self, task: str) -> list[str]:
        cats = {c for (t, _, c) in self.acc if t == task and c != "all"}
        return [c for c in CATEGORIES if c in cats] + sorted(cats - set(CATEGORIES))

    def layer_index(self, row: RowId) -> int | None:
        m = _LAYER.match(row.extractor)
        if m is None:
            return None
        enc = self.runs[row.run][1].provenance.encoders.get(row.encoder)
        resolved = (enc.extractors.get(row.extractor) or {}).get("resolved_layers") if enc else None
        if resolved:
            return int(resolved[0])
        k = int(m.group(1))
        return k if k >= 0 or enc is None else enc.num_layers + 1 + k


def _ci(a: Acc) -> str:
    return "–" if a.low is None or a.high is None else f"[{pct(a.low)}, {pct(a.high)}]"


def leaderboard_section(board: Board) -> Section:
    """Table 1 of the paper, per task: rows ranked by overall accuracy, CI, chance and permutation null."""
    sec = Section("leaderboard", "Leaderboard")
    sec.blocks.append(Para("Overall accuracy (%) of each encoder × extractor × aggregator, ranked; 95% bootstrap CI "
                           "over instances (with several seeds: the mean, and the union of the per-seed CIs). "
                           "Chance is the mean of 1/k over the instances; the permutation null is the accuracy with "
                           "every caption swapped for another. † marks a row whose CI reaches its null interval."))
    for task in board.tasks:
        rows = sorted(board.leaders(task), key=lambda r: -board.acc[(task, r, "all")].value)
        swept = len(board.rows[task]) - len(rows)
        body: list[list[str | Cell]] = []
        for rank, row in enumerate(rows, 1):
            a = board.acc[(task, row, "all")]
            near_null = a.low is not None and a.null_high is not None and a.low <= a.null_high
            null = "–" if a.null is None else pct(a.null) + (
                f" [{pct(a.null_low)}, {pct(a.null_high)}]" if a.null_low is not None and a.null_high is not None else "")
            body.append([str(rank), board.labels[row], Cell(pct(a.value) + (" †" if near_null else ""),
                         "bad" if near_null else ("good" if rank == 1 else "")), _ci(a), str(a.seeds), str(a.n),
                         pct(a.chance), Cell(null, "dim")])
        note = f"; {swept} layer:K rows of all-layers sweeps are in 'Layer sweep'" if swept else ""
        sec.blocks.append(Table(["#", "row (encoder / extractor / aggregator)", "accuracy", "95% CI", "seeds", "n",
                                 "chance", "null [95%]"], body, caption=f"task {task}{note}"))
        accs = [board.acc[(task, r, "all")] for r in rows]
        chance = next((a.chance for a in accs if a.chance is not None), None)
        png = bars_png([board.labels[r] for r in rows], [100 * a.value for a in accs],
                       [None if a.low is None else 100 * a.low for a in accs],
                       [None if a.high is None else 100 * a.high for a in accs],
                       chance=None if chance is None else 100 * chance,
                       null=[None if a.null is None else 100 * a.null for a in accs], title=f"{task}: overall accuracy")
        sec.blocks.append(Figure(f"leaderboard-{task}", png, f"{task}: overall accuracy with 95% CI, chance (dashed) "
                                 "and permutation null (red)") if png else Para(NO_MPL, "note"))
    return sec


def find_row(board: Board, task: str, spec: str | None) -> RowId:
    """The baseline row ``ENCODER/EXTRACTOR/AGGREGATOR`` of ``task`` (None: its first row)."""
    rows = board.leaders(task) or board.rows[task]
    if spec is None:
        return rows[0]
    matches = [r for r in board.rows[task] if r.key == spec]
    if not matches:
        raise unknown_name("baseline row", spec, [r.key for r in rows], hint="(--baseline ENCODER/EXTRACTOR/AGGREGATOR)")
    if len(matches) > 1 and not all(m.control for m in matches[1:]):
        raise ConfigError(f"--baseline {spec!r} is in several runs; the first run's row is used only when the "
                          "others are controls: report those runs separately")
    return matches[0]


def category_section(board: Board, baseline: str | None) -> Section | None:
    """Table 2 of the paper: accuracy per category, and points above/below the baseline row."""
    tasks = [t for t in board.tasks if board.categories(t)]
    if not tasks:
        return None
    sec = Section("categories", "Per category vs baseline")
    for task in tasks:
        base = find_row(board, task, baseline)
        cats = board.categories(task)
        rows = [base] + [r for r in board.leaders(task) if r != base]
        n = {c: max((a.n for (t, _, cc), a in board.acc.items() if t == task and cc == c), default=0)
             for c in ["all", *cats]}
        body: list[list[str | Cell]] = []
        deltas: list[list[float | None]] = []
        for row in rows:
            cells: list[str | Cell] = [Cell(board.labels[row], "base" if row == base else "")]
            drow: list[float | None] = []
            for c in ["all", *cats]:
                a, b = board.acc.get((task, row, c)), board.acc.get((task, base, c))
                if a is None:
                    cells.append("–")
                    drow.append(None)
                elif row == base or b is None:
                    cells.append(Cell(pct(a.value), "base" if row == base else ""))
                    drow.append(0.0 if row == base else None)
                else:
                    d = 100 * (a.value - b.value)
                    cells.append(Cell(f"{pct(a.value)} ({signed(d)})", "good" if d > 0 else "bad" if d < 0 else ""))
                    drow.append(d)
            body.append(cells)
            deltas.append(drow)
        heads = ["row", *(f"{'overall' if c == 'all' else c} (n={n[c]})" for c in ["all", *cats])]
        sec.blocks.append(Table(heads, body, caption=f"task {task}: accuracy (%) and, in brackets, points vs the "
                                f"baseline {board.labels[base]}"))
        png = heatmap_png([board.labels[r] for r in rows], ["overall", *cats], deltas,
                          title=f"{task}: points vs {board.labels[base]}")
        sec.blocks.append(Figure(f"categories-{task}", png, f"{task}: Δ accuracy (points) per category vs the "
                                 "baseline") if png else Para(NO_MPL, "note"))
    return sec


def sweep_section(board: Board) -> Section | None:
    """Accuracy against layer index from ``layer:K`` rows, one curve per (task, encoder, aggregator, run)."""
    curves: dict[tuple[str, str, str, int], list[tuple[int, RowId]]] = defaultdict(list)
    for task in board.tasks:
        for row in board.rows[task]:
            idx = board.layer_index(row)
            if idx is not None:
                curves[(task, row.encoder, row.aggregator, row.run)].append((idx, row))
    curves = {k: sorted(v, key=lambda p: p[0]) for k, v in curves.items() if len(v) >= 2}
    if not curves:
        return None
    sec = Section("layer-sweep", "Layer sweep")
    sec.blocks.append(Para("Accuracy of each single layer (all-layers rows), with the other extractors of the same "
                           "encoder (last, norm-avg, ...) as horizontal lines. The best layer is chosen on this data: an optimistic number."))
    body: list[list[str | Cell]] = []
    drawn: list[Curve] = []
    for (task, enc, agg, run), pts in curves.items():
        accs = [board.acc[(task, row, "all")] for _, row in pts]
        best = max(range(len(pts)), key=lambda i: accs[i].value)
        refs = [(r.extractor, board.acc[(task, r, "all")]) for r in board.leaders(task)
                if (r.encoder, r.aggregator, r.run) == (enc, agg, run) and board.layer_index(r) is None]
        label = f"{enc} / {agg}" + (f" [{board.runs[run][0]}]" if len(board.runs) > 1 else "") + (
            f" ({task})" if len(board.tasks) > 1 else "")
        body.append([label, str(len(pts)), f"{pts[best][0]}: {pct(accs[best].value)}",
                     f"{pts[-1][0]}: {pct(accs[-1].value)}",
                     ", ".join(f"{name} {pct(a.value)}" for name, a in refs) or "–"])
        full = all(a.low is not None and a.high is not None for a in accs)
        drawn.append(Curve(label, [p[0] for p in pts], [100 * a.value for a in accs],
                           [100 * (a.low or 0.0) for a in accs] if full else None,
                           [100 * (a.high or 0.0) for a in accs] if full else None,
                           [(name, 100 * a.value) for name, a in refs]))
    sec.blocks.append(Table(["encoder / aggregator", "layers", "best layer: acc", "last layer: acc",
                             "other extractors"], body))
    png = sweep_png(drawn, title="accuracy by layer (band: 95% CI)")
    sec.blocks.append(Figure("layer-sweep", png, "accuracy (%) against layer index; horizontal lines: the other extractors")
                      if png else Para(NO_MPL, "note"))
    return sec


def seed_section(board: Board) -> Section | None:
    """Spread over training seeds, from each run's seed_summary (overall slices)."""
    rows = [(i, s) for i, (_, res) in enumerate(board.runs) for s in res.seed_summary
            if s.category == "all" and s.caption_type == "all" and s.n_seeds >= 2
            and not board.is_sweep(RowId(s.encoder, s.extractor, s.aggregator, i, s.control))]
    if not rows:
        return None
    sec = Section("seeds", "Seed spread")
    labels, body = [], []
    for i, s in rows:
        label = f"{s.encoder} / {s.extractor} / {s.aggregator}" + (f" [{board.runs[i][0]}]" if len(board.runs) > 1 else "")
        label += f" ({short_task(s.task)})" if len(board.tasks) > 1 else ""
        labels.append(label)
        body.append([label, str(s.n_seeds), pct(s.mean), pct(s.std, 2), f"{pct(s.min)}–{pct(s.max)}", pct(s.range)])
    sec.blocks.append(Table(["row", "seeds", "mean", "std", "min–max", "range (pts)"], body,
                            caption="overall accuracy (%) over seeds; a range of 0 means the seeds agree exactly"))
    png = seeds_png(labels, [100 * s.mean for _, s in rows], [100 * s.std for _, s in rows],
                    [100 * s.min for _, s in rows], [100 * s.max for _, s in rows], title="accuracy over seeds")
    sec.blocks.append(Figure("seeds", png, "mean, ± std and range over seeds") if png else Para(NO_MPL, "note"))
    return sec
