"""The ``toy-t2i`` scorer: train the toy generator on one row's features, then check its samples.

For a row (encoder, extractor) it renders ``n_train + n_heldout`` seeded scenes, reads their
captions' features through the run context ``harness score`` binds (``bind(context)``, a
`harness.downstream.context.ScoreContext`: the row's encoder with the options its TED run recorded,
its extractor view, the run's feature cache and dtype), trains `train_generator`, samples the
held-out captions and scores them with the checker.  Metrics (benchmark ``toy-t2i``):
``checker-acc`` and ``checker-acc:<category>`` (mean per-caption fraction of facts that hold,
in [0, 1], ``n`` = captions, with a 95% bootstrap interval over the captions) and
``denoise-loss`` (held-out ε-MSE, lower is better).  ``unconditioned`` trains on a zero text
condition; ``baseline`` also trains that model once (benchmark ``toy-t2i:uncond``) and adds
``checker-margin``: conditioned minus unconditioned on the same captions, with a paired
bootstrap interval.  With ``out_dir``, each row writes a sample grid (prompt under each
picture), per-caption scores and, for a stack view, the ω path (JSON and figure) and the final
ω in the format ``--layer-weights-file`` reads.
"""

from __future__ import annotations

import math

import json
import random
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness import ConfigError, DownstreamMetric, Encoder, ScoredRow

from harness_plugins.generator._captions import CATEGORIES, Caption, caption_scene
from harness_plugins.generator._checker import score_caption
from harness_plugins.generator._render import render
from harness_plugins.generator._scene import sample_scenes

if TYPE_CHECKING:
    from harness.api import ScoreContext

__all__ = ["BENCHMARK", "CONFIGS", "GRID_SIZE", "ToyT2IScorer", "make_config", "row_slug"]

BENCHMARK = "toy-t2i"
GRID_SIZE = 16  # held-out samples drawn in each row's grid
# name -> GeneratorConfig fields.  "cpu": one row (and the unconditioned baseline) in ~10 min on
# 2 cores; "gpu": 64 px, attention at two levels (docs: README "A small generator").
CONFIGS: dict[str, dict[str, Any]] = {
    "smoke": dict(channels=(16, 32), norm_groups=8, cross_dim=32, n_train=16, n_heldout=4, steps=4, batch=4,
                  n1=2, sample_steps=2, eval_batches=1),
    "cpu": dict(channels=(32, 64, 64), norm_groups=16, cross_dim=64, pooled=True, cond_drop=0.1, guidance=2.0,
                prediction="sample", beta_schedule="squaredcos_cap_v2", n_train=1024, n_heldout=128, steps=400,
                batch=32, lr=2e-3, n1=267, sample_steps=20),
    # 43 GFLOP per image per step (forward + backward, torch.utils.flop_counter): 12k steps of 128 = 66 PFLOP;
    # bf16 autocast on CUDA, NHWC convolutions, the UNet compiled (bench/gpu_scale_check.py times each apart)
    "gpu": dict(image_size=64, channels=(64, 128, 256, 256), norm_groups=32, cross_dim=256, attention_levels=2,
                pooled=True, cond_drop=0.1, guidance=3.0, n_train=20000, n_heldout=512, steps=12000, batch=128,
                lr=5e-4, n1=8000, sample_steps=50, channels_last=True, compile=True),
}


_MAX_INT = 10_000_000  # steps, batch, image counts: 12,000 steps of the gpu config is the most anyone runs


def _coerce(name: str, value: Any, default: Any) -> Any:
    """A config value given as text (``--option steps=300``) in the type of the field's default."""
    if not isinstance(value, str) or isinstance(default, str):
        return tuple(value) if isinstance(default, tuple) and isinstance(value, list) else value
    try:
        if isinstance(default, bool):
            if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(value)
            return value.lower() in ("true", "1", "yes")
        if isinstance(default, tuple):
            return tuple(int(v) for v in value.split(",") if v.strip())
        typed = type(default)(value)
        if isinstance(typed, float) and not (math.isfinite(typed) and typed >= 0):
            raise ConfigError(f"toy-t2i option {name}={value!r}: expected a finite number >= 0")
        if isinstance(typed, int) and not -_MAX_INT <= typed <= _MAX_INT:
            raise ConfigError(f"toy-t2i option {name}={value!r}: over the bound {_MAX_INT:,} (a bound against typos)")
        return typed
    except ValueError:
        raise ConfigError(f"toy-t2i option {name}={value!r}: expected {type(default).__name__}") from None


