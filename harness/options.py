"""Typed run options, built once at the CLI boundary and passed down as they are.

`AggregatorOptions` reaches the ``harness_make_aggregator`` hook: ``None`` fields
mean "the preset's value", so a plugin resolves them against its own presets.
`TrainingOptions` and `FeatureOptions` belong to the run: which pairs train the
aggregators and where checkpoints live, and how features are computed and cached.
Everything here is recorded in ``results.json``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["AggregatorOptions", "FeatureOptions", "TrainingOptions"]


@dataclass(frozen=True)
class AggregatorOptions:
    """Hyper-parameter overrides for the aggregator (``None``: the preset's value)."""

    preset: str = "default"
    lr: float | None = None
    epochs: int | None = None
    batch_size: int | None = None
    weight_decay: float | None = None
    temperature: float | None = None
    dim_out: int | None = None
    heads: int | None = None
    layer_weights: str | None = None  # train | frozen (learned extractor)
    layer_weights_file: str | None = None
    layer_lr: float | None = None  # lr of the learned layer logits (own optimiser group)
    device: str | None = None  # None: the GPU when there is one, else the CPU
    embed_batch_size: int = 64

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def overrides(self) -> dict[str, Any]:
        """The fields set away from ``None`` (and not the preset name or embedding batch size)."""
        return {k: v for k, v in asdict(self).items() if v is not None and k not in ("preset", "embed_batch_size")}


@dataclass(frozen=True)
class TrainingOptions:
    """Which caption pairs train the aggregators, and where trained ones are kept."""

    train_pairs: str | None = None  # a pairs file or source, or a named pair set ("vatex", "demo"); None: none given
    pairs_source: str | None = None  # the file a named pair set resolves to (None: train_pairs is the source)
    max_pairs: int | None = None  # the first N pairs; None: all
    retrain: bool = False  # ignore saved checkpoints
    ckpt_dir: str | None = None  # checkpoints go to CKPT_DIR/aggregators; None: $HARNESS_CACHE_DIR or ~/.cache/ted-harness
    strict_contamination: bool = False  # a training pair that overlaps an evaluated instance is an error, not a note
    # a trained head to load instead of training (--aggregator-file: ours, or the official epoch_N.pt); no pairs
    aggregator_file: str | None = None
    tensorboard_dir: str | None = None  # each training's TensorBoard events go to DIR/<run-name>/; None: no logs
    require_checkpoint: bool = False  # a checkpoint that cannot be written is an error (harness train), not a warning

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class FeatureOptions:
    """How encoder features are computed and cached."""

    batch_size: int | str = 32  # or "auto" (see `harness.features.store.FeatureStore`)
    dtype: str = "auto"  # dtype of stored views; auto: bfloat16 when the encoder runs on CUDA, else float32
    cache_dir: str | None = None  # None: $HARNESS_CACHE_DIR/features or ~/.cache/ted-harness/features
    no_cache: bool = False  # keep features in RAM only
    cache_budget: int | None = None  # bytes a run may add to the cache; None: the default (disk_plan.default_budget)
    fsync: str = "group"  # shard | group | none: when cache writes are forced to disk (`harness.features.cache.FeatureCache`)
    # avg/norm-avg/learned read the embedding output too (--include-embedding); None: the registry entry, else the family
    include_embedding: bool | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
