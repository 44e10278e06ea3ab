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
from harness.baselines import Baseline, BaselineContext, non_negative_int, positive_int
from harness.data.loaders import load_hf_instances, load_instances_file, load_pairs_file
from harness.evaluation.table import load_results  # imports pandas only when called
from harness.hookspecs import hookimpl, hookspec
from harness.llm.backend import (
    ChatRequest,
    ChatResult,
    LLMBackend,
    LLMOptions,
    TokenUsage,
    UsageSummary,
    fill_prompt,
    load_prompt,
    prompt_names,
    summarize_usage,
)
from harness.llm.factory import make_llm_backend
from harness.options import AggregatorOptions, FeatureOptions, TrainingOptions
from harness.python_api import InMemoryModel, evaluate
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
    NormType,
    ScoredRow,
    Scorer,
    TaskSpec,
    TrainReport,
)

__version__ = "0.1.0"



__all__ = [
    "Aggregator",
    "AggregatorOptions",
    "Baseline",
    "BaselineContext",
    "CacheError",
    "CaptionPair",
    "ChatRequest",
    "ChatResult",
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
    "InMemoryModel",
    "Instance",
    "LLMBackend",
    "LLMOptions",
    "NormType",
    "PluginError",
    "ScoredRow",
    "Scorer",
    "TaskSpec",
    "TokenUsage",
    "TrainReport",
    "TrainingOptions",
    "UsageSummary",
    "__version__",
    "evaluate",
    "fill_prompt",
    "hookimpl",
    "hookspec",
    "load_hf_instances",
    "load_instances_file",
    "load_pairs_file",
    "load_prompt",
    "load_results",
    "make_llm_backend",
    "non_negative_int",
    "positive_int",
    "prompt_names",
    "resolve_path",
    "summarize_usage",
    "unknown_name",
]
