"""The report's figures, drawn with matplotlib (Agg) into PNG bytes.

Each function takes plain numbers and returns the PNG, or None when matplotlib is not
installed (the report then says so and keeps its tables).  matplotlib is imported inside
the functions, so importing this module stays cheap.
"""

from __future__ import annotations

import io
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.evaluation.results import TrainingRecord

__all__ = ["Curve", "ScatterPanel", "bars_png", "heatmap_png", "layer_weights_png", "scatter_png",
           "seeds_png", "sweep_png"]

_BLUE, _GREY, _RED = "#2f6db5", "#8a93a3", "#c0392b"


@dataclass(frozen=True)
class Curve:
    """Accuracy (percent) against layer index for one encoder (and aggregator)."""

    label: str
    layers: Sequence[int]
    values: Sequence[float]
    lows: Sequence[float] | None = None
    highs: Sequence[float] | None = None
    refs: Sequence[tuple[str, float]] = field(default_factory=tuple)  # (extractor, accuracy) lines


@dataclass(frozen=True)
class ScatterPanel:
    """One (benchmark, metric): TED (x) against downstream value (y), labelled points."""

    title: str
    xs: Sequence[float]
    ys: Sequence[float]
    labels: Sequence[str]
    stats: str = ""
    xlabel: str = "TED accuracy (%)"
    ylabel: str = ""


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(plt: Any, fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


def bars_png(labels: Sequence[str], values: Sequence[float], lows: Sequence[float | None],
             highs: Sequence[float | None], *, chance: float | None = None,
             null: Sequence[float | None] = (), title: str = "") -> bytes | None:
    """Horizontal bars (percent) with 95% CI whiskers, the chance level and each row's permutation null."""
    plt = _pyplot()
    if plt is None:
        return None
    fig, ax = plt.subplots(figsize=(9, 0.42 * len(labels) + 1.4))
    ys = list(range(len(labels)))[::-1]
    err = [[v - (lo if lo is not None else v) for v, lo in zip(values, lows)],
           [(hi if hi is not None else v) - v for v, hi in zip(values, highs)]]
    ax.barh(ys, values, color=_BLUE, alpha=0.85, xerr=err, capsize=3, error_kw={"lw": 1, "ecolor": "#333"})
    for y, nv in zip(ys, null):
        if nv is not None:
            ax.plot([nv, nv], [y - 0.4, y + 0.4], color=_RED, lw=2)
    if chance is not None:
        ax.axvline(chance, color=_GREY, ls="--", lw=1, label=f"chance {chance:.1f}%")
    if any(n is not None for n in null):
        ax.plot([], [], color=_RED, lw=2, label="permutation null (mean)")
    ax.set_yticks(ys, labels, fontsize=8)
    ax.set_xlim(0, 100)
    ax.set_xlabel("accuracy (%), 95% CI")
    ax.set_title(title, fontsize=10)
    if chance is not None or any(n is not None for n in null):
        ax.legend(fontsize=7, loc="lower right")
    return _png(plt, fig)


def heatmap_png(rows: Sequence[str], cols: Sequence[str], deltas: Sequence[Sequence[float | None]],
                *, title: str = "") -> bytes | None:
    """Points above (green) or below (red) the baseline row, per row and category."""
    plt = _pyplot()
    if plt is None:
        return None
    import numpy as np

    grid = np.array([[np.nan if d is None else d for d in row] for row in deltas], dtype=float)
    lim = max(1.0, float(np.nanmax(np.abs(grid))) if np.isfinite(grid).any() else 1.0)
    fig, ax = plt.subplots(figsize=(1.0 * len(cols) + 3.2, 0.42 * len(rows) + 1.6))
    im = ax.imshow(np.ma.masked_invalid(grid), cmap="RdYlGn", vmin=-lim, vmax=lim, aspect="auto")
    for i, row in enumerate(deltas):
        for j, d in enumerate(row):
            ax.text(j, i, "–" if d is None else f"{d:+.1f}", ha="center", va="center", fontsize=7)
    ax.set_xticks(range(len(cols)), cols, rotation=35, ha="right", fontsize=8)
    ax.set_yticks(range(len(rows)), rows, fontsize=8)
    fig.colorbar(im, ax=ax, label="Δ points vs baseline", shrink=0.8)
    ax.set_title(title, fontsize=10)
    return _png(plt, fig)


def sweep_png(curves: Sequence[Curve], *, title: str = "") -> bytes | None:
    """Accuracy against layer index, one line per encoder, with its CI band and the fused rows as lines."""
    plt = _pyplot()
    if plt is None:
        return None
    fig, ax = plt.subplots(figsize=(9, 4.2))
    colors = plt.get_cmap("tab10")
    for i, c in enumerate(curves):
        color = colors(i % 10)
        ax.plot(c.layers, c.values, marker="o", ms=3, lw=1.5, color=color, label=c.label)
        if c.lows is not None and c.highs is not None:
            ax.fill_between(c.layers, c.lows, c.highs, color=color, alpha=0.12)
        for j, (name, value) in enumerate(c.refs):
            ax.axhline(value, color=color, lw=1, ls=(0, (4, 2 + 2 * j)), alpha=0.8)
            ax.annotate(name, (c.layers[-1], value), fontsize=7, color=color, ha="right", va="bottom")
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("layer (0 = embedding output)")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7)
    return _png(plt, fig)


