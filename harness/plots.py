"""Figures written next to results: learned layer weights (paper Figure 4) and loss curves."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.results import TrainingRecord

__all__ = ["write_layer_weights"]


def write_layer_weights(training: Sequence[TrainingRecord], out_dir: str | Path) -> list[Path]:
    """Write ``layer_weights.json`` and ``layer_weights.png`` for every learned-weights run."""
    runs = [t for t in training if t.layer_weights]
    if not runs:
        return []
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data: list[dict[str, Any]] = [{"encoder": t.encoder, "extractor": t.extractor, "seed": t.seed, "layers": t.layers,
                                   "layer_weights": t.layer_weights} for t in runs]
    paths = [out / "layer_weights.json"]
    paths[0].write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return paths
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for t in data:
        w: list[float] = t["layer_weights"] or []
        ax.plot(t["layers"] or list(range(len(w))), w, marker="o", ms=3, label=f"{t['encoder']} {t['extractor']} s{t['seed']}")
        ax.axhline(1 / len(w), color="grey", lw=0.6, ls=":")
    ax.set_xlabel("layer (0 = embedding output)")
    ax.set_ylabel("softmax weight α")
    ax.set_title("learned layer weights")
    ax.legend(fontsize=7)
    fig.tight_layout()
    paths.append(out / "layer_weights.png")
    fig.savefig(paths[-1], dpi=120)
    plt.close(fig)
    return paths