def make_config(name: str, **overrides: Any) -> Any:
    """The `GeneratorConfig` preset ``name`` (``smoke``, ``cpu`` or ``gpu``) with ``overrides``."""
    from harness_plugins.generator._model import GeneratorConfig

    if name not in CONFIGS:
        raise ConfigError(f"toy-t2i config {name!r} is not known; use one of: {', '.join(CONFIGS)}")
    base = GeneratorConfig(**CONFIGS[name])
    known = {f.name for f in fields(base)} - {"extra"}
    bad = sorted(set(overrides) - known)
    if bad:
        raise ConfigError(f"toy-t2i: unknown config option(s) {', '.join(bad)}; known: {', '.join(sorted(known))}")
    cfg = replace(base, **{k: _coerce(k, v, getattr(base, k)) for k, v in overrides.items()})
    if "steps" in overrides and "n1" not in overrides:  # keep the preset's share of steps that learn ω
        cfg = replace(cfg, n1=round(cfg.steps * base.n1 / base.steps))
    for k in ("steps", "batch", "n_train", "n_heldout", "sample_steps", "eval_batches", "image_size", "sync_every"):
        if getattr(cfg, k) < 1:
            raise ConfigError(f"toy-t2i option {k}={getattr(cfg, k)}: must be at least 1")
    if cfg.image_size % 32:
        raise ConfigError(f"toy-t2i option image_size={cfg.image_size}: must be a multiple of 32")
    if not -1 <= cfg.heldout_start <= cfg.n_train:
        raise ConfigError(f"toy-t2i option heldout_start={cfg.heldout_start}: must be -1 (after the training scenes) "
                          f"or between 0 and n_train ({cfg.n_train})")
    if not 0 <= cfg.n1 <= cfg.steps:
        raise ConfigError(f"toy-t2i option n1={cfg.n1}: must be between 0 and steps ({cfg.steps})")
    return cfg


def captions_for(n: int, seed: int) -> list[Caption]:
    return [caption_scene(s, random.Random(seed * 1_000_003 + i)) for i, s in enumerate(sample_scenes(n, seed))]


def split(cfg: Any) -> tuple[list[int], list[int]]:
    """(training, held-out) indices into the config's ``n_train + n_heldout`` seeded scenes: the held-out
    ones from ``heldout_start`` (-1: after the training ones), the training ones the rest.  The list is
    the same prefix for every length, so ``heldout_start=1024, n_heldout=128`` holds out the ``cpu``
    config's held-out prompts under any config (and trains on none of them)."""
    start = cfg.n_train if cfg.heldout_start < 0 else cfg.heldout_start
    held = list(range(start, start + cfg.n_heldout))
    return [i for i in range(cfg.n_train + cfg.n_heldout) if not start <= i < start + cfg.n_heldout], held


def row_slug(encoder: str, extractor: str) -> str:
    """A folder name for a row: ``minilm--layer_3``."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", f"{encoder}--{extractor}")


@dataclass
class _Result:
    """One trained model's held-out numbers: per-caption checker scores, loss, and what it was."""

    scores: list[dict[str, float]]
    loss: float
    source: str


def _mean_ci(values: Sequence[float]) -> tuple[float, tuple[float, float]]:
    from harness.api import mean_ci

    ci = mean_ci(values)
    return ci.value, (ci.low, ci.high)


