"""Plain data types shared by core and plugins.  No torch here.

Tensors appear only as ``Any``: they belong to the encoder plugin that made
them, and core code touching them imports torch inside functions.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

if TYPE_CHECKING:
    from harness.training_log import TrainingLog

__all__ = [
    "CaptionPair",
    "DownstreamMetric",
    "EncodedBatch",
    "Encoder",
    "EncoderInfo",
    "EncoderOptions",
    "EncoderSpec",
    "ExtractorSpec",
    "Instance",
    "Aggregator",
    "PairSetSpec",
    "FeatureBatchFn",
    "ScoredRow",
    "Scorer",
    "StepCallback",
    "TaskSpec",
    "TrainReport",
]

CaptionType = str  # "image" | "video"; anything else is kept verbatim
Fusion = Literal["none", "mean", "learned"]
NormType = Literal["layernorm", "rms", "none"]


@dataclass(frozen=True)
class Instance:
    """One benchmark item: a caption, one supported statement, >= 1 contradicting ones."""

    id: str
    category: str
    caption: str
    positive: str
    negatives: tuple[str, ...]
    caption_type: CaptionType = "image"
    source: str = ""  # "file:line" for error messages and samples.jsonl
    group: str | None = None  # the image or video the caption describes (as `CaptionPair.group`); None: unknown

    @property
    def candidates(self) -> tuple[str, ...]:
        """Positive first, then negatives: the order scores are reported in."""
        return (self.positive, *self.negatives)


@dataclass(frozen=True)
class CaptionPair:
    """Two captions of the same image or video; ``group`` names that image/video."""

    a: str
    b: str
    group: str | None = None
    caption_type: CaptionType = "image"


@dataclass(frozen=True)
class EncoderOptions:
    """Every option that changes the numbers an encoder produces.  Recorded in results."""

    dtype: str = "float32"  # float32 | bfloat16 | float16
    device: str = "cpu"
    device_map: str | None = None
    max_length: int = 512  # evaluation texts (captions, statements)
    train_max_length: int | None = None  # training pairs (None: max_length); the official code uses 1024
    # captions: granted-caption ("Caption Type: image\nCaption: ..." on every backbone, as the official
    # evaluation) | plain | chat | "...{text}..."; training pairs are encoded raw, as the official trainer
    template: str = "granted-caption"
    statement_template: str = "plain"  # statements (the official code encodes them plain)
    system_prompt: str | None = None
    drop_prefix_tokens: int = 0
    trust_remote_code: bool = False
    allow_missing_weights: bool = False
    adapter: str | None = None  # PEFT LoRA adapter path or hub id
    include_embedding: bool | None = None  # None: the family's default

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(frozen=True)
class EncoderSpec:
    """A named, pinned encoder: one registry.yaml entry or an ad-hoc FAMILY:PATH."""

    name: str
    family: str
    checkpoint: str
    revision: str | None = None
    options: EncoderOptions = field(default_factory=EncoderOptions)
    description: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict, hash=False, compare=False)


@dataclass(frozen=True)
class EncoderInfo:
    """What an encoder is, as loaded.  Everything here goes into results.json."""

    name: str
    family: str
    checkpoint: str
    revision: str | None
    num_layers: int  # transformer layers N; hidden_states has N + 1 entries
    width: int
    include_embedding_default: bool
    last_layer_note: str = ""  # e.g. "after the final norm"
    options: Mapping[str, Any] = field(default_factory=dict, hash=False, compare=False)
    # Decided once, at load time, and read everywhere (terminal, results.json, report, disk plan):
    max_length: int | None = None  # evaluation texts are cut here (the asked length, capped by the model)
    train_max_length: int | None = None  # training-pair texts are cut here
    template: str = ""  # the caption template applied (options.template)

    @property
    def length(self) -> int | None:
        """The evaluation truncation length: the typed field, else the asked option."""
        value = self.max_length or self.options.get("max_length")
        return int(value) if isinstance(value, int) else None

    @property
    def train_length(self) -> int | None:
        """The training-pair truncation length: the typed field, else the asked options."""
        value = self.train_max_length or self.options.get("train_max_length") or self.length
        return int(value) if isinstance(value, int) else None


@dataclass
class EncodedBatch:
    """Output of `Encoder.encode` for one batch of texts.

    ``hidden_states[0]`` is the embedding-layer output and ``hidden_states[i]``
    the output of transformer layer ``i`` (``1 <= i <= N``), each ``[B, T, D]``.
    ``attention_mask`` is ``[B, T]`` with 1 on tokens that count as features:
    padding and dropped template-prefix tokens are 0.  ``n_truncated`` counts the
    texts cut at the length limit and ``truncated`` (optional, one bool per text)
    says which: with it the feature cache remembers truncation, so a warm run
    reports the same count as a cold one.
    """

    hidden_states: Sequence[Any]
    attention_mask: Any
    n_truncated: int = 0
    truncated: Sequence[bool] | None = None


@runtime_checkable
class Encoder(Protocol):
    """A frozen text encoder that exposes the hidden states of every layer."""

    info: EncoderInfo

    def format(self, text: str, *, role: str = "caption", caption_type: str = "image") -> str:
        """Apply the prompt template for ``role`` ("caption" or "statement").

        The result is exactly what gets tokenized, deduplicated and cached.
        """
        ...

    def encode(self, texts: Sequence[str], *, up_to_layer: int | None = None,
               max_length: int | None = None) -> EncodedBatch:
        """Tokenize and run formatted ``texts``, truncated at ``max_length`` tokens (None: the evaluation
        length, ``options.max_length``; the runner passes ``options.train_max_length`` for training
        pairs).  Layers above ``up_to_layer`` may be skipped."""
        ...


@dataclass(frozen=True)
class ExtractorSpec:
    """How to read the layers: which ones, how to normalise, how to fuse.

    ``layers`` holds signed indices into ``hidden_states``: 0 is the embedding
    output, ``i`` the output of transformer layer ``i``, ``-1`` the last layer.
    ``"all"`` means every transformer layer, plus the embedding output when
    ``include_embedding`` (None: the encoder family's default).  ``sweep``
    expands, once the encoder's depth is known, into one ``layer:K`` per layer.
    """

    name: str  # the CLI string, e.g. "norm-avg" or "layer:-3"
    layers: tuple[int, ...] | Literal["all"]
    fusion: Fusion = "none"
    norm: NormType = "none"
    include_embedding: bool | None = None
    sweep: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(frozen=True)
class TaskSpec:
    """A named task: a data source plus the categories it keeps."""

    name: str
    source: str  # file path, package resource "pkg:module/rel/path", or a datasets id
    format: str = "auto"  # auto | jsonl | granted-json | hf
    categories: tuple[str, ...] | None = None  # None: keep all
    groups: tuple[str, ...] = ()
    revision: str | None = None
    split: str | None = None
    description: str = ""
    train_pairs: str | None = None  # the named pair set that trains aggregators for it when none is given
    version: str | None = None  # its YAML's `version:` (the data's; harness.data.task_versions); None: a bare data file
    category_version: str | None = None  # a category's task: the category file's `version:` (definition, select)


@dataclass(frozen=True)
class PairSetSpec:
    """A named set of caption pairs (``--train-pairs NAME``), declared in a registry file's ``pairs:``."""

    name: str
    source: str  # a pairs file (JSONL/JSON, gzip allowed) or "pkg:module/rel/path"
    description: str = ""
    default_max: int | None = None  # pairs used when a task's default set is taken implicitly (None: all)
    extra: dict[str, Any] = field(default_factory=dict)  # provenance fields (source repository, licence)

FeatureBatchFn = Callable[[Sequence[str]], tuple[Any, Any]]
"""texts -> (right-padded float32 features ``[B, (L,) T, D]``, bool token mask ``[B, T]``).  The harness's
own (`harness.features.store.StoreBatches`) also have ``padded(texts, pin=False)``: the same in the stored
dtype, padded into one (pinned) tensor, which a trainer on CUDA moves and widens on the device."""
StepCallback = Callable[[int, float], None]
"""(step number from 1, loss) after every optimiser step."""


@dataclass
class TrainReport:
    """What one aggregator training did: steps, time, the loss per step, final layer weights."""

    steps: int = 0
    seconds: float = 0.0
    losses: list[float] = field(default_factory=list)
    layer_weights: list[float] | None = None  # final softmax α of a learned extractor
    trajectory_steps: list[int] = field(default_factory=list)  # steps at which α was recorded (0 = init)
    layer_weight_trajectory: list[list[float]] = field(default_factory=list)  # α at those steps

    @property
    def first_loss(self) -> float:
        """Mean of the first 10 losses (NaN before any step)."""
        head = self.losses[:10]
        return sum(head) / len(head) if head else math.nan

    @property
    def final_loss(self) -> float:
        """Mean of the last 10 losses (NaN before any step)."""
        tail = self.losses[-10:]
        return sum(tail) / len(tail) if tail else math.nan


@runtime_checkable
class Aggregator(Protocol):
    """Turns a text's token features into one vector; may be trained on caption pairs.

    The ``harness_make_aggregator`` hook returns one per (encoder, extractor); building
    it must be cheap (weights are created by `fit` or `load`), because the runner asks
    every aggregator whether it is ``trainable`` before deciding to encode pairs.
    ``features`` maps a list of texts to right-padded float32 features and a token mask,
    already in the view the extractor asked for (``[B, L, T, D]`` when ``n_layers_in > 1``).
    """

    name: str
    trainable: bool

    def config(self) -> dict[str, Any]:
        """Every hyper-parameter that changes a number: recorded, and part of the checkpoint key."""
        ...

    def fit(self, features: FeatureBatchFn, pairs: Sequence[CaptionPair], *, seed: int,
            on_step: StepCallback | None = None, log: TrainingLog | None = None) -> TrainReport:
        """Train from a fresh, ``seed``-determined initialisation on ``pairs``.

        ``log`` (when logging is on): this training's TensorBoard log; loss and steps/s are already
        written through ``on_step``, so a fit adds only what it alone knows (``train/lr``, α per layer
        through `harness.training_log.TrainingLog.layer_weights`).  A fit without the ``log`` keyword
        still works: the runner passes it only to one that takes it."""
        ...

    def embed(self, features: FeatureBatchFn, texts: Sequence[str]) -> Any:
        """An ``[N, D]`` float numpy array, L2-normalised rows, in the order of ``texts``."""
        ...

    def save(self, path: str) -> None:
        """Write the trained state to ``path`` (trainable aggregators only)."""
        ...

    def load(self, path: str) -> None:
        """Read a state `save` wrote; raise on a file that does not fit."""
        ...


@dataclass(frozen=True)
class ScoredRow:
    """One row a downstream scorer is asked about: how an encoder was read, and what it was.

    ``encoder``/``extractor``/``aggregator`` are the CLI names of the row (``aggregator`` None:
    any, e.g. a paper's table that names none).  ``ted`` is its TED accuracy in percent when known
    (from a run, or printed beside the downstream number in a paper).  ``checkpoint``,
    ``revision`` and ``provenance`` (the run's record of the encoder) let a scorer that builds a
    generator find the same weights.
    """

    encoder: str
    extractor: str
    aggregator: str | None = None
    ted: float | None = None
    checkpoint: str | None = None
    revision: str | None = None
    provenance: Mapping[str, Any] = field(default_factory=dict, hash=False, compare=False)

    @property
    def key(self) -> tuple[str, str]:
        """(encoder, extractor): what a downstream table is joined on."""
        return (self.encoder, self.extractor)


@dataclass(frozen=True)
class DownstreamMetric:
    """One downstream number of a row: e.g. GenAI-Bench T2I, VQAScore, 76.17 over ``n`` prompts."""

    benchmark: str
    metric: str
    value: float
    n: int | None = None  # prompts / samples behind the value; None: not known
    source: str = ""  # "file:line" or a description, for messages
    ci: tuple[float, float] | None = None  # a confidence interval on value (e.g. 95% bootstrap), when known


@runtime_checkable
class Scorer(Protocol):
    """A downstream judge for `harness correlate`: how good a generator built on a row is.

    ``harness_make_scorer`` builds one by name.  A scorer that reads recorded numbers lists the
    rows it knows in `rows` (with the TED value printed beside them, if any), so correlate can
    run on them alone and name the closest keys when nothing matches; a scorer that computes its
    numbers on demand returns an empty list there.

    Optionally, ``bind(context)``: ``harness score`` calls it once, before `score`, with the
    command's `harness.downstream.context.ScoreContext` -- the plugin manager and registry as the
    command built them, ``context.encoder(row)`` (the row's encoder loaded with the options its
    TED run recorded) and ``context.features(row, texts)`` (the row's extractor view through the
    run's feature cache).  A scorer that needs neither has no ``bind`` (the ``recorded`` scorer).
    """

    name: str

    def rows(self) -> Sequence[ScoredRow]:
        """The rows this scorer holds numbers for (empty: it scores any row on demand)."""
        ...

    def score(self, row: ScoredRow) -> list[DownstreamMetric]:
        """The downstream metrics of ``row``; an empty list when the row is not known."""
        ...
