"""Everything a plugin may import from the harness, in one place.

Plugins (first-party ones included: a test checks) import from ``harness`` (the types, protocols,
options, errors and ``hookimpl``) or from this module (the helpers below); every other module is
internal and may move.  Hook modules that must stay light import from ``harness``; this module
pulls in more of the core (never torch) and is meant for a plugin's implementation modules.

Encoder plugins: `harness.encoding`'s building blocks (templates, tokenization with truncation
flags, prefix dropping, finite checks, stopping a forward after layer k, `make_encoder_info`).
Aggregators: `FeatureBatchFn`, `StepCallback`, `NormType`, the torchrun helpers (`distributed`).
Trainers (aggregators, generator scorers): `TrainingLog`, `open_training_log`, `run_name` (TensorBoard).
Baselines: `TaskSet`, scoring and result records, `slice_records`, `compare_rows`, the terminal
tables.  LLM users: prompt files and usage accounting.  Data plugins: the file loaders.  Scorers:
`read_downstream_file`, `mean_ci`.
"""

from __future__ import annotations

from harness import *  # noqa: F403 -- the package's public names are part of this API too
from harness import __all__ as _package_all
from harness.baselines import non_negative_int, positive_int
from harness.data.loaders import load_hf_instances, load_instances_file, load_pairs_file
from harness.downstream.context import ScoreContext
from harness.downstream.rows import read_downstream_file
from harness.encoding import (
    check_finite,
    check_loading_info,
    check_template,
    drop_prefix,
    format_text,
    forward_up_to,
    hub_offline,
    make_encoder_info,
    require,
    resolve_dtype,
    tokenize_flagged,
)
from harness.evaluation.results import (
    Provenance,
    RunResult,
    SampleRecord,
    ScoreRecord,
    collect_versions,
    git_hash,
    jsonable,
)
from harness.evaluation.tasks import TaskSet
from harness.evaluation.scoring import Row, compare_rows, derange_captions, slice_records, summarize_over_seeds
from harness.evaluation.stats import mean_ci
from harness.features import distributed
from harness.features.store import ProgressFactory
from harness.llm.backend import Progress, fill_prompt, load_prompt, prompt_names
from harness.report.tables import comparison_table, result_tables
from harness.training_log import TrainingLog, open_training_log, run_name
from harness.types import FeatureBatchFn, NormType, StepCallback

__all__ = [
    *_package_all,
    "FeatureBatchFn",
    "NormType",
    "Progress",
    "ProgressFactory",
    "Provenance",
    "Row",
    "RunResult",
    "SampleRecord",
    "ScoreContext",
    "ScoreRecord",
    "StepCallback",
    "TaskSet",
    "TrainingLog",
    "check_finite",
    "check_loading_info",
    "check_template",
    "collect_versions",
    "compare_rows",
    "comparison_table",
    "derange_captions",
    "distributed",
    "drop_prefix",
    "fill_prompt",
    "format_text",
    "forward_up_to",
    "git_hash",
    "hub_offline",
    "jsonable",
    "load_hf_instances",
    "load_instances_file",
    "load_pairs_file",
    "load_prompt",
    "make_encoder_info",
    "mean_ci",
    "non_negative_int",
    "open_training_log",
    "positive_int",
    "prompt_names",
    "read_downstream_file",
    "require",
    "resolve_dtype",
    "result_tables",
    "run_name",
    "slice_records",
    "summarize_over_seeds",
    "tokenize_flagged",
]
