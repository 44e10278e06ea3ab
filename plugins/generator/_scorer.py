"""The ``toy-t2i`` scorer: train the toy generator on one row's features, then check its samples.

For a row (encoder, extractor) it renders ``n_train + n_heldout`` seeded scenes, encodes their
captions once (`harness.feature_store.FeatureStore`), trains `train_generator`, samples the
held-out captions and scores them with the checker.  Metrics (benchmark ``toy-t2i``):
``checker-acc`` and ``checker-acc:<category>`` (mean per-caption fraction of facts that hold,
in [0, 1], ``n`` = captions) and ``denoise-loss`` (held-out ε-MSE, lower is better).
``unconditioned`` trains on a zero text condition; ``baseline`` also reports that model once,
as benchmark ``toy-t2i:uncond``.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from harness import ConfigError, DownstreamMetric, Encoder, ScoredRow
from harness_plugins.generator._captions import CATEGORIES, Caption, caption_scene
from harness_plugins.generator._checker import score_caption
from harness_plugins.generator._render import render
from harness_plugins.generator._scene import sample_scenes

__all__ = ["BENCHMARK", "CONFIGS", "ToyT2IScorer", "make_config"]

BENCHMARK = "toy-t2i"
# name -> GeneratorConfig fields; "cpu" is ~1 s/step at batch 64 on 2 cores (docs: METHOD.md).
CONFIGS: dict[str, dict[str, Any]] = {
    "smoke": dict(channels=(16, 32), norm_groups=8, cross_dim=32, n_train=16, n_heldout=4, steps=4, batch=4,
                  n1=2, sample_steps=2, eval_batches=1),
    "cpu": dict(channels=(32, 64, 64), norm_groups=16, cross_dim=64, n_train=1024, n_heldout=64, steps=600,
                batch=64, n1=300, sample_steps=20),
}


def make_config(name: str, **overrides: Any) -> Any:
    """The `GeneratorConfig` preset ``name`` (``smoke`` or ``cpu``) with ``overrides``."""
    from harness_plugins.generator._model import GeneratorConfig

    if name not in CONFIGS:
        raise ConfigError(f"toy-t2i config {name!r} is not known; use one of: {', '.join(CONFIGS)}")
    return replace(GeneratorConfig(**CONFIGS[name]), **overrides)


def captions_for(n: int, seed: int) -> list[Caption]:
    return [caption_scene(s, random.Random(seed * 1_000_003 + i)) for i, s in enumerate(sample_scenes(n, seed))]


class ToyT2IScorer:
    """See the module docstring; ``encoders`` maps names to loaded encoders (else the registry)."""

    name = BENCHMARK

    def __init__(self, config: Any, *, unconditioned: bool = False, baseline: bool = False,
                 encoders: Mapping[str, Encoder] | None = None, out_dir: str | None = None) -> None:
        self.config, self.unconditioned, self.baseline = config, unconditioned, baseline
        self.encoders = dict(encoders or {})
        self.out_dir = out_dir
        self._baseline: list[DownstreamMetric] | None = None

    def rows(self) -> Sequence[ScoredRow]:
        return []

    def _encoder(self, name: str) -> Encoder:
        if name not in self.encoders:
            from harness.plugins import get_plugin_manager
            from harness.registry import load_registry

            pm = get_plugin_manager()
            files = [f for fs in pm.hook.harness_registry_files() for f in fs][::-1]
            dirs = [d for ds in pm.hook.harness_task_dirs() for d in ds]
            families = [f for fs in pm.hook.harness_encoder_families() for f in fs]
            reg = load_registry(files, dirs, families)
            if name not in reg.encoders:
                raise ConfigError(f"toy-t2i: encoder {name!r} is not in the registry; "
                                  f"available: {', '.join(sorted(reg.encoders))}")
            self.encoders[name] = pm.hook.harness_load_encoder(spec=reg.encoders[name])
        return self.encoders[name]

    def score(self, row: ScoredRow) -> list[DownstreamMetric]:
        out = self._run(row, conditioned=not self.unconditioned, benchmark=BENCHMARK)
        if self.baseline:
            if self._baseline is None:  # the zero condition ignores the row: train it once
                self._baseline = self._run(row, conditioned=False, benchmark=f"{BENCHMARK}:uncond")
            out += self._baseline
        return out

    def _run(self, row: ScoredRow, *, conditioned: bool, benchmark: str) -> list[DownstreamMetric]:
        import numpy as np
        import torch

        from harness.extractors import parse_extractors, resolve_extractors
        from harness.feature_store import FeatureStore
        from harness.plugins import get_plugin_manager
        from harness_plugins.generator._model import denoising_loss, sample_images, train_generator, write_layer_weights

        cfg = self.config
        encoder = self._encoder(row.encoder)
        res = resolve_extractors(parse_extractors(get_plugin_manager(), [row.extractor]), encoder.info)[0]
        caps = captions_for(cfg.n_train + cfg.n_heldout, cfg.seed)
        texts = [encoder.format(c.text, role="caption") for c in caps]
        store = FeatureStore(encoder, [res.view])
        store.ensure(texts)  # one encoder forward per unique text
        feats, mask = store.batch(res.view, texts)
        imgs = np.stack([render(s, cfg.image_size) for s in sample_scenes(len(caps), cfg.seed)])
        x = torch.from_numpy(imgs).permute(0, 3, 1, 2).float() / 127.5 - 1
        n = cfg.n_train
        gen = train_generator(cfg, feats[:n], mask[:n], x[:n], conditioned=conditioned)
        if self.out_dir and gen.omega:
            write_layer_weights(gen, Path(self.out_dir) / f"{row.encoder}--{row.extractor}".replace(":", "_"),
                                layers=list(res.view.layers), n1=cfg.n1, mode=cfg.layer_weights)
        held = caps[n:]
        loss = denoising_loss(gen, feats[n:], mask[n:], x[n:], draws=cfg.eval_batches)
        samples = sample_images(gen, feats[n:], mask[n:], steps=cfg.sample_steps).numpy()
        scores = [score_caption(img, c.facts) for img, c in zip(samples, held)]
        src = f"toy-t2i {row.encoder}/{row.extractor}, {n} scenes, {cfg.steps} steps"
        out = [DownstreamMetric(benchmark, "checker-acc", float(np.mean([s["all"] for s in scores])), len(held), src)]
        for cat in CATEGORIES:
            vals = [s[cat] for s in scores if cat in s]
            if vals:
                out.append(DownstreamMetric(benchmark, f"checker-acc:{cat}", float(np.mean(vals)), len(vals), src))
        out.append(DownstreamMetric(benchmark, "denoise-loss", loss, len(held), src))
        return out
