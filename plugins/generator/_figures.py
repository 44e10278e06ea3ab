"""Figures of one toy-t2i row: a grid of samples with their prompts, and the layer-weight path ω.

matplotlib is imported inside the functions (Agg backend), like `harness.report.plots`.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

__all__ = ["omega_png", "sample_grid_png"]


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def sample_grid_png(images: Sequence[NDArray[np.uint8]], prompts: Sequence[str], path: str | Path, *,
                    title: str = "", scores: Sequence[float] | None = None, cols: int = 8) -> Path:
    """A grid of ``images`` (``[H, W, 3]`` uint8), the prompt under each picture (and its checker score)."""
    plt = _plt()
    n = len(images)
    cols = max(1, min(cols, n))
    rows = max(1, -(-n // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(1.9 * cols, 2.75 * rows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.set_xticks([])
        ax.set_yticks([])
        if i >= n:
            ax.set_axis_off()
            continue
        ax.imshow(images[i], interpolation="nearest")
        label = textwrap.fill(prompts[i], 30, max_lines=6, placeholder=" …")
        if scores is not None:
            label += f"\n[checker {100 * scores[i]:.0f}%]"
        ax.set_xlabel(label, fontsize=5.5, linespacing=1.1)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def omega_png(omega: Sequence[Sequence[float]], layers: Sequence[int], path: str | Path, *, n1: int | None,
              title: str = "") -> Path:
    """ω per layer against the training step (the paper's Figure 4), axis from 0, N1 marked."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 3.4))
    cmap = plt.get_cmap("viridis")
    steps = range(1, len(omega) + 1)
    for j, layer in enumerate(layers):
        ax.plot(steps, [w[j] for w in omega], color=cmap(j / max(1, len(layers) - 1)), lw=1, label=f"layer {layer}")
    ax.axhline(1 / len(layers), color="grey", lw=0.8, ls=":", label="uniform (Norm-Avg)")
    if n1 is not None and 0 < n1 < len(omega):
        ax.axvline(n1, color="black", lw=0.8, ls="--", label=f"N1 = {n1} (ω frozen after)")
    top = max(max(w) for w in omega) if omega else 1.0
    ax.set_ylim(0, max(top * 1.15, 2 / len(layers)))
    ax.set_xlabel("generator training step")
    ax.set_ylabel("ω")
    ax.set_title(title or "layer weights learned with the generator", fontsize=9)
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