def seeds_png(labels: Sequence[str], means: Sequence[float], stds: Sequence[float], mins: Sequence[float],
              maxs: Sequence[float], *, title: str = "") -> bytes | None:
    """Mean over seeds with ± std (thick) and the full range (thin), percent."""
    plt = _pyplot()
    if plt is None:
        return None
    fig, ax = plt.subplots(figsize=(9, 0.42 * len(labels) + 1.4))
    ys = list(range(len(labels)))[::-1]
    ax.hlines(ys, mins, maxs, color=_GREY, lw=1.5, label="range")
    ax.hlines(ys, [m - s for m, s in zip(means, stds)], [m + s for m, s in zip(means, stds)], color=_BLUE, lw=5,
              alpha=0.6, label="± std")
    ax.plot(means, ys, "o", color=_BLUE, label="mean")
    ax.set_yticks(ys, labels, fontsize=8)
    ax.set_xlabel("accuracy (%) over seeds")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7)
    return _png(plt, fig)


def scatter_png(panels: Sequence[ScatterPanel]) -> bytes | None:
    """One scatter per (benchmark, metric): labelled points and their least-squares line."""
    plt = _pyplot()
    if plt is None or not panels:
        return None
    import numpy as np

    cols = min(2, len(panels))
    nrows = (len(panels) + cols - 1) // cols
    fig, axes = plt.subplots(nrows, cols, figsize=(6.2 * cols, 4.6 * nrows), squeeze=False)
    for ax, p in zip(axes.flat, panels):
        ax.scatter(p.xs, p.ys, color=_BLUE, zorder=3)
        xspan = (max(p.xs) - min(p.xs)) or 1.0
        yspan = (max(p.ys) - min(p.ys)) or 1.0
        placed: list[tuple[float, float]] = []
        for x, y, label in sorted(zip(p.xs, p.ys, p.labels)):
            # Labels of points within a few % of each other stack upwards instead of overprinting.
            near = sum(abs(x - px) < 0.08 * xspan and abs(y - py) < 0.05 * yspan for px, py in placed)
            placed.append((x, y))
            ax.annotate(label, (x, y), textcoords="offset points", xytext=(5, 4 + 11 * near), fontsize=7)
        if len(set(p.xs)) > 1:
            slope, icpt = np.polyfit(p.xs, p.ys, 1)
            xs = np.linspace(min(p.xs), max(p.xs), 50)
            ax.plot(xs, slope * xs + icpt, color=_RED, lw=1.2, label="least-squares fit")
            ax.legend(fontsize=7, loc="lower right")
        ax.set_title(p.title + (f"\n{p.stats}" if p.stats else ""), fontsize=9)
        ax.set_xlabel(p.xlabel)
        ax.set_ylabel(p.ylabel or "downstream")
        ax.margins(0.15)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_axis_off()
    return _png(plt, fig)


def layer_weights_png(training: Sequence[TrainingRecord]) -> bytes | None:
    """The learned layer weights figure of `harness.report.plots.write_layer_weights` (final α and α per step)."""
    from harness.report.plots import write_layer_weights

    with tempfile.TemporaryDirectory() as tmp:
        paths = write_layer_weights(training, tmp)
        png = [p for p in paths if Path(p).suffix == ".png"]
        return Path(png[0]).read_bytes() if png else None
