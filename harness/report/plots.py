"""Figures written next to results: learned layer weights (final, and their path like the paper's Figure 4)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.evaluation.results import TrainingRecord

__all__ = ["write_layer_weights"]

MAX_PANELS = 6  # runs drawn in the figure (all of them go to the JSON)


def write_layer_weights(training: Sequence[TrainingRecord], out_dir: str | Path) -> list[Path]:
    """Write ``layer_weights.json`` (final α and α per recorded step) and ``layer_weights.png``
    for every learned-weights run.  α axes start at 0, so a change of 1e-4 never looks like a jump."""
    runs = [t for t in training if t.layer_weights]
    if not runs:
        return []
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data: list[dict[str, Any]] = [
        {"encoder": t.encoder, "extractor": t.extractor, "aggregator": t.aggregator, "seed": t.seed,
         "layers": t.layers, "layer_weights": t.layer_weights, "steps": t.layer_weight_steps,
         "trajectory": t.layer_weight_trajectory} for t in runs]
    paths = [out / "layer_weights.json"]
    paths[0].write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return paths
    shown = data[:MAX_PANELS]
    fig, axes = plt.subplots(len(shown), 2, figsize=(11, 3.2 * len(shown)), squeeze=False)
    for (final_ax, path_ax), t in zip(axes, shown):
        w: list[float] = t["layer_weights"]
        layers = t["layers"] or list(range(len(w)))
        label = f"{t['encoder']} {t['extractor']} {t['aggregator']} seed {t['seed']}"
        final_ax.bar(layers, w, color="tab:blue")
        final_ax.axhline(1 / len(w), color="grey", lw=0.8, ls=":", label="uniform (Norm-Avg)")
        final_ax.set_ylim(0, max(max(w) * 1.15, 2 / len(w)))
        final_ax.set_xlabel("layer (0 = embedding output)")
        final_ax.set_ylabel("final α")
        final_ax.set_title(label, fontsize=9)
        final_ax.legend(fontsize=7)
        traj, steps = t["trajectory"], t["steps"]
        if traj:
            cmap = plt.get_cmap("viridis")
            for j, layer in enumerate(layers):
                path_ax.plot(steps, [a[j] for a in traj], color=cmap(j / max(1, len(layers) - 1)), lw=1,
                             label=f"layer {layer}" if len(layers) <= 12 else None)
            path_ax.set_ylim(0, max(max(max(a) for a in traj) * 1.15, 2 / len(w)))
            path_ax.set_xlabel("training step")
            path_ax.set_ylabel("α")
            path_ax.set_title("α during training", fontsize=9)
            if len(layers) <= 12:
                path_ax.legend(fontsize=6, ncol=2)
        else:
            path_ax.set_axis_off()
    fig.tight_layout()
    paths.append(out / "layer_weights.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)
    return paths
