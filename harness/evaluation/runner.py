"""run(...) -> RunResult: encoders x extractors x seeds over tasks.

Every name is resolved before `run` is called (the CLI does it), so a typo never
costs an encoder pass.  Per encoder: load it once, resolve the extractors against
its depth, build one aggregator per extractor (cheap), plan the feature cache's disk
(`harness.features.sources.prepare_features`: a learned extractor's layer stack that
does not fit is computed by the encoder in the loop instead), compute every cached view
of every unique text with one forward (`FeatureStore`), then per (extractor, seed) train
or reload the aggregator, embed, and score.  Nothing here prints; progress goes through
the ``progress`` callback the CLI passes in, the disk plan's lines through ``say``.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pluggy

from harness.features import distributed
from harness._exceptions import ConfigError, HarnessError, unknown_name
from harness.features.cache import encoder_fingerprint
from harness.evaluation.aggregator_file import check_aggregator_file, file_record, load_aggregator_file
from harness.evaluation.checkpoints import CheckpointStore, content_key
from harness.data.loaders import file_sha256
from harness.features.disk_plan import CACHED, IN_LOOP
from harness.evaluation.tasks import PAIRS_HELP, TaskSet
from harness.evaluation.scoring import (
    Row,
    compare_rows,
    derange_captions,
    permutation_null,
    sample_records,
    score_instances,
    slice_records,
    summarize_over_seeds,
)
from harness.features.extractors import ResolvedExtractor, resolve_extractors, with_include_embedding
from harness.features.sources import EVAL, TRAIN, FeatureSources, prepare_features
from harness.features.store import ProgressFactory
from harness.options import AggregatorOptions, FeatureOptions, TrainingOptions
from harness.registry import resolve_path
from harness.evaluation.results import (
    EncoderProvenance,
    PairsProvenance,
    Provenance,
    RunResult,
    TrainingRecord,
    collect_versions,
    git_hash,
    jsonable,
)
from harness.types import (
    Aggregator,
    CaptionPair,
    Encoder,
    EncoderOptions,
    EncoderSpec,
    ExtractorSpec,
    Instance,
)
from harness.features.views import View
from harness.training_log import accepts_log, open_training_log, run_name

__all__ = ["CONTROLS", "TrainingError", "make_aggregator", "run"]

log = logging.getLogger("harness")
# Similarity-based control: each caption is swapped for another (per seed).  Not the paper's §4.4
# control, which asks an MLLM 4-option questions about shuffled captions (the QA baseline's control).
CONTROLS = ("shuffled-captions",)
Formatter = Callable[[Instance], tuple[str, list[str]]]


class TrainingError(HarnessError):
    """Aggregator training produced something that must not be scored (e.g. a NaN loss)."""


def make_aggregator(pm: pluggy.PluginManager, name: str, *, width: int, n_layers_in: int,
                    options: AggregatorOptions) -> Aggregator:
    """The aggregator ``name`` from whichever plugin provides it."""
    agg = pm.hook.harness_make_aggregator(name=name, width=width, n_layers_in=n_layers_in, options=options)
    if agg is None:
        names = [n for ns in pm.hook.harness_aggregator_names() for n in ns]
        raise unknown_name("aggregator", name, names)
    return agg  # type: ignore[no-any-return]


@dataclass
class _Run:
    """State shared by the per-encoder loop."""

    pm: pluggy.PluginManager
    aggregator: str
    aggregator_options: AggregatorOptions
    training: TrainingOptions
    features: FeatureOptions
    seeds: Sequence[int]
    bootstrap: int
    null_resamples: int
    control: str | None
    progress: ProgressFactory | None
    tasks: list[TaskSet]
    result: RunResult
    store: CheckpointStore
    say: Callable[[str], None] | None = None
    correct: dict[tuple[Row, str, int], list[bool]] = field(default_factory=dict)
    _pairs: list[CaptionPair] | None = None
    pairs_provenance: PairsProvenance | None = None
    budget_used: int = 0  # bytes the disk plans of earlier encoders set aside (--cache-budget, or the default)
    in_memory: set[str] = field(default_factory=set)  # encoders given as objects: nothing of theirs is persisted

    def budget_left(self) -> int | None:
        budget = self.features.cache_budget
        return None if budget is None else max(0, budget - self.budget_used)

    def pairs(self) -> list[CaptionPair]:
        """The training pairs, loaded once, cut to ``max_pairs`` before anything is encoded."""
        if self._pairs is None:
            if self.training.train_pairs is None:
                raise ConfigError(f"aggregator {self.aggregator!r} is trained on caption pairs: {PAIRS_HELP}")
            source = self.training.pairs_source or self.training.train_pairs
            loaded = self.pm.hook.harness_load_pairs(source=source)
            if not loaded:
                raise ConfigError(f"No plugin loads caption pairs from {source!r}")
            path = resolve_path(source)
            sha = file_sha256(path) if os.path.isfile(path) else content_key(
                {"pairs": [(p.a, p.b, p.group) for p in loaded]})
            self._pairs = list(loaded)[: self.training.max_pairs]
            groups = {p.group for p in self._pairs}
            if len(self._pairs) < 2:
                raise ConfigError(f"caption pairs {source!r}: {len(self._pairs)} pair(s); contrastive training needs "
                                  "at least 2 (each pair's negatives are the other pairs of its batch)")
            if len(groups) == 1 and None not in groups:
                raise ConfigError(f"caption pairs {source!r}: all {len(self._pairs)} pairs are in group "
                                  f"{next(iter(groups))!r}, so no pair has a negative (items of one group are never "
                                  "each other's negatives); 'group' names the image or video a pair describes")
            self.pairs_provenance = PairsProvenance(source=self.training.train_pairs, sha256=sha, n=len(self._pairs),
                                                    n_available=len(loaded))
        return self._pairs


def run(pm: pluggy.PluginManager, *, encoders: Sequence[EncoderSpec | Encoder], tasks: Sequence[TaskSet],
        extractors: Sequence[ExtractorSpec], aggregator: str = "context",
        aggregator_options: AggregatorOptions = AggregatorOptions(),
        training: TrainingOptions = TrainingOptions(), features: FeatureOptions = FeatureOptions(),
        seeds: Sequence[int] = (0,), control: str | None = None, bootstrap: int = 1000,
        null_resamples: int = 100, recorded_options: Mapping[str, Any] | None = None,
        progress: ProgressFactory | None = None, say: Callable[[str], None] | None = None) -> RunResult:
    """Evaluate every (encoder, extractor, seed) on every task; see the module docstring.

    ``encoders`` are specs (loaded here by their family's plugin) or encoders already built
    (`harness.Encoder` objects, e.g. a model in memory wrapped by `harness.evaluate`): those are
    used as they are, and their features stay in RAM (their weights may change between calls, so
    the on-disk cache, keyed by checkpoint, must not serve them).

    ``control="shuffled-captions"`` scores every seed with captions deranged by that seed.
    ``null_resamples`` derangements give each slice's permutation null (0: none).
    ``recorded_options`` (e.g. the CLI's parsed arguments) go into the provenance as they are.
    ``say`` receives the lines a user should read before encoding starts: each view's disk estimate
    and which features go through the encoder in the loop instead of the cache (and why).
    """
    t0 = time.time()
    distributed.init_from_env(error=ConfigError)  # no-op unless launched by torchrun / accelerate launch
    if control is not None and control not in CONTROLS:
        raise unknown_name("control", control, CONTROLS)
    if not seeds:
        raise ConfigError("no seeds to run: give --seeds at least one integer")
    task_sets = list(tasks)
    result = RunResult(provenance=Provenance(
        harness_git=git_hash(), versions=collect_versions(), started=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        options=jsonable({**(recorded_options or {}), "aggregator": aggregator,
                          "aggregator_options": aggregator_options.as_dict(), "training": training.as_dict(),
                          "features": features.as_dict(), "seeds": list(seeds), "control": control,
                          "bootstrap": bootstrap, "null_resamples": null_resamples}),
        tasks={t.name: t.provenance for t in task_sets},
        plugins=sorted(n for n, p in pm.list_name_plugin() if p is not None),
        tensorboard=training.tensorboard_dir,
    ))
    state = _Run(pm=pm, aggregator=aggregator, aggregator_options=aggregator_options, training=training,
                 features=features, seeds=seeds, bootstrap=bootstrap, null_resamples=null_resamples, control=control,
                 progress=progress, say=say,
                 tasks=task_sets, result=result,
                 store=CheckpointStore(None if training.ckpt_dir is None else Path(training.ckpt_dir) / "aggregators"))
    for ts in task_sets if control else ():  # a derangement needs two distinct captions: say so before loading
        distinct = len({i.caption for i in ts.instances})
        if distinct < 2:
            raise ConfigError(f"control {control!r}: task {ts.name!r} has {distinct} distinct caption(s), and "
                              "swapping captions needs at least 2; drop the control or add instances")
    trains = bool(pm.hook.harness_aggregator_trains(name=aggregator))
    if training.aggregator_file is not None:  # a head from a file: nothing is trained, no pairs are read
        check_aggregator_file(training.aggregator_file, aggregator=aggregator, trains=trains,
                              n_encoders=len(encoders), n_extractors=len(extractors), n_seeds=len(seeds))
    elif trains:
        state.pairs()  # load and check the training pairs before any model loads
        _check_contamination(state)
        _check_batches(pm, aggregator, aggregator_options, len(state.pairs()))
    for spec in encoders:
        _run_encoder(state, spec, extractors)
    if len(seeds) > 1:
        result.seed_summary = summarize_over_seeds(result.scores)
    result.comparisons = compare_rows(state.correct, n_boot=bootstrap)
    result.provenance.seconds = round(time.time() - t0, 2)
    return result


def _no_batch(config: Mapping[str, Any], n_pairs: int) -> str | None:
    """Why ``n_pairs`` make no training batch under an aggregator's ``config`` (None: they make one):
    a random-batching preset (``official``) drops the last partial batch."""
    size = config.get("batch_size")
    if isinstance(size, int) and config.get("batching") == "random" and n_pairs < size:
        return (f"preset {config.get('preset', 'default')!r} cuts batches of {size} pairs and drops the last partial "
                f"one, so {n_pairs} pair(s) make no batch. Give at least {size} pairs, or --train-batch-size between "
                f"2 and {max(n_pairs, 2)}")
    return None


def _check_batches(pm: pluggy.PluginManager, aggregator: str, options: AggregatorOptions, n_pairs: int) -> None:
    """Before any model loads: pairs too few for one batch of the aggregator's preset stop the run here,
    not after the encoder has loaded and encoded (the config does not depend on the width)."""
    try:
        config = make_aggregator(pm, aggregator, width=8, n_layers_in=1, options=options).config()
    except Exception:  # noqa: BLE001 - a plugin that cannot be built at a probe width: checked after training
        return
    why = _no_batch(config, n_pairs) if isinstance(config, Mapping) else None
    if why is not None:
        raise TrainingError(f"aggregator {aggregator!r}: {why}")


def _check_contamination(state: _Run) -> None:
    """The training pairs against the evaluated instances (`harness.data.contamination`), before anything
    trains: one line through ``say``, the report in the provenance; ``--strict-contamination`` stops on an
    overlap.  Nothing to do without instances (``harness train``)."""
    from harness.data.contamination import check_contamination, describe

    task_of: dict[str, str] = {}
    for ts in state.tasks:
        for inst in ts.instances:
            task_of.setdefault(inst.id, ts.name)
    if not task_of:
        return
    report = check_contamination(state.pairs(), [i for ts in state.tasks for i in ts.instances])
    state.result.provenance.contamination = report
    line = describe(report, lambda iid: f"{task_of[iid]}/{iid}")
    if report.n_contaminated and state.training.strict_contamination:
        raise ConfigError(f"--strict-contamination: {line}; remove those pairs from "
                          f"{state.training.train_pairs!r}, or drop --strict-contamination")
    if state.say is not None:
        state.say(f"contamination: {line}")
    elif report.n_contaminated:
        log.warning("contamination: %s", line)


def _load_encoder(pm: pluggy.PluginManager, spec: EncoderSpec) -> Encoder:
    encoder = pm.hook.harness_load_encoder(spec=spec)
    if encoder is None:
        families = [f for fs in pm.hook.harness_encoder_families() for f in fs]
        raise unknown_name("encoder family", spec.family, families, hint=f"(needed by encoder {spec.name!r})")
    return encoder  # type: ignore[no-any-return]


def _formatter(encoder: Encoder) -> Formatter:
    @functools.cache  # templates (chat ones tokenize) run once per instance, not per use
    def fmt(inst: Instance) -> tuple[str, list[str]]:
        cap = encoder.format(inst.caption, role="caption", caption_type=inst.caption_type)
        return cap, [encoder.format(t, role="statement", caption_type=inst.caption_type) for t in inst.candidates]
    return fmt


def _loaded(state: _Run, item: EncoderSpec | Encoder) -> tuple[Encoder, EncoderSpec, FeatureOptions]:
    """The encoder, the spec its options come from, and the feature options it runs with."""
    if isinstance(item, EncoderSpec):
        return _load_encoder(state.pm, item), item, state.features
    info = item.info
    known = {f.name for f in dataclasses.fields(EncoderOptions)}
    options = EncoderOptions(**{k: v for k, v in info.options.items() if k in known})
    spec = EncoderSpec(name=info.name, family=info.family, checkpoint=info.checkpoint, revision=info.revision,
                       options=options)
    state.in_memory.add(info.name)
    return item, spec, dataclasses.replace(state.features, no_cache=True)


def _run_encoder(state: _Run, item: EncoderSpec | Encoder, extractors: Sequence[ExtractorSpec]) -> None:
    t_load = time.time()
    encoder, spec, features = _loaded(state, item)
    info = encoder.info
    # Decided here, once: --include-embedding > the registry entry's include_embedding > the family's default
    flag = features.include_embedding if features.include_embedding is not None else spec.options.include_embedding
    resolved = resolve_extractors([with_include_embedding(s, flag) for s in extractors], info)
    aggs = {r.name: make_aggregator(state.pm, state.aggregator, width=info.width, n_layers_in=r.n_layers_in,
                                    options=state.aggregator_options) for r in resolved}
    head_file = state.training.aggregator_file
    if head_file is not None:  # before encoding: a file that does not fit costs no encoder pass
        load_aggregator_file(head_file, aggs.values(), encoder=info.name)
    fmt = _formatter(encoder)
    eval_texts = sorted({t for ts in state.tasks for i in ts.instances for t in (fmt(i)[0], *fmt(i)[1])})
    # Training pairs are encoded raw (no caption prefix) and truncated at options.train_max_length, as the
    # official trainer does; in their own store when that length differs from the evaluation length.
    pairs = state.pairs() if head_file is None and any(a.trainable for a in aggs.values()) else []
    train_texts = sorted({t for p in pairs for t in (p.a, p.b)})
    train_len = spec.options.train_max_length
    views: dict[View, list[str]] = {}
    for r in resolved:
        views.setdefault(r.view, []).append(r.name)
    src = prepare_features(encoder, views, features, eval_texts=eval_texts, train_texts=train_texts,
                           train_length=None if train_len in (None, spec.options.max_length) else train_len,
                           budget=state.budget_left(), spent=state.budget_used,
                           out_device=_aggregator_device(aggs.values()), say=state.say)
    state.budget_used += src.plan.to_write
    t_enc = time.time()
    n_encoded, truncated = src.ensure(eval_texts, train_texts, progress=state.progress)
    state.result.provenance.encoders[spec.name] = EncoderProvenance(
        family=info.family, checkpoint=info.checkpoint, revision=info.revision, num_layers=info.num_layers,
        width=info.width, include_embedding_default=info.include_embedding_default,
        last_layer_note=info.last_layer_note, options=jsonable(dict(info.options)), feature_dtype=src.dtype,
        texts_encoded=n_encoded, texts_truncated=truncated[0], train_texts_truncated=truncated[1],
        n_eval_texts=len(eval_texts), n_train_texts=len(train_texts),
        pairs_formatting="raw (no template), as the official trainer",
        load_seconds=round(t_enc - t_load, 2), encode_seconds=round(time.time() - t_enc, 2),
        feature_cache=None if not src.caches else str(src.caches[0].dir),
        extractors=jsonable({r.name: r.as_dict() for r in resolved}),
        features={r.name: src.modes(r.view, training=bool(pairs)) for r in resolved},
        disk_plan=jsonable(src.plan.as_dict()),
        max_length=info.length, train_max_length=info.train_length if pairs else None, template=info.template,
        args=jsonable(dict(spec.extra.get("args", {}))),
    )
    for r in resolved:
        for seed in state.seeds:
            _run_cell(state, encoder, r, aggs[r.name], seed=seed, pairs=pairs, eval_texts=eval_texts, fmt=fmt,
                      src=src)
    src.close()
    # texts re-encoded later (a shard damaged mid-run) count too; so does what the cache holds at the end
    state.result.provenance.encoders[spec.name] = dataclasses.replace(
        state.result.provenance.encoders[spec.name], texts_encoded=src.n_encoded(),
        in_loop_encodings=src.in_loop_encodings(), cache_disk_bytes=src.disk_bytes())


def _aggregator_device(aggs: Iterable[Aggregator]) -> str | None:
    """Where in-the-loop features go: None (stay on the encoder's GPU) when every aggregator runs on CUDA."""
    devices = {str(a.config().get("device", "cpu")) for a in aggs}
    return None if devices and all(d.startswith("cuda") for d in devices) else "cpu"


def _run_cell(state: _Run, encoder: Encoder, extractor: ResolvedExtractor, agg: Aggregator, *, seed: int,
              pairs: list[CaptionPair], eval_texts: list[str], fmt: Formatter, src: FeatureSources) -> None:
    if agg.trainable and state.training.aggregator_file is not None:  # loaded in _run_encoder
        state.result.training.append(file_record(state.training.aggregator_file, encoder.info.name, extractor, agg,
                                                 seed))
    elif agg.trainable:
        state.result.training.append(_fit_or_load(state, agg, encoder, extractor, seed=seed, pairs=pairs, src=src))
    vectors = dict(zip(eval_texts, agg.embed(src.batch_fn(EVAL, extractor.view), eval_texts)))
    row: Row = (encoder.info.name, extractor.name, agg.name)
    for ts in state.tasks:
        # the control's captions are captions of the same set: every text it needs is already embedded
        instances = derange_captions(ts.instances, seed=seed) if state.control else ts.instances
        scored = score_instances(instances, vectors, fmt)
        oks = [ok for _, ok in scored]
        null = (permutation_null(ts.instances, vectors, fmt, n_resamples=state.null_resamples, seed=seed)
                if state.null_resamples > 0 else None)
        state.correct[(row, ts.name, seed)] = oks
        state.result.scores.extend(slice_records(row, ts.name, instances, oks, seed=seed, n_boot=state.bootstrap,
                                                 control=state.control, null=null))
        state.result.samples.extend(sample_records(row, ts.name, instances, scored, seed=seed))


def _fit_or_load(state: _Run, agg: Aggregator, encoder: Encoder, extractor: ResolvedExtractor, *, seed: int,
                 pairs: list[CaptionPair], src: FeatureSources) -> TrainingRecord:
    info, pairs_prov = encoder.info, state.pairs_provenance
    assert pairs_prov is not None  # loaded before encoding, whenever an aggregator is trainable
    config = jsonable(agg.config())
    mode = src.mode(TRAIN, extractor.view)
    features = src.batch_fn(TRAIN, extractor.view)
    parts: dict[str, Any] = {
        "encoder": encoder_fingerprint(info), "extractor": extractor.as_dict(), "feature_dtype": src.dtype,
        "pairs": {"sha256": pairs_prov.sha256, "n": pairs_prov.n}, "aggregator": agg.name, "config": config,
        "seed": seed,
    }
    if mode == IN_LOOP and src.cuda:  # the forward ran under bf16 autocast: other numbers than cached features
        parts["features"] = "encoder-in-the-loop, bf16 autocast"
    key = content_key(parts)
    # an encoder given as an object may have other weights next time under the same name: never reuse or save
    persist = info.name not in state.in_memory
    found = None if state.training.retrain or not persist else state.store.load(key, agg)
    if distributed.agree(found is not None):  # rank 0 decides, so every rank takes the same branch
        assert found is not None
        meta = found.meta
        return _record(info.name, extractor, agg, seed, key, config, pairs_prov, meta, path=str(found.path),
                       sha=found.sha256, reused=True)
    bar = state.progress(f"training {info.name}/{extractor.name} seed {seed}", 0) if state.progress else None
    # TensorBoard (rank 0): loss and steps/s through the step callback; lr and α by a fit that takes `log`
    tb = open_training_log(state.training.tensorboard_dir if distributed.is_main() else None,
                           run_name(info.name, extractor.name, agg.name, f"seed{seed}"),
                           layers=extractor.view.layers if extractor.n_layers_in > 1 else ())

    def on_step(i: int, loss: float) -> None:
        if tb is not None:
            tb.step(i, loss)
        if bar is not None:
            bar.advance(1)

    try:
        report = agg.fit(features, pairs, seed=seed, on_step=on_step if tb is not None or bar is not None else None,
                         **({"log": tb} if tb is not None and accepts_log(agg.fit) else {}))
    finally:
        if tb is not None:
            tb.close()
    if not all(math.isfinite(x) for x in report.losses):
        first = next(i for i, x in enumerate(report.losses) if not math.isfinite(x))
        raise TrainingError(f"aggregator {agg.name!r} on {info.name}/{extractor.name} (seed {seed}): the loss became "
                            f"{report.losses[first]} at step {first + 1}; nothing was saved or scored. "
                            "Lower --lr or raise --temperature")
    if report.steps == 0:
        why = _no_batch(config, len(pairs)) if isinstance(config, Mapping) else None
        if why is None:
            why = "a step needs a batch of at least 2 pairs. Give more pairs, or a smaller --train-batch-size >= 2"
        raise TrainingError(f"aggregator {agg.name!r} on {info.name}/{extractor.name} (seed {seed}): no training step "
                            f"ran on {len(pairs)} pair(s); nothing was saved or scored: {why}")
    meta = {"steps": report.steps, "seconds": round(report.seconds, 2), "losses": report.losses, "features": mode,
            "layer_weights": report.layer_weights, "layer_weight_steps": report.trajectory_steps,
            "layer_weight_trajectory": report.layer_weight_trajectory}
    path = sha = None
    if distributed.is_main() and persist:  # ranks hold identical weights; one writes
        try:
            saved = state.store.save(key, agg, meta)
            path, sha = str(saved.path), saved.sha256
        except OSError as exc:
            if state.training.require_checkpoint:  # harness train: the checkpoint is all it makes
                raise HarnessError(f"aggregator {info.name}/{extractor.name} seed {seed} was trained but its checkpoint "
                                   f"could not be written under {str(state.store.root)!r} ({exc.strerror or exc}); "
                                   "give a writable --ckpt-dir with free space") from None
            log.warning("cannot save the aggregator checkpoint under %s (%s); keeping it in memory for this run",
                        state.store.root, exc)
    distributed.barrier()
    return _record(info.name, extractor, agg, seed, key, config, pairs_prov, meta, path=path, sha=sha, reused=False)


def _record(encoder: str, extractor: ResolvedExtractor, agg: Aggregator, seed: int, key: str, config: dict[str, Any],
            pairs: PairsProvenance, meta: Mapping[str, Any], *, path: str | None, sha: str | None,
            reused: bool) -> TrainingRecord:
    losses = [float(x) for x in meta.get("losses", [])]
    head, tail = losses[:10], losses[-10:]
    return TrainingRecord(
        encoder=encoder, extractor=extractor.name, aggregator=agg.name, seed=seed, key=key, checkpoint=path,
        checkpoint_sha256=sha, config=config, layers=list(extractor.view.layers), pairs=pairs,
        steps=int(meta.get("steps", 0)), seconds=float(meta.get("seconds", 0.0)),
        first_loss=sum(head) / len(head) if head else None, final_loss=sum(tail) / len(tail) if tail else None,
        losses=losses, layer_weights=meta.get("layer_weights"), layer_weight_steps=list(meta.get("layer_weight_steps", [])),
        layer_weight_trajectory=list(meta.get("layer_weight_trajectory", [])), reused=reused,
        features=str(meta.get("features", CACHED)),
    )
