"""ted-harness: which text encoder, read which way, makes a better diffusion model.

``import harness`` loads pluggy, PyYAML and numpy only -- never torch.
"""

from __future__ import annotations

from harness._exceptions import (
    CacheError,
    ConfigError,
    DataError,
    EncoderError,
    HarnessError,
    PluginError,
    unknown_name,
)
from harness.hookspecs import hookimpl, hookspec
from harness.options import AggregatorOptions, FeatureOptions, TrainingOptions
from harness.registry import resolve_path
from harness.types import (
    Aggregator,
    CaptionPair,
    DownstreamMetric,
    EncodedBatch,
    Encoder,
    EncoderInfo,
    EncoderOptions,
    EncoderSpec,
    ExtractorSpec,
    Instance,
    ScoredRow,
    Scorer,
    TaskSpec,
    TrainReport,
)

__version__ = "0.1.0"

__all__ = [
    "Aggregator",
    "AggregatorOptions",
    "CacheError",
    "CaptionPair",
    "ConfigError",
    "DataError",
    "DownstreamMetric",
    "EncodedBatch",
    "Encoder",
    "EncoderError",
    "EncoderInfo",
    "EncoderOptions",
    "EncoderSpec",
    "ExtractorSpec",
    "FeatureOptions",
    "HarnessError",
    "Instance",
    "PluginError",
    "ScoredRow",
    "Scorer",
    "TaskSpec",
    "TrainReport",
    "TrainingOptions",
    "__version__",
    "hookimpl",
    "hookspec",
    "resolve_path",
    "unknown_name",
]
