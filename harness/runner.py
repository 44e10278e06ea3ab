"""run(options) -> RunResult: encoders x extractors x seeds over tasks.

Per encoder: load it once, compute every requested view of every unique text
with one forward (`FeatureStore`), then per (extractor, seed) build, train or
reload an aggregator, embed, and score.  Nothing here prints; progress goes
through the ``progress`` callback the CLI passes in.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import os
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pluggy

from harness import distributed
from harness._exceptions import ConfigError, unknown_name
from harness.cache import FeatureCache, default_cache_dir, encoder_fingerprint
from harness.data import file_sha256
from harness.evaluate import Row, compare_rows, score_instances, slice_records, summarize_over_seeds
from harness.features import FeatureStore, ProgressFactory, View, expand_extractors, view_for, with_include_embedding
from harness.registry import Registry, resolve_path
from harness.results import RunResult, collect_versions, git_hash
from harness.types import CaptionPair, Encoder, EncoderSpec, ExtractorSpec, Instance

__all__ = ["DEFAULT_PAIRS", "RunOptions", "load_task_sets", "parse_extractors", "run"]

log = logging.getLogger("harness")
DEFAULT_PAIRS = "pkg:harness_tasks/data/caption_pairs.jsonl"


@dataclass(frozen=True)
class RunOptions:
    """Everything `run` needs besides plugins and registry.  All of it is recorded."""

    encoders: tuple[str, ...] = ("minilm",)
    tasks: tuple[str, ...] = ("ted6k-sample",)
    extract: tuple[str, ...] = ("last", "norm-avg")
    aggregator: str = "context"
    aggregator_options: dict[str, Any] = field(default_factory=dict)
    seeds: tuple[int, ...] = (0,)
    train_pairs: str | None = None
    limit: int | None = None  # instances per category
    control: str | None = None  # "shuffled"
    batch_size: int | str = 32  # or "auto" (see FeatureStore)
    feature_dtype: str = "float32"
    include_embedding: bool | None = None
    encoder_options: dict[str, Any] = field(default_factory=dict)
    ckpt_dir: str | None = None
    retrain: bool = False
    bootstrap: int = 1000
    cache_dir: str | None = None  # feature cache (default: $HARNESS_CACHE_DIR/features)
    no_cache: bool = False


def parse_extractors(pm: pluggy.PluginManager, names: Sequence[str]) -> list[ExtractorSpec]:
    out = []
    for raw in names:
        name, _, arg = raw.partition(":")
        spec = pm.hook.harness_make_extractor(name=name, arg=arg or None)
        if spec is None:
            known = [n for names_ in pm.hook.harness_extractor_names() for n in names_]
            raise unknown_name("extractor", raw, known)
        out.append(spec)
    return out


def load_task_sets(pm: pluggy.PluginManager, registry: Registry, opts: RunOptions) -> list[tuple[str, list[Instance], dict[str, Any]]]:
    """(requested name, instances, provenance) per ``--tasks`` entry; groups are unions of their tasks."""
    cache: dict[tuple[str, str], list[Instance]] = {}
    out = []
    for name in opts.tasks:
        instances: list[Instance] = []
        sources = {}
        for task in registry.resolve_tasks([name]):
            key = (task.source, task.format)
            if key not in cache:
                loaded = pm.hook.harness_load_instances(task=task)
                if loaded is None:
                    raise ConfigError(f"No plugin loads task {task.name!r} (format {task.format!r})")
                cache[key] = loaded
            keep = cache[key] if task.categories is None else [i for i in cache[key] if i.category in task.categories]
            instances.extend(keep)
            path = resolve_path(task.source)
            sources[task.name] = {"source": task.source, "format": task.format, "revision": task.revision,
                                  "sha256": file_sha256(path) if os.path.isfile(path) else None}
        instances = _limit(instances, opts.limit)
        if opts.control == "shuffled":
            instances = shuffle_captions(instances, seed=0)
        out.append((name, instances, {"tasks": sources, "n": len(instances)}))
    return out


def _limit(instances: list[Instance], limit: int | None) -> list[Instance]:
    if limit is None:
        return instances
    seen: dict[str, int] = {}
    kept = []
    for inst in instances:
        if seen.get(inst.category, 0) < limit:
            seen[inst.category] = seen.get(inst.category, 0) + 1
            kept.append(inst)
    return kept


def shuffle_captions(instances: list[Instance], *, seed: int) -> list[Instance]:
    """The control: every instance gets another instance's caption (a derangement of distinct captions)."""
    if len(instances) < 2:
        raise ConfigError("--control shuffled needs at least 2 instances")
    rng = random.Random(seed)
    perm = list(range(len(instances)))
    while True:
        rng.shuffle(perm)
        if all(instances[i].caption != instances[p].caption for i, p in enumerate(perm)):
            break
    return [replace(inst, caption=instances[p].caption, caption_type=instances[p].caption_type)
            for inst, p in zip(instances, perm)]


