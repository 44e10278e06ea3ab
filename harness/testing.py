"""Offline helpers for testing plugins: a seeded `FakeEncoder`, a 5-row task and the conformance checks.

Register ``harness.testing`` as a plugin (``-p harness.testing``) to get the
encoder family ``fake`` (registry name ``fake``) and the task ``tiny``.

A plugin's own tests check what it contributes against the harness's contracts with one call
per kind; each raises `AssertionError` saying what is wrong::

    from harness.testing import check_aggregator, check_category, check_encoder, check_scorer

    def test_my_plugin_conforms():
        check_encoder(my_plugin.harness_load_encoder, EncoderSpec(name="x", family="mine", checkpoint=...))
        check_category("my_plugin/categories/weather.yaml")
        check_scorer(my_plugin.harness_make_scorer, "my-scorer")
        check_aggregator(my_plugin.harness_make_aggregator, "my-pool", trains=False)

``harness check PLUGIN_OR_PATH`` runs the same checks on an installed plugin or a source folder.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from harness._exceptions import HarnessError
from harness.encoding import drop_prefix, format_text, make_encoder_info
from harness.hookspecs import hookimpl
from harness.options import AggregatorOptions
from harness.types import (
    Aggregator,
    CaptionPair,
    DownstreamMetric,
    EncodedBatch,
    Encoder,
    EncoderInfo,
    EncoderOptions,
    EncoderSpec,
    ScoredRow,
    Scorer,
    TrainReport,
)

__all__ = ["CHECK_TEXTS", "CategoryCheck", "FakeEncoder", "NOT_YOURS", "TINY_PAIRS", "TINY_TASK", "check_aggregator",
           "check_category", "check_encoder", "check_scorer", "harness_encoder_families", "harness_load_encoder"]

DATA_DIR = Path(__file__).resolve().parent / "testing_data"
TINY_TASK = DATA_DIR / "tiny.jsonl"
TINY_PAIRS = DATA_DIR / "tiny_pairs.jsonl"
# A name no plugin owns: a factory hook must answer it with None.
NOT_YOURS = "__harness-check-not-yours__"
# Default texts for `check_encoder`: different lengths, so batches are padded.
CHECK_TEXTS = (
    "a red cat sits on the mat",
    "two dogs run across a green field while the sun sets",
    "nothing",
)


class FakeEncoder:
    """Deterministic bag-of-context encoder: word vectors from a hash, mixed over ``num_layers`` layers.

    Hidden state of layer ``i`` is ``tanh(W_i h_{i-1} + 0.5 * mean(h_{i-1}))``; token vectors
    depend only on the word and ``seed``, so results are reproducible across machines.
    ``options`` (default: ``EncoderOptions(max_length=max_length)``) is honoured like a
    real encoder's: templates, ``max_length`` (in words), ``dtype``, ``drop_prefix_tokens``.
    """

    def __init__(self, name: str = "fake", *, seed: int = 0, num_layers: int = 3, width: int = 16,
                 max_length: int = 64, options: EncoderOptions | None = None, revision: str | None = None) -> None:
        import torch

        # plain captions by default: the fake's numbers predate the official caption prefix
        self.options = options if options is not None else EncoderOptions(max_length=max_length, template="plain")
        self.seed, self.width, self.max_length = seed, width, self.options.max_length
        g = torch.Generator().manual_seed(seed)
        self.weights = [torch.randn(width, width, generator=g) / width**0.5 for _ in range(num_layers)]
        spec = EncoderSpec(name=name, family="fake", checkpoint=f"seed-{seed}", revision=revision, options=self.options)
        self.info = make_encoder_info(spec, num_layers=num_layers, width=width, include_embedding_default=True,
                                      last_layer_note="output of the last mixing layer", options_extra={"seed": seed})
        self.calls: list[int] = []  # batch sizes seen, for tests that count encoder work

    def format(self, text: str, *, role: str = "caption", caption_type: str = "image") -> str:
        """Apply ``options.template`` (captions) or ``options.statement_template`` (statements)."""
        return format_text(self.options, text, role=role, caption_type=caption_type)

    def _word(self, word: str) -> Any:
        import torch

        digest = hashlib.sha256(f"{self.seed}:{word.lower()}".encode()).digest()
        g = torch.Generator().manual_seed(int.from_bytes(digest[:8], "little"))
        return torch.randn(self.width, generator=g)

    def encode(self, texts: Sequence[str], *, up_to_layer: int | None = None,
               max_length: int | None = None) -> EncodedBatch:
        """One token per word (at most ``max_length``, default the options'); layers above ``up_to_layer`` are skipped."""
        import torch

        self.calls.append(len(texts))
        limit = self.max_length if max_length is None else max_length
        toks = [re.findall(r"\w+", t)[:limit] or ["<empty>"] for t in texts]
        t_max = max(len(t) for t in toks)
        h = torch.zeros(len(texts), t_max, self.width)
        mask = torch.zeros(len(texts), t_max, dtype=torch.long)
        for i, words in enumerate(toks):
            h[i, : len(words)] = torch.stack([self._word(w) for w in words])
            mask[i, : len(words)] = 1
        states = [h]
        m = mask.unsqueeze(-1).float()
        for w in self.weights[: up_to_layer]:
            ctx = (states[-1] * m).sum(1, keepdim=True) / m.sum(1, keepdim=True)
            states.append(torch.tanh(states[-1] @ w + 0.5 * ctx) * m)
        if self.options.dtype != "float32":
            states = [s.to(getattr(torch, self.options.dtype)) for s in states]
        truncated = [len(re.findall(r"\w+", t)) > limit for t in texts]
        return EncodedBatch(hidden_states=tuple(states), attention_mask=drop_prefix(mask, self.options.drop_prefix_tokens),
                            n_truncated=sum(truncated), truncated=truncated)


@hookimpl
def harness_encoder_families() -> list[str]:
    return ["fake"]


@hookimpl
def harness_load_encoder(spec: EncoderSpec) -> FakeEncoder | None:
    if spec.family != "fake":
        return None
    seed = int(spec.checkpoint.rsplit("-", 1)[-1]) if spec.checkpoint.startswith("seed-") else 0
    return FakeEncoder(spec.name, seed=seed, options=spec.options, revision=spec.revision)


@hookimpl
def harness_registry_files() -> list[Path]:
    return [DATA_DIR / "_registry.yaml"]


@hookimpl
def harness_task_dirs() -> list[Path]:
    return [DATA_DIR]


# ---------------------------------------------------------------------------------------------
# Conformance check for encoder plugins


def check_encoder(
    load: Callable[[EncoderSpec], Encoder | None],
    spec: EncoderSpec,
    *,
    texts: Sequence[str] | None = None,
) -> None:
    """Assert that ``load(spec)`` gives an encoder the harness can use; AssertionError says what is wrong.

    Checks, on ``texts`` (default `CHECK_TEXTS`): ``format`` returns a str for both
    roles and applies ``options.template``; ``encode`` returns ``num_layers + 1``
    hidden states, each ``[B, T, info.width]``, with a ``[B, T]`` 0/1 mask holding
    >= 1 real token per text and finite values on real tokens; ``up_to_layer=k``
    (k = 0, 1, N-1) repeats the full run's first k+1 hidden states; ``max_length``
    caps the real tokens; and changing ``max_length``, ``template`` or ``dtype``
    changes `harness.features.cache.encoder_fingerprint` (so cached features are not reused).
    ``load`` is called four times (spec, then three changed options); it is
    typically the plugin's ``harness_load_encoder``.
    """
    texts = tuple(CHECK_TEXTS if texts is None else texts)
    assert texts, "check_encoder needs at least one text"
    enc = _load(load, spec)
    where = f"Encoder {spec.name!r} (family {spec.family!r})"
    for role in ("caption", "statement"):
        out = enc.format(texts[0], role=role, caption_type="image")
        assert isinstance(out, str), f"{where}: format(role={role!r}) returned {type(out).__name__}, not str"
    formatted = [enc.format(t) for t in texts]
    full = _check_batch(enc.info, enc.encode(formatted), formatted, where=where)
    n = enc.info.num_layers
    for k in sorted({0, 1, n - 1} & set(range(n))):
        _check_up_to(enc, formatted, full, k=k, where=where)
    _check_options(load, spec, enc.info, texts=texts, where=where)


def _load(load: Callable[[EncoderSpec], Encoder | None], spec: EncoderSpec) -> Encoder:
    enc = load(spec)
    where = f"Encoder {spec.name!r} (family {spec.family!r})"
    assert enc is not None, f"{where}: load returned None (the plugin does not claim family {spec.family!r})"
    assert isinstance(enc, Encoder), (
        f"{where}: load returned a {type(enc).__name__}, which lacks info, format or encode (harness.types.Encoder)"
    )
    info = enc.info
    assert isinstance(info, EncoderInfo), f"{where}: info is a {type(info).__name__}, not harness.EncoderInfo"
    assert info.num_layers >= 1 and info.width >= 1, (
        f"{where}: info.num_layers {info.num_layers!r} and info.width {info.width!r} must both be >= 1"
    )
    return enc


def _check_batch(info: EncoderInfo, batch: EncodedBatch, texts: Sequence[str], *, where: str) -> tuple[Any, list[Any]]:
    """Check shapes, mask and finiteness; return (bool mask, float32 CPU hidden states)."""
    import torch

    hs = list(batch.hidden_states)
    assert len(hs) == info.num_layers + 1, (
        f"{where}: encode returned {len(hs)} hidden states; expected info.num_layers + 1 = {info.num_layers + 1} "
        "(the embedding output, then one per layer)"
    )
    mask = torch.as_tensor(batch.attention_mask).detach().cpu()
    assert mask.ndim == 2 and mask.shape[0] == len(texts), (
        f"{where}: attention_mask has shape {list(mask.shape)}; expected [B, T] with B = {len(texts)} texts"
    )
    values = {int(v) for v in mask.flatten().tolist()}
    assert values <= {0, 1}, f"{where}: attention_mask holds {sorted(values)}; expected only 0 and 1"
    for row, text in enumerate(texts):
        assert int(mask[row].sum()) >= 1, f"{where}: text {row} ({text!r}) has no real token (mask row all 0)"
    b, t = mask.shape
    keep = mask.bool()
    states = []
    for i, h in enumerate(hs):
        shape = tuple(h.shape)
        assert shape == (b, t, info.width), (
            f"{where}: hidden state {i} has shape {list(shape)}; expected [B, T, info.width] = [{b}, {t}, {info.width}] "
            "(T from attention_mask)"
        )
        h = h.detach().float().cpu()
        assert bool(torch.isfinite(h[keep]).all()), f"{where}: hidden state {i} has NaN/inf on real tokens"
        states.append(h)
    assert isinstance(batch.n_truncated, int) and batch.n_truncated >= 0, (
        f"{where}: n_truncated {batch.n_truncated!r} is not a count >= 0"
    )
    if batch.truncated is not None:
        flags = list(batch.truncated)
        assert len(flags) == b and all(isinstance(f, bool) for f in flags), (
            f"{where}: truncated must be one bool per text ({b}), got {flags!r:.200}"
        )
        assert sum(flags) == batch.n_truncated, (
            f"{where}: truncated flags {sum(flags)} texts but n_truncated is {batch.n_truncated}"
        )
    return keep, states


def _check_up_to(enc: Encoder, texts: Sequence[str], full: tuple[Any, list[Any]], *, k: int, where: str) -> None:
    import torch

    keep, states = full
    part = list(enc.encode(texts, up_to_layer=k).hidden_states)
    assert len(part) >= k + 1, f"{where}: encode(up_to_layer={k}) returned {len(part)} hidden states; expected >= {k + 1}"
    for i in range(k + 1):
        exact = part[i].dtype in (torch.float32, torch.float64)
        h = part[i].detach().float().cpu()
        assert h.shape == states[i].shape, (
            f"{where}: encode(up_to_layer={k}) hidden state {i} has shape {list(h.shape)}; "
            f"the full run's has {list(states[i].shape)}"
        )
        diff = float((h[keep] - states[i][keep]).abs().max())
        rtol, atol = (1e-4, 1e-5) if exact else (2e-2, 2e-2)
        assert torch.allclose(h[keep], states[i][keep], rtol=rtol, atol=atol), (
            f"{where}: encode(up_to_layer={k}) hidden state {i} differs from the full run's on real tokens "
            f"(max abs diff {diff:.3g}); layers 0..{k} must equal those of a full forward"
        )


def _check_options(
    load: Callable[[EncoderSpec], Encoder | None], spec: EncoderSpec, info: EncoderInfo, *,
    texts: Sequence[str], where: str,
) -> None:
    """Reload with a changed max_length, template and dtype: each must be honoured and reach the cache key."""
    from harness.features.cache import encoder_fingerprint

    opts = spec.options
    changes: dict[str, Any] = {
        "max_length": 3 if opts.max_length == 4 else 4,
        "template": "[check_encoder] {text}",
        "dtype": "bfloat16" if opts.dtype == "float32" else "float32",
    }
    before = encoder_fingerprint(info)
    for field, value in changes.items():
        changed = _load(load, dataclasses.replace(spec, options=dataclasses.replace(opts, **{field: value})))
        assert encoder_fingerprint(changed.info) != before, (
            f"{where}: changing options.{field} from {getattr(opts, field)!r} to {value!r} left "
            "harness.features.cache.encoder_fingerprint(info) unchanged, so features cached for the old value would be "
            "reused; record every option in info.options (harness.encoding.make_encoder_info does)"
        )
        if field == "template":
            got, want = changed.format(texts[0]), value.format(text=texts[0])
            assert got == want, f"{where}: with options.template {value!r}, format() gave {got!r}; expected {want!r}"
        if field == "max_length":
            mask = changed.encode([changed.format(t) for t in texts]).attention_mask
            most = int(mask.sum(dim=1).max())
            assert most <= value, (
                f"{where}: with options.max_length {value}, a text kept {most} real tokens; max_length is not honoured"
            )


# ---------------------------------------------------------------------------------------------
# Conformance check for statement categories


@dataclasses.dataclass(frozen=True)
class CategoryCheck:
    """What `check_category` found: the category's slug, its tasks' instance counts, and the tasks it
    resolved but could not load here (task name -> why, e.g. a data set behind an unset variable)."""

    slug: str
    tasks: dict[str, int]
    not_loaded: dict[str, str]


def check_category(path: str | Path, *, pm: Any = None) -> CategoryCheck:
    """Assert that the category YAML at ``path`` is one the harness can use; AssertionError says what is wrong.

    Checks that it parses (`harness.data.category_defs.read_category`: known fields, a lowercase
    slug, a definition, well-formed examples), that it has at least one worked example whose
    positive is not also among its (>= 1) negatives, that it makes at least one task (``data:`` of
    its own, or ``groups:`` whose base ``_<group>.yaml`` exists) and that every task resolves and
    loads with >= 1 instance of the category.  A task whose data lies behind an unset environment
    variable (``$TED6K_PATH``) is resolved but not loaded (see `CategoryCheck.not_loaded`).
    ``pm`` (default: the installed plugins) loads the data and supplies the group bases.
    """
    from harness.data.category_defs import read_category
    from harness.data.loaders import select_categories
    from harness.registry import load_plugin_registry, resolve_path

    path = Path(path)
    if pm is None:
        from harness.plugins import get_plugin_manager

        pm = get_plugin_manager()
    where = f"Category {str(path)!r}"
    try:
        cat = read_category(path)
    except HarnessError as exc:
        raise AssertionError(str(exc)) from None
    where = f"Category {cat.slug!r} ({path})"
    assert cat.examples, (
        f"{where}: has no examples; give at least one (caption, positive, negatives): the statement-writing "
        "prompt shows them"
    )
    for i, ex in enumerate(cat.examples):
        assert ex.negatives, f"{where}: examples[{i}] has no negatives; give the statements that contradict its caption"
        assert ex.positive not in ex.negatives, f"{where}: examples[{i}]: the positive {ex.positive!r} is also a negative"
    try:
        registry = load_plugin_registry(pm)
        specs = registry.resolve_tasks([str(path)])
    except HarnessError as exc:
        raise AssertionError(f"{where}: its tasks do not resolve: {exc}") from None
    assert specs, f"{where}: makes no task; give it data: {{path: FILE}} or groups: [GROUP] with a base _GROUP.yaml"
    counts: dict[str, int] = {}
    skipped: dict[str, str] = {}
    for spec in specs:
        try:
            resolve_path(spec.source)
        except HarnessError as exc:  # e.g. $TED6K_PATH unset: the data is not here to load
            skipped[spec.name] = str(exc)
            continue
        try:
            loaded = pm.hook.harness_load_instances(task=spec)
            assert loaded is not None, f"{where}: no plugin loads task {spec.name!r} (format {spec.format!r})"
            kept = select_categories(spec, loaded)
        except HarnessError as exc:
            raise AssertionError(f"{where}: task {spec.name!r} does not load: {exc}") from None
        assert kept, f"{where}: task {spec.name!r} ({spec.source}) holds no instance of category {cat.slug!r}"
        counts[spec.name] = len(kept)
    return CategoryCheck(slug=cat.slug, tasks=counts, not_loaded=skipped)


# ---------------------------------------------------------------------------------------------
# Conformance check for downstream scorers

CHECK_ROW = ScoredRow(encoder="check-encoder", extractor="last", aggregator="mean-pool", ted=61.5)


def check_scorer(
    make: Callable[..., Scorer | None],
    name: str,
    options: dict[str, Any] | None = None,
    *,
    row: ScoredRow | None = None,
    pm: Any = None,
) -> list[DownstreamMetric]:
    """Assert that ``make(name=name, options=options)`` gives a scorer the harness can use; returns its metrics.

    ``make`` is typically the plugin's ``harness_make_scorer``.  Checks that it returns None for a
    name that is not its own (`NOT_YOURS`), builds ``name`` (any `harness.HarnessError` it raises
    is reported, so give the options it needs), that the result satisfies `harness.Scorer` (a
    ``name``, ``rows()`` of `harness.ScoredRow`, ``score(row)``), calls its optional ``bind`` with a
    ``harness score`` context (over ``pm``, default the installed plugins), and that scoring one row
    -- the first of ``rows()``, else ``row`` (default `CHECK_ROW`, TED 61.5%) -- returns >= 1
    well-formed `harness.DownstreamMetric`: non-empty benchmark and metric names, a finite value,
    ``n`` None or a count, ``ci`` None or a finite (low, high) with low <= high.
    """
    import math

    where = f"Scorer {name!r}"
    other = make(name=NOT_YOURS, options={})
    assert other is None, (
        f"{where}: harness_make_scorer built a {type(other).__name__} for the name {NOT_YOURS!r}, which is not "
        "its own; return None for names that are not yours (a factory hook that answers every name hides "
        "every other plugin's)"
    )
    try:
        scorer = make(name=name, options=dict(options or {}))
    except HarnessError as exc:
        raise AssertionError(f"{where}: building it raised {type(exc).__name__}: {exc}") from None
    assert scorer is not None, f"{where}: harness_make_scorer returned None for its own name"
    assert isinstance(scorer, Scorer), (
        f"{where}: harness_make_scorer returned a {type(scorer).__name__}, which lacks name, rows or score "
        "(harness.Scorer)"
    )
    assert isinstance(scorer.name, str) and scorer.name, f"{where}: its name is {scorer.name!r}, not a non-empty str"
    bind = getattr(scorer, "bind", None)
    if callable(bind):
        from harness.downstream.context import ScoreContext

        bind(ScoreContext.create(pm))
    known = list(scorer.rows())
    bad = [r for r in known if not isinstance(r, ScoredRow)]
    assert not bad, f"{where}: rows() holds a {type(bad[0]).__name__}; expected harness.ScoredRow"
    target = known[0] if known else (row or CHECK_ROW)
    metrics = scorer.score(target)
    assert isinstance(metrics, list), f"{where}: score(row) returned a {type(metrics).__name__}, not a list"
    assert metrics, (
        f"{where}: score(row) returned no metric for row {target.encoder}/{target.extractor} (TED {target.ted}); "
        "a scorer that scores on demand must score any row, one that reads recorded numbers lists them in rows()"
    )
    for i, m in enumerate(metrics):
        at = f"{where}: score(row)[{i}]"
        assert isinstance(m, DownstreamMetric), f"{at} is a {type(m).__name__}, not harness.DownstreamMetric"
        assert isinstance(m.benchmark, str) and m.benchmark and isinstance(m.metric, str) and m.metric, (
            f"{at}: benchmark {m.benchmark!r} and metric {m.metric!r} must be non-empty strings"
        )
        assert isinstance(m.value, (int, float)) and not isinstance(m.value, bool) and math.isfinite(m.value), (
            f"{at}: value {m.value!r} is not a finite number"
        )
        assert m.n is None or (isinstance(m.n, int) and not isinstance(m.n, bool) and m.n >= 0), (
            f"{at}: n {m.n!r} must be None or a count >= 0"
        )
        if m.ci is not None:
            ok = (len(m.ci) == 2 and all(isinstance(v, (int, float)) and math.isfinite(v) for v in m.ci)
                  and m.ci[0] <= m.ci[1])
            assert ok, f"{at}: ci {m.ci!r} must be None or a finite (low, high) with low <= high"
    return metrics


# ---------------------------------------------------------------------------------------------
# Conformance check for aggregators

CHECK_AGGREGATOR_OPTIONS = AggregatorOptions(epochs=1, batch_size=4, embed_batch_size=2)
_MORE_TEXTS = ("a cat", "the small dog chases a red ball across the yard and back again")


def check_features(width: int, n_layers_in: int = 1) -> Callable[[Sequence[str]], tuple[Any, Any]]:
    """A `harness.types.FeatureBatchFn` from a `FakeEncoder`: right-padded float32 ``[B, T, D]`` features
    (``[B, L, T, D]`` for ``n_layers_in`` > 1) and a bool ``[B, T]`` mask.  Padding holds 1e3, so an
    aggregator that reads it gives different numbers for a text alone and in a batch."""
    import torch

    enc = FakeEncoder("check", num_layers=max(1, n_layers_in), width=width)

    def features(texts: Sequence[str]) -> tuple[Any, Any]:
        batch = enc.encode(list(texts))
        mask = torch.as_tensor(batch.attention_mask).bool()
        if n_layers_in > 1:
            x = torch.stack(list(batch.hidden_states[1: n_layers_in + 1]), dim=1)
            x = x.masked_fill(~mask[:, None, :, None], 1e3)
        else:
            x = batch.hidden_states[-1].masked_fill(~mask[..., None], 1e3)
        return x.float(), mask

    return features


def check_aggregator(
    make: Callable[..., Aggregator | None],
    name: str,
    *,
    trains: bool | None = None,
    width: int = 16,
    n_layers_in: int = 1,
    options: AggregatorOptions = CHECK_AGGREGATOR_OPTIONS,
    texts: Sequence[str] | None = None,
    pairs: Sequence[CaptionPair] | None = None,
) -> int:
    """Assert that ``make(name=..., width=..., n_layers_in=..., options=...)`` gives an aggregator the
    harness can use; returns the width of its embeddings.

    ``make`` is typically the plugin's ``harness_make_aggregator``; ``trains`` what its
    ``harness_aggregator_trains(name)`` says.  Checks that it returns None for a name that is not
    its own (`NOT_YOURS`), that the result satisfies `harness.Aggregator` with a bool ``trainable``
    (equal to ``trains``) and a JSON-serialisable ``config()``; when trainable, that ``fit`` on
    ``pairs`` (default: the 8 tiny pairs) takes >= 1 step with finite losses and returns a
    `harness.TrainReport`, and that ``save`` then ``load`` into a freshly built one gives the same
    embeddings; and that ``embed`` of ``texts`` (`check_features`: fake features, padding filled
    with 1e3) is an ``[N, D]`` array of finite, L2-normalised rows, row ``i`` equal to text ``i``
    embedded alone (so rows keep the order of ``texts`` and padding is masked).
    """
    import json
    import math
    import tempfile

    import numpy as np

    where = f"Aggregator {name!r} (width {width}, n_layers_in {n_layers_in})"

    def build(for_name: str) -> Aggregator | None:
        return make(name=for_name, width=width, n_layers_in=n_layers_in, options=options)

    other = build(NOT_YOURS)
    assert other is None, (
        f"{where}: harness_make_aggregator built a {type(other).__name__} for the name {NOT_YOURS!r}, which is "
        "not its own; return None for names that are not yours (a factory hook that answers every name hides "
        "every other plugin's)"
    )
    agg = build(name)
    assert agg is not None, f"{where}: harness_make_aggregator returned None for its own name"
    assert isinstance(agg, Aggregator), (
        f"{where}: harness_make_aggregator returned a {type(agg).__name__}, which lacks name, trainable, config, "
        "fit, embed, save or load (harness.Aggregator)"
    )
    assert isinstance(agg.trainable, bool), f"{where}: trainable is {agg.trainable!r}, not a bool"
    assert trains is None or trains == agg.trainable, (
        f"{where}: harness_aggregator_trains says {trains}, but the aggregator's trainable is {agg.trainable}"
    )
    config = agg.config()
    assert isinstance(config, dict), f"{where}: config() returned a {type(config).__name__}, not a dict"
    try:
        json.dumps(config)
    except (TypeError, ValueError) as exc:
        raise AssertionError(f"{where}: config() is not JSON-serialisable ({exc}); it is recorded in results "
                             "and keys the checkpoint") from None
    texts = list(CHECK_TEXTS + _MORE_TEXTS if texts is None else texts)
    assert len(texts) >= 2, "check_aggregator needs at least two texts"
    features = check_features(width, n_layers_in)
    saved: Any = None
    if agg.trainable:
        if pairs is None:
            from harness.data.loaders import load_pairs_file

            pairs = load_pairs_file(TINY_PAIRS)
        steps: list[float] = []
        report = agg.fit(features, list(pairs), seed=0, on_step=lambda step, loss: steps.append(loss))
        assert isinstance(report, TrainReport), f"{where}: fit returned a {type(report).__name__}, not harness.TrainReport"
        losses = list(report.losses) or steps
        assert report.steps >= 1 and losses, (
            f"{where}: fit on {len(pairs)} pairs took no step (report.steps {report.steps}); a trainable "
            "aggregator must train"
        )
        assert all(math.isfinite(v) for v in losses), f"{where}: fit gave non-finite losses {losses[:5]}"
    emb = np.asarray(agg.embed(features, texts))
    assert emb.ndim == 2 and emb.shape[0] == len(texts) and emb.shape[1] >= 1, (
        f"{where}: embed of {len(texts)} texts returned shape {list(emb.shape)}; expected [N, D] = [{len(texts)}, D]"
    )
    assert np.isfinite(emb).all(), f"{where}: embed returned NaN/inf"
    norms = np.linalg.norm(emb, axis=1)
    assert np.allclose(norms, 1.0, atol=1e-3), (
        f"{where}: embed rows must be L2-normalised; their norms are {np.round(norms, 4).tolist()}"
    )
    alone = [np.asarray(agg.embed(features, [t])) for t in texts]  # no other text, so no padding
    assert all(a.shape == (1, emb.shape[1]) for a in alone), (
        f"{where}: embed of one text returned shape {list(alone[0].shape)}; expected [1, {emb.shape[1]}]"
    )
    same = np.isclose(emb[:, None, :], np.concatenate(alone)[None, :, :], atol=1e-4).all(-1)  # row i ~ text j alone
    for i in range(len(texts)):
        if not same[i, i]:
            matches = np.flatnonzero(same[i])
            assert not matches.size, (
                f"{where}: row {i} of embed is the embedding of text {int(matches[0])}, not of text {i}; rows must "
                "follow the order of texts"
            )
            raise AssertionError(
                f"{where}: text {i} embeds differently in a batch with other texts than alone; padding must be "
                "masked (features are right-padded; the mask says which tokens are real)"
            )
    if agg.trainable:
        with tempfile.TemporaryDirectory() as tmp:
            ckpt = str(Path(tmp) / "aggregator.ckpt")
            agg.save(ckpt)
            fresh = build(name)
            assert fresh is not None, f"{where}: harness_make_aggregator returned None for its own name"
            fresh.load(ckpt)
            saved = np.asarray(fresh.embed(features, texts))
        assert saved.shape == emb.shape and np.allclose(saved, emb, atol=1e-5), (
            f"{where}: save, then load into a freshly built aggregator, gives other embeddings; checkpoints "
            "must restore the trained state"
        )
    return int(emb.shape[1])