class ToyT2IScorer:
    """See the module docstring.  `bind` takes the run context before `score`; ``encoders`` (name ->
    loaded encoder, used as they are) and ``cache_dir`` (a feature cache root; "none": RAM only) are
    applied on top of it.

    ``progress(description, total)`` (a `harness.features.store.ProgressFactory`) gets a bar per
    trained model, advanced once per training step.  ``tensorboard`` (a folder): each trained model's
    TensorBoard events (loss, lr, steps/s, ω per layer) go to ``tensorboard/<row folder>/``."""

    name = BENCHMARK

    def __init__(self, config: Any, *, unconditioned: bool = False, baseline: bool = False,
                 encoders: Mapping[str, Encoder] | None = None, out_dir: str | None = None,
                 progress: Callable[[str, int], Any] | None = None, cache_dir: str | None = None,
                 tensorboard: str | None = None) -> None:
        self.config, self.unconditioned, self.baseline = config, unconditioned, baseline
        self.encoders = dict(encoders or {})
        self.out_dir = out_dir
        self.progress = progress
        self.cache_dir = cache_dir  # None: the context's feature cache; "none": RAM only
        self.tensorboard = tensorboard  # None: no TensorBoard logs
        self._baseline: _Result | None = None
        self._context: ScoreContext | None = None

    def bind(self, context: ScoreContext) -> None:
        """Take the run context (`harness.downstream.context.ScoreContext`): every encoder and feature
        of a row comes from it."""
        if self.encoders:
            context = context.with_encoders(self.encoders)
        if self.cache_dir == "none":
            context = context.with_features(no_cache=True)
        elif self.cache_dir:
            context = context.with_features(cache_dir=self.cache_dir, no_cache=False)
        if self.tensorboard is None:  # `harness score`'s folder (OUT/tb, --tensorboard), unless given as an option
            self.tensorboard = context.tensorboard
        self._context = context

    def rows(self) -> Sequence[ScoredRow]:
        return []

    def describe(self) -> dict[str, Any]:
        """What `harness score` records: the config and the flags."""
        return {"scorer": BENCHMARK, "config": asdict(self.config), "unconditioned": self.unconditioned,
                "baseline": self.baseline}

    def _bound(self) -> ScoreContext:
        if self._context is None:
            raise ConfigError("toy-t2i: no run context; `harness score` binds one, and from Python call "
                              "scorer.bind(ScoreContext.create(pm, ...)) first (harness.downstream.context)")
        return self._context

    def score(self, row: ScoredRow) -> list[DownstreamMetric]:
        conditioned = not self.unconditioned
        res = self._run(row, conditioned=conditioned, folder=row_slug(row.encoder, row.extractor))
        out = _metrics(res, BENCHMARK if conditioned else f"{BENCHMARK}:uncond")
        if self.baseline:
            if self._baseline is None:  # the zero condition ignores the row: train it once (per out_dir)
                self._baseline = self._saved("uncond") or self._run(row, conditioned=False, folder="uncond")
            base = self._baseline
            out += _metrics(base, f"{BENCHMARK}:uncond")
            diff = [a["all"] - b["all"] for a, b in zip(res.scores, base.scores)]
            margin, ci = _mean_ci(diff)
            out.append(DownstreamMetric(BENCHMARK, "checker-margin", margin, len(diff),
                                        res.source + " minus the same model without text (paired)", ci))
        return out

    def _features(self, row: ScoredRow) -> tuple[Any, Any, Any, list[Caption]]:
        """(resolved extractor, features, mask, captions) of the row's train + held-out captions.

        From the bound context: the row's encoder formats the captions as its run did and the
        features come through the run's feature cache, so the encoder runs once per caption and
        view, across rows, reruns and the TED run itself."""
        cfg = self.config
        context = self._bound()
        encoder = context.encoder(row)
        caps = captions_for(cfg.n_train + cfg.n_heldout, cfg.seed)
        got = context.features(row, [encoder.format(c.text, role="caption") for c in caps], progress=self.progress)
        return got.extractor, got.features, got.mask, caps

    def _run(self, row: ScoredRow, *, conditioned: bool, folder: str) -> _Result:
        import numpy as np
        import torch

        from harness.api import open_training_log
        from harness_plugins.generator._model import denoising_loss, sample_images, train_generator

        cfg = self.config
        res, feats, mask, caps = self._features(row)
        if not conditioned:  # the model never sees the features; their shape is all it needs
            feats = torch.zeros_like(feats)
        imgs = np.stack([render(s, cfg.image_size) for s in sample_scenes(len(caps), cfg.seed)])
        x = torch.from_numpy(imgs).permute(0, 3, 1, 2).float() / 127.5 - 1
        n = cfg.n_train
        train_ix, held_ix = split(cfg)
        if cfg.heldout_start >= 0:  # the held-out scenes from the middle of the list: put them last
            order = torch.tensor(train_ix + held_ix)
            feats, mask, x, caps = feats[order], mask[order], x[order], [caps[i] for i in order.tolist()]
        what = f"{row.encoder}/{row.extractor}" if conditioned else "no text"
        bar = self.progress(f"toy-t2i {what}", cfg.steps) if self.progress else None
        log = open_training_log(self.tensorboard, folder, layers=res.view.layers if feats.dim() == 4 else ())
        try:
            gen = train_generator(cfg, feats[:n], mask[:n], x[:n], conditioned=conditioned,
                                  on_step=(lambda _step: bar.advance(1)) if bar is not None else None, log=log)
        finally:
            if log is not None:
                log.close()
        held = caps[n:]
        loss = denoising_loss(gen, feats[n:], mask[n:], x[n:], draws=cfg.eval_batches)
        samples = sample_images(gen, feats[n:], mask[n:], steps=cfg.sample_steps, guidance=cfg.guidance).numpy()
        scores = [score_caption(img, c.facts) for img, c in zip(samples, held)]
        source = f"toy-t2i {what}, {n} scenes, {cfg.steps} steps"
        if self.out_dir:
            self._write_row(Path(self.out_dir) / folder, gen, res, held, samples, scores, loss, source)
        return _Result(scores, loss, source)

    def _saved(self, folder: str) -> _Result | None:
        """A result this config wrote to ``out_dir/folder`` before (a rerun goes on), or None."""
        if not self.out_dir:
            return None
        try:
            data = json.loads((Path(self.out_dir) / folder / "samples.json").read_text(encoding="utf-8"))
            if data.get("config") != json.loads(json.dumps(asdict(self.config))):
                return None
            return _Result([c["scores"] for c in data["captions"]], float(data["denoise_loss"]), str(data["source"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _write_row(self, out: Path, gen: Any, res: Any, held: Sequence[Caption], samples: Any,
                   scores: Sequence[dict[str, float]], loss: float, source: str) -> None:
        from harness_plugins.generator._figures import omega_png, sample_grid_png
        from harness_plugins.generator._model import write_layer_weights

        cfg = self.config
        out.mkdir(parents=True, exist_ok=True)
        k = min(GRID_SIZE, len(held))
        sample_grid_png(list(samples[:k]), [c.text for c in held[:k]], out / "grid.png", title=source,
                        scores=[s["all"] for s in scores[:k]])
        (out / "samples.json").write_text(json.dumps({
            "source": source, "config": asdict(cfg), "denoise_loss": loss, "losses": gen.losses,
            "captions": [{"text": c.text, "scores": s} for c, s in zip(held, scores)]}, indent=1) + "\n")
        if gen.omega:
            layers = list(res.view.layers)
            write_layer_weights(gen, out, layers=layers, n1=cfg.n1, mode=cfg.layer_weights)
            omega_png(gen.omega, layers, out / "omega.png", n1=cfg.n1 if cfg.layer_weights == "two-step" else None,
                      title=f"{source}: ω ({cfg.layer_weights})")


def _metrics(res: _Result, benchmark: str) -> list[DownstreamMetric]:
    overall, ci = _mean_ci([s["all"] for s in res.scores])
    out = [DownstreamMetric(benchmark, "checker-acc", overall, len(res.scores), res.source, ci)]
    for cat in CATEGORIES:
        vals = [s[cat] for s in res.scores if cat in s]
        if vals:
            value, cat_ci = _mean_ci(vals)
            out.append(DownstreamMetric(benchmark, f"checker-acc:{cat}", value, len(vals), res.source, cat_ci))
    out.append(DownstreamMetric(benchmark, "denoise-loss", res.loss, len(res.scores), res.source))
    return out
