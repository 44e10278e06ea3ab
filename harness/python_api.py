"""`harness.evaluate`: the whole `harness run` as one Python call, for notebooks and training loops.

    import harness
    result = harness.evaluate(encoders=["minilm"], tasks=["ted-open"], extract=["last", "norm-avg"])
    result.overall()  # {(encoder, extractor, aggregator, task): accuracy}

``encoders`` may mix registry names, ``FAMILY:PATH`` strings, `harness.Encoder` objects and models
in memory: a ``(model, tokenizer)`` pair, or `harness.InMemoryModel` to give a name, family or
options.  A model in memory is used as it is (a plugin's ``harness_wrap_model`` wraps it; the
built-in one takes any ``transformers`` model), its features stay in RAM and nothing trained on it
is saved, so the same call can run every N steps of a diffusion model's training.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness._exceptions import ConfigError
from harness.options import AggregatorOptions, FeatureOptions
from harness.evaluation.results import RunResult
from harness.types import Encoder, EncoderOptions, EncoderSpec

__all__ = ["InMemoryModel", "evaluate"]


@dataclass
class InMemoryModel:
    """A model already in memory and how to read it: ``family`` ('' = infer), ``name``, encoder options."""

    model: Any
    tokenizer: Any = None
    name: str = ""
    family: str = ""
    options: Mapping[str, Any] = field(default_factory=dict)


def _checked(what: str, cls: type, options: Mapping[str, Any] | None) -> dict[str, Any]:
    known = {f.name for f in dataclasses.fields(cls)}
    bad = sorted(set(options or {}) - known)
    if bad:
        raise ConfigError(f"{what}: unknown option(s) {bad}; allowed: {sorted(known)}")
    return dict(options or {})


def _encoder_options(options: Mapping[str, Any] | None) -> EncoderOptions:
    return EncoderOptions(**_checked("encoder_options", EncoderOptions, options))


def _resolve_encoders(pm: Any, registry: Any, encoders: Sequence[Any],
                      options: Mapping[str, Any] | None) -> list[EncoderSpec | Encoder]:
    """Registry names and FAMILY:PATH strings become specs (with ``options`` on top); objects are wrapped."""
    out: list[EncoderSpec | Encoder] = []
    for i, item in enumerate(encoders):
        if isinstance(item, str):
            # the run-wide options, then the name's own [key=value,...] on top (as on the command line)
            out.append(registry.encoder(item, _checked("encoder_options", EncoderOptions, options)))
        elif isinstance(item, Encoder):
            out.append(item)
        else:
            wrapped = InMemoryModel(*item) if isinstance(item, tuple) else item
            if not isinstance(wrapped, InMemoryModel):
                raise ConfigError(f"encoders[{i}]: {type(item).__name__} is neither a name, a harness.Encoder, a "
                                  "(model, tokenizer) pair nor a harness.InMemoryModel")
            name = wrapped.name or f"in-memory-{i}"
            spec = EncoderSpec(name=name, family=wrapped.family, checkpoint="",
                               options=_encoder_options({**dict(options or {}), **dict(wrapped.options)}))
            enc = pm.hook.harness_wrap_model(model=wrapped.model, tokenizer=wrapped.tokenizer, spec=spec)
            if enc is None:
                raise ConfigError(f"encoders[{i}]: no plugin wraps a {type(wrapped.model).__name__} "
                                  "(the built-in one takes a transformers model with its tokenizer)")
            out.append(enc)
    names = [e.name if isinstance(e, EncoderSpec) else e.info.name for e in out]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ConfigError(f"two encoders are named {dup[0]!r}: give each in-memory model its own name")
    return out


def evaluate(encoders: Sequence[Any] = ("minilm",), tasks: Sequence[str] = ("ted-open",), *,
             extract: Sequence[str] = ("last", "norm-avg"), aggregator: str = "context",
             train_pairs: str | None = None, max_pairs: int | None = None, seeds: Sequence[int] = (0,),
             preset: str | None = None, aggregator_options: Mapping[str, Any] | None = None,
             encoder_options: Mapping[str, Any] | None = None, limit: int | None = None,
             control: str | None = None, bootstrap: int = 1000, null_resamples: int = 100,
             registry_files: Sequence[str] = (), include_paths: Sequence[str] = (), plugins: Sequence[str] = (),
             cache_dir: str | None = None, no_cache: bool = False, batch_size: int | str = 32,
             feature_dtype: str = "auto", include_embedding: bool | None = None, ckpt_dir: str | None = None,
             retrain: bool = False, strict_contamination: bool = False,
             output: str | os.PathLike[str] | None = None) -> RunResult:
    """Run the TED evaluation and return its typed results (`harness.evaluation.results.RunResult`).

    The arguments mean what the ``harness run`` flags of the same names mean (``plugins`` = ``-p``,
    ``registry_files`` = ``--registry``, ``aggregator_options`` = ``--lr``/``--epochs``/... as
    `harness.AggregatorOptions` fields, ``encoder_options`` = ``--max-length``/``--template``/... as
    `harness.EncoderOptions` fields).  ``output``: also write ``results.json`` and ``samples.jsonl``
    there.  Raises `harness.HarnessError` subclasses for bad input, before any model is loaded where
    it can be known then.
    """
    from harness.features.extractors import parse_extractors
    from harness.plugins import get_plugin_manager
    from harness.registry import load_plugin_registry
    from harness.evaluation.tasks import load_task_sets, training_options
    from harness.evaluation.runner import run

    pm = get_plugin_manager(list(plugins))
    registry = load_plugin_registry(pm, registry_files, include_paths=include_paths)
    task_sets = load_task_sets(pm, registry, list(tasks), limit=limit)
    extractors = parse_extractors(pm, list(extract))
    fields = _checked("aggregator_options", AggregatorOptions, aggregator_options)
    fields.update({"preset": preset} if preset else {})
    agg = AggregatorOptions(**fields)
    training = training_options(registry, train_pairs=train_pairs, max_pairs=max_pairs, tasks=task_sets,
                                trains=bool(pm.hook.harness_aggregator_trains(name=aggregator)), aggregator=aggregator,
                                retrain=retrain, ckpt_dir=ckpt_dir, strict_contamination=strict_contamination)
    features = FeatureOptions(batch_size=batch_size, dtype=feature_dtype, cache_dir=cache_dir, no_cache=no_cache,
                              include_embedding=include_embedding)
    resolved = _resolve_encoders(pm, registry, encoders, encoder_options)
    result = run(pm, encoders=resolved, tasks=task_sets, extractors=extractors, aggregator=aggregator,
                 aggregator_options=agg, training=training, features=features, seeds=seeds, control=control,
                 bootstrap=bootstrap, null_resamples=null_resamples,
                 recorded_options={"api": "harness.evaluate", "encoders": [_label(e) for e in resolved],
                                   "tasks": list(tasks), "extract": list(extract), "limit": limit})
    if output is not None:
        from harness.evaluation.results import write_results

        write_results(result, os.fspath(output))
    return result


def _label(item: EncoderSpec | Encoder) -> str:
    return item.name if isinstance(item, EncoderSpec) else item.info.name