def _encoder_spec(registry: Registry, name: str, opts: RunOptions) -> EncoderSpec:
    spec = registry.encoder(name)
    if not opts.encoder_options:
        return spec
    bad = set(opts.encoder_options) - {f.name for f in dataclasses.fields(spec.options)}
    if bad:
        raise ConfigError(f"Unknown encoder option(s) {sorted(bad)}")
    return replace(spec, options=replace(spec.options, **opts.encoder_options))


def _load_encoder(pm: pluggy.PluginManager, spec: EncoderSpec) -> Encoder:
    encoder = pm.hook.harness_load_encoder(spec=spec)
    if encoder is None:
        families = [f for fs in pm.hook.harness_encoder_families() for f in fs]
        raise unknown_name("encoder family", spec.family, families, hint=f"(needed by encoder {spec.name!r})")
    return encoder  # type: ignore[no-any-return]


def _content_key(parts: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def _ckpt_dir(opts: RunOptions) -> Path:
    root = opts.ckpt_dir or os.environ.get("HARNESS_CACHE_DIR") or os.path.join(Path.home(), ".cache", "ted-harness")
    path = Path(root) / "aggregators"
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass
class _Context:
    """Per-run state shared by the per-encoder loop."""

    pm: pluggy.PluginManager
    opts: RunOptions
    progress: ProgressFactory | None
    result: RunResult
    task_sets: list[tuple[str, list[Instance], dict[str, Any]]]
    correct: dict[tuple[Row, str, int], list[bool]] = field(default_factory=dict)
    pairs: list[CaptionPair] | None = None
    pairs_sha256: str | None = None

    def load_pairs(self) -> list[CaptionPair]:
        if self.pairs is None:
            source = self.opts.train_pairs or DEFAULT_PAIRS
            loaded = self.pm.hook.harness_load_pairs(source=source)
            if not loaded:
                raise ConfigError(f"No plugin loads caption pairs from {source!r}")
            self.pairs = list(loaded)
            path = resolve_path(source)
            self.pairs_sha256 = file_sha256(path) if os.path.isfile(path) else _content_key(
                {"pairs": [(p.a, p.b, p.group) for p in self.pairs]})
            self.result.provenance["train_pairs"] = {"source": source, "sha256": self.pairs_sha256, "n": len(self.pairs)}
        return self.pairs


def run(pm: pluggy.PluginManager, registry: Registry, opts: RunOptions, *,
        progress: ProgressFactory | None = None) -> RunResult:
    """Evaluate every (encoder, extractor, seed) on every task; see module docstring."""
    t0 = time.time()
    distributed.init_from_env()  # no-op unless launched by torchrun / accelerate launch
    if opts.control not in (None, "shuffled"):
        raise ConfigError(f"Unknown control {opts.control!r}. Available: shuffled")
    extractors = [with_include_embedding(s, opts.include_embedding) for s in parse_extractors(pm, opts.extract)]
    ctx = _Context(pm=pm, opts=opts, progress=progress, result=RunResult(), task_sets=load_task_sets(pm, registry, opts))
    ctx.result.provenance = {
        "harness_git": git_hash(), "versions": collect_versions(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "options": dataclasses.asdict(opts), "tasks": {name: prov for name, _, prov in ctx.task_sets},
        "encoders": {}, "plugins": sorted(n for n, p in pm.list_name_plugin() if p is not None),
    }
    for name in opts.encoders:
        _run_encoder(ctx, _encoder_spec(registry, name, opts), extractors)
    if len(opts.seeds) > 1:
        ctx.result.seed_summary = summarize_over_seeds(ctx.result.scores)
    ctx.result.comparisons = compare_rows(ctx.correct, n_boot=opts.bootstrap)
    ctx.result.provenance["seconds"] = round(time.time() - t0, 2)
    return ctx.result


def _formatter(encoder: Encoder) -> Callable[[Instance], tuple[str, list[str]]]:
    @functools.cache  # templates (chat ones tokenize) run once per instance, not per use
    def fmt(inst: Instance) -> tuple[str, list[str]]:
        cap = encoder.format(inst.caption, role="caption", caption_type=inst.caption_type)
        return cap, [encoder.format(t, role="statement", caption_type=inst.caption_type) for t in inst.candidates]
    return fmt


def _run_encoder(ctx: _Context, spec: EncoderSpec, extractors: list[ExtractorSpec]) -> None:
    opts = ctx.opts
    t_load = time.time()
    encoder = _load_encoder(ctx.pm, spec)
    info = encoder.info
    specs = expand_extractors(extractors, info)
    views = {s.name: view_for(s, info) for s in specs}
    cache = None if opts.no_cache else FeatureCache(opts.cache_dir or default_cache_dir(), encoder_fingerprint(info),
                                                    dtype=opts.feature_dtype)
    store = FeatureStore(encoder, views.values(), batch_size=opts.batch_size, dtype=opts.feature_dtype, cache=cache)
    fmt = _formatter(encoder)
    eval_texts = sorted({t for _, insts, _ in ctx.task_sets for i in insts for t in (fmt(i)[0], *fmt(i)[1])})
    # the pair cap is applied here, once, so pairs beyond it are never encoded
    probe = _make_aggregator(ctx, specs[0], views[specs[0].name], info.width)
    pairs = [CaptionPair(a=encoder.format(p.a, role="caption", caption_type=p.caption_type),
                         b=encoder.format(p.b, role="caption", caption_type=p.caption_type), group=p.group)
             for p in (ctx.load_pairs()[: probe.config().get("max_pairs")] if probe.trainable else [])]
    t_enc = time.time()
    n_encoded = store.ensure([*eval_texts, *(t for p in pairs for t in (p.a, p.b))], progress=ctx.progress)
    ctx.result.provenance["encoders"][spec.name] = {
        "family": info.family, "checkpoint": info.checkpoint, "revision": info.revision,
        "num_layers": info.num_layers, "width": info.width, "include_embedding_default": info.include_embedding_default,
        "last_layer_note": info.last_layer_note, "options": dict(info.options), "feature_dtype": opts.feature_dtype,
        "texts_encoded": n_encoded, "texts_truncated": store.n_truncated, "load_seconds": round(t_enc - t_load, 2),
        "encode_seconds": round(time.time() - t_enc, 2), "feature_cache": None if cache is None else str(cache.dir),
        "extractors": {s.name: {**s.as_dict(), "view": views[s.name].key} for s in specs},
    }
    for s in specs:
        for seed in opts.seeds:
            _run_cell(ctx, encoder, store, s, views[s.name], seed=seed, pairs=pairs, eval_texts=eval_texts, fmt=fmt)
    if cache is not None:
        cache.close()


def _make_aggregator(ctx: _Context, spec: ExtractorSpec, view: View, width: int) -> Any:
    config = {**ctx.opts.aggregator_options, "n_layers_in": len(view.layers) if view.op == "stack" else 1}
    agg = ctx.pm.hook.harness_make_aggregator(name=ctx.opts.aggregator, width=width, config=config)
    if agg is None:
        names = [n for ns in ctx.pm.hook.harness_aggregator_names() for n in ns]
        raise unknown_name("aggregator", ctx.opts.aggregator, names)
    if view.op == "stack" and not agg.trainable:
        log.info("aggregator %s averages the layers of %s (no learned weights)", agg.name, spec.name)
    return agg


def _run_cell(ctx: _Context, encoder: Encoder, store: FeatureStore, spec: ExtractorSpec, view: View, *,
              seed: int, pairs: list[CaptionPair], eval_texts: list[str],
              fmt: Callable[[Instance], tuple[str, list[str]]]) -> None:
    agg = _make_aggregator(ctx, spec, view, encoder.info.width)
    features = lambda texts: store.batch(view, texts)  # noqa: E731
    if agg.trainable:
        ctx.result.training.append(_fit_or_load(ctx, agg, encoder, spec, view, seed=seed, pairs=pairs, features=features))
    vectors = dict(zip(eval_texts, agg.embed(features, eval_texts)))
    row: Row = (encoder.info.name, spec.name, agg.name)
    for task, instances, _ in ctx.task_sets:
        scored = score_instances(instances, vectors, fmt)
        oks = [ok for _, ok in scored]
        ctx.correct[(row, task, seed)] = oks
        ctx.result.scores.extend(slice_records(row, task, instances, oks, seed=seed, n_boot=ctx.opts.bootstrap,
                                               control=ctx.opts.control))
        ctx.result.samples.extend(
            {"encoder": row[0], "extractor": row[1], "aggregator": row[2], "task": task, "seed": seed,
             "id": inst.id, "category": inst.category, "caption_type": inst.caption_type,
             "scores": scores, "correct": ok, "n_candidates": len(scores)}
            for inst, (scores, ok) in zip(instances, scored)
        )


def _fit_or_load(ctx: _Context, agg: Any, encoder: Encoder, spec: ExtractorSpec, view: View, *, seed: int,
                 pairs: list[CaptionPair], features: Any) -> dict[str, Any]:
    info = encoder.info
    key = _content_key({
        "format": 1, "encoder": {"family": info.family, "checkpoint": info.checkpoint, "revision": info.revision,
                                 "options": dict(info.options)},
        "extractor": spec.as_dict(), "view": view.key, "feature_dtype": ctx.opts.feature_dtype,
        "pairs_sha256": ctx.pairs_sha256, "aggregator": agg.name, "config": agg.config(), "seed": seed,
    })
    ckpt = _ckpt_dir(ctx.opts) / f"{key[:24]}.pt"
    meta_path = ckpt.with_suffix(".json")
    entry: dict[str, Any] = {"encoder": info.name, "extractor": spec.name, "aggregator": agg.name, "seed": seed,
                             "key": key, "checkpoint": str(ckpt), "config": agg.config(), "layers": list(view.layers)}
    if distributed.agree(ckpt.exists() and meta_path.exists() and not ctx.opts.retrain):  # rank 0 decides
        agg.load(str(ckpt))
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        entry.update(meta, reused=True)
    else:
        bar = ctx.progress(f"training {info.name}/{spec.name} seed {seed}", 0) if ctx.progress else None
        report = agg.fit(features, pairs, seed=seed, on_step=(lambda i, loss: bar.advance(1)) if bar else None)
        meta = {"steps": report.steps, "seconds": round(report.seconds, 2), "first_loss": report.first_loss,
                "final_loss": report.final_loss, "losses": report.losses, "layer_weights": report.layer_weights,
                "n_pairs": len(pairs)}
        if distributed.is_main():  # ranks hold identical weights; one writes
            tmp = ckpt.with_suffix(".tmp")
            agg.save(str(tmp))
            os.replace(tmp, ckpt)
            meta_path.write_text(json.dumps(meta), encoding="utf-8")
        distributed.barrier()
        entry.update(meta, reused=False)
    entry["checkpoint_sha256"] = file_sha256(ckpt)
    return entry
