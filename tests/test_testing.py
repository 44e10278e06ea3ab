"""harness.testing: the fake encoder honours its options, and `check_encoder` names what is broken."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Sequence
from typing import Any

import pytest

torch = pytest.importorskip("torch")

from harness import EncodedBatch, EncoderOptions, EncoderSpec  # noqa: E402
from harness.features.cache import encoder_fingerprint  # noqa: E402
from harness.testing import FakeEncoder, check_encoder, harness_load_encoder  # noqa: E402

SPEC = EncoderSpec(name="fake", family="fake", checkpoint="seed-0", options=EncoderOptions(template="plain"))


def test_fake_encoder_passes_the_conformance_check() -> None:
    check_encoder(harness_load_encoder, SPEC)
    check_encoder(harness_load_encoder, dataclasses.replace(SPEC, options=EncoderOptions(max_length=4, dtype="bfloat16", template="plain")),
                  texts=["one", "two words", "and now three"])


def test_fake_loader_honours_and_records_options() -> None:
    enc = harness_load_encoder(dataclasses.replace(SPEC, options=EncoderOptions(max_length=2, template="<{text}>")))
    assert enc is not None
    assert enc.format("a cat") == "<a cat>" and enc.format("a cat", role="statement") == "a cat"
    batch = enc.encode(["one two three", "one"])
    assert batch.attention_mask.tolist() == [[1, 1], [1, 0]] and batch.n_truncated == 1
    assert enc.info.options["max_length"] == 2 and enc.info.options["template"] == "<{text}>"
    assert enc.info.options["seed"] == 0


def test_fake_defaults_unchanged() -> None:
    """Direct construction keeps its 64-word cap and plain formatting (pinned scores depend on it)."""
    enc = FakeEncoder()
    assert enc.max_length == 64 and enc.info.options["max_length"] == 64
    assert enc.format("a cat", caption_type="video") == "a cat"


# ---------------------------------------------------------------------------------------------
# Broken encoders: each must fail the check with a message that says what is wrong.


class _DropsLastLayer(FakeEncoder):
    def encode(self, texts: Sequence[str], *, up_to_layer: int | None = None) -> EncodedBatch:
        out = super().encode(texts, up_to_layer=up_to_layer)
        return dataclasses.replace(out, hidden_states=tuple(out.hidden_states)[:-1])


class _MaskOfTwos(FakeEncoder):
    def encode(self, texts: Sequence[str], *, up_to_layer: int | None = None) -> EncodedBatch:
        out = super().encode(texts, up_to_layer=up_to_layer)
        return dataclasses.replace(out, attention_mask=out.attention_mask * 2)


class _EmptyRow(FakeEncoder):
    def encode(self, texts: Sequence[str], *, up_to_layer: int | None = None) -> EncodedBatch:
        out = super().encode(texts, up_to_layer=up_to_layer)
        out.attention_mask[-1] = 0
        return out


class _NaN(FakeEncoder):
    def encode(self, texts: Sequence[str], *, up_to_layer: int | None = None) -> EncodedBatch:
        out = super().encode(texts, up_to_layer=up_to_layer)
        out.hidden_states[-1][0, 0, 0] = float("nan")
        return out


class _PartialDiffers(FakeEncoder):
    def encode(self, texts: Sequence[str], *, up_to_layer: int | None = None) -> EncodedBatch:
        out = super().encode(texts, up_to_layer=up_to_layer)
        if up_to_layer is not None:
            out.hidden_states[0].add_(1.0)
        return out


class _IgnoresTemplate(FakeEncoder):
    def format(self, text: str, *, role: str = "caption", caption_type: str = "image") -> str:
        return text


class _BadFormat(FakeEncoder):
    def format(self, text: str, *, role: str = "caption", caption_type: str = "image") -> str:
        return [text]  # type: ignore[return-value]


def _subclass(cls: type[FakeEncoder]) -> Callable[[EncoderSpec], Any]:
    return lambda spec: cls(spec.name, options=spec.options)


def _options_not_recorded(spec: EncoderSpec) -> Any:
    enc = FakeEncoder(spec.name, options=spec.options)
    enc.info = dataclasses.replace(enc.info, options={"seed": 0})
    return enc


def _max_length_ignored(spec: EncoderSpec) -> Any:
    enc = FakeEncoder(spec.name, options=dataclasses.replace(spec.options, max_length=512))
    enc.info = dataclasses.replace(enc.info, options=spec.options.as_dict())  # records, does not honour
    return enc


def _wrong_width(spec: EncoderSpec) -> Any:
    enc = FakeEncoder(spec.name, options=spec.options)
    enc.info = dataclasses.replace(enc.info, width=17)
    return enc


BROKEN: dict[str, tuple[Callable[[EncoderSpec], Any], str]] = {
    "wrong-layer-count": (_subclass(_DropsLastLayer),
                          r"encode returned 3 hidden states; expected info.num_layers \+ 1 = 4"),
    "options-not-recorded": (_options_not_recorded,
                             r"changing options.max_length from 512 to 4 left harness.features.cache.encoder_fingerprint"),
    "max-length-ignored": (_max_length_ignored, r"options.max_length 4, a text kept 11 real tokens"),
    "template-ignored": (_subclass(_IgnoresTemplate), r"with options.template '\[check_encoder\] \{text\}'"),
    "mask-not-0-1": (_subclass(_MaskOfTwos), r"attention_mask holds \[0, 2\]; expected only 0 and 1"),
    "text-without-tokens": (_subclass(_EmptyRow), r"text 2 \('nothing'\) has no real token"),
    "nan": (_subclass(_NaN), r"hidden state 3 has NaN/inf on real tokens"),
    "partial-differs": (_subclass(_PartialDiffers), r"encode\(up_to_layer=0\) hidden state 0 differs"),
    "format-not-str": (_subclass(_BadFormat), r"format\(role='caption'\) returned list, not str"),
    "wrong-width": (_wrong_width, r"hidden state 0 has shape \[3, 11, 16\]; expected .* = \[3, 11, 17\]"),
    "not-claimed": (lambda spec: None, r"load returned None"),
}


@pytest.mark.parametrize(("load", "match"), list(BROKEN.values()), ids=list(BROKEN))
def test_check_encoder_names_what_is_broken(load: Callable[[EncoderSpec], Any], match: str) -> None:
    with pytest.raises(AssertionError, match=match):
        check_encoder(load, SPEC)


def test_options_change_the_fake_fingerprint() -> None:
    base = encoder_fingerprint(FakeEncoder(options=EncoderOptions(template="plain")).info)
    for change in ({"max_length": 4}, {"template": "granted-caption"}, {"dtype": "bfloat16"}):
        other = FakeEncoder(options=EncoderOptions(**{"template": "plain", **change})).info
        assert encoder_fingerprint(other) != base, f"{change} did not reach the cache key"


# ---------------------------------------------------------------------------------------------
# check_aggregator, check_scorer, check_category: the built-ins pass; broken ones are named.

import json  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from harness import AggregatorOptions, ConfigError, DownstreamMetric, ScoredRow, TrainReport  # noqa: E402
from harness.testing import check_aggregator, check_category, check_scorer  # noqa: E402


def test_builtin_aggregators_pass_the_check() -> None:
    import harness_plugins.aggregators as aggs

    for name in ("mean-pool", "context"):
        trains = aggs.harness_aggregator_trains(name)
        for layers in (1, 3):
            dim = check_aggregator(aggs.harness_make_aggregator, name, trains=trains, n_layers_in=layers)
            assert dim == (16 if name == "mean-pool" else 1024)


class _Pool:
    """A minimal untrained aggregator: masked mean, L2-normalised; subclasses break one thing each."""

    name = "pool"
    trainable = False

    def config(self) -> dict[str, Any]:
        return {"pooling": "mean"}

    def fit(self, features: Any, pairs: Any, *, seed: int, on_step: Any = None) -> TrainReport:
        return TrainReport()

    def _pool(self, x: Any, mask: Any) -> Any:
        if x.dim() == 4:
            x = x.mean(1)
        m = mask.float().unsqueeze(-1)
        return (x * m).sum(1) / m.sum(1)

    def embed(self, features: Any, texts: Sequence[str]) -> Any:
        rows = []
        for start in range(0, len(texts), 2):
            x, mask = features(texts[start:start + 2])
            rows.append(torch.nn.functional.normalize(self._pool(x, mask), dim=-1))
        return torch.cat(rows).numpy()

    def save(self, path: str) -> None:
        raise ConfigError("nothing to save")

    def load(self, path: str) -> None:
        raise ConfigError("nothing to load")


class _ReadsPadding(_Pool):
    def _pool(self, x: Any, mask: Any) -> Any:
        return x.mean(1)


class _NotNormalised(_Pool):
    def embed(self, features: Any, texts: Sequence[str]) -> Any:
        return 2 * super().embed(features, texts)


class _Sorted(_Pool):
    def embed(self, features: Any, texts: Sequence[str]) -> Any:
        return super().embed(features, sorted(texts))


class _OneRow(_Pool):
    def embed(self, features: Any, texts: Sequence[str]) -> Any:
        return super().embed(features, texts)[:1]


class _BadConfig(_Pool):
    def config(self) -> dict[str, Any]:
        return {"fn": len}


class _Trains(_Pool):
    """Trainable: a learned scale per feature; ``load`` here forgets what was saved unless told not to."""

    trainable = True
    keeps = True

    def __init__(self) -> None:
        self.w: Any = None

    def fit(self, features: Any, pairs: Any, *, seed: int, on_step: Any = None) -> TrainReport:
        torch.manual_seed(seed)
        self.w = torch.rand(16) + 0.5
        if on_step is not None:
            on_step(1, 0.5)
        return TrainReport(steps=1, losses=[0.5])

    def _pool(self, x: Any, mask: Any) -> Any:
        return super()._pool(x, mask) * self.w

    def save(self, path: str) -> None:
        torch.save(self.w, path)

    def load(self, path: str) -> None:
        self.w = torch.load(path) if self.keeps else torch.ones(16)


class _ForgetsOnLoad(_Trains):
    keeps = False


class _NoStep(_Trains):
    def fit(self, features: Any, pairs: Any, *, seed: int, on_step: Any = None) -> TrainReport:
        self.w = torch.ones(16)
        return TrainReport()


def _maker(cls: type, *, every_name: bool = False) -> Callable[..., Any]:
    def make(name: str, width: int, n_layers_in: int, options: AggregatorOptions) -> Any:
        return cls() if every_name or name == "pool" else None
    return make


def test_a_correct_aggregator_passes_trained_or_not() -> None:
    assert check_aggregator(_maker(_Pool), "pool", trains=False) == 16
    assert check_aggregator(_maker(_Trains), "pool", trains=True, n_layers_in=3) == 16


BROKEN_AGGREGATORS: dict[str, tuple[Callable[..., Any], bool, str]] = {
    "answers-every-name": (_maker(_Pool, every_name=True), False, r"built a _Pool for the name '__harness-check-not-yours__'"),
    "not-claimed": (lambda **kw: None, False, r"returned None for its own name"),
    "not-an-aggregator": (lambda name, **kw: object() if name == "pool" else None, False, r"lacks name, trainable"),
    "trains-disagrees": (_maker(_Pool), True, r"harness_aggregator_trains says True, but the aggregator's trainable is False"),
    "config-not-json": (_maker(_BadConfig), False, r"config\(\) is not JSON-serialisable"),
    "reads-padding": (_maker(_ReadsPadding), False, r"text 0 embeds differently in a batch with other texts than alone"),
    "not-normalised": (_maker(_NotNormalised), False, r"embed rows must be L2-normalised"),
    "wrong-order": (_maker(_Sorted), False, r"row 0 of embed is the embedding of text 3, not of text 0"),
    "wrong-shape": (_maker(_OneRow), False, r"embed of 5 texts returned shape \[1, 16\]"),
    "no-training-step": (_maker(_NoStep), True, r"fit on 8 pairs took no step"),
    "load-forgets": (_maker(_ForgetsOnLoad), True, r"save, then load into a freshly built aggregator, gives other"),
}


@pytest.mark.parametrize(("make", "trains", "match"), list(BROKEN_AGGREGATORS.values()), ids=list(BROKEN_AGGREGATORS))
def test_check_aggregator_names_what_is_broken(make: Callable[..., Any], trains: bool, match: str) -> None:
    with pytest.raises(AssertionError, match=match):
        check_aggregator(make, "pool", trains=trains)


def test_builtin_recorded_scorer_passes_the_check(tmp_path: Path) -> None:
    import harness_plugins.scorers as scorers

    table = tmp_path / "gen.csv"
    table.write_text("encoder,extractor,benchmark,metric,value,n\nminilm,last,geneval,overall,0.5,100\n")
    metrics = check_scorer(scorers.harness_make_scorer, "recorded", {"path": str(table)})
    assert metrics == [DownstreamMetric("geneval", "overall", 0.5, n=100, source=metrics[0].source)]
    with pytest.raises(AssertionError, match=r"Scorer 'recorded': building it raised ConfigError: .*needs a file"):
        check_scorer(scorers.harness_make_scorer, "recorded")


class _Echo:
    name = "echo"

    def __init__(self, metrics: Any = None) -> None:
        self.metrics = metrics

    def rows(self) -> list[Any]:
        return []

    def score(self, row: ScoredRow) -> Any:
        if self.metrics is not None:
            return self.metrics
        return [DownstreamMetric("echo", "ted", float(row.ted or 0), n=1)]


def _scorer(obj: Any, *, every_name: bool = False) -> Callable[..., Any]:
    return lambda name, options: obj if every_name or name == "echo" else None


BROKEN_SCORERS: dict[str, tuple[Callable[..., Any], str]] = {
    "answers-every-name": (_scorer(_Echo(), every_name=True), r"built a _Echo for the name '__harness-check-not-yours__'"),
    "not-claimed": (lambda name, options: None, r"returned None for its own name"),
    "not-a-scorer": (_scorer(object()), r"lacks name, rows or score"),
    "no-metric": (_scorer(_Echo([])), r"score\(row\) returned no metric for row check-encoder/last"),
    "not-a-list": (_scorer(_Echo((DownstreamMetric("a", "b", 1.0),))), r"score\(row\) returned a tuple, not a list"),
    "nan": (_scorer(_Echo([DownstreamMetric("a", "b", float("nan"))])), r"value nan is not a finite number"),
    "empty-metric-name": (_scorer(_Echo([DownstreamMetric("a", "", 1.0)])), r"metric '' must be non-empty"),
    "bad-ci": (_scorer(_Echo([DownstreamMetric("a", "b", 1.0, ci=(2.0, 1.0))])), r"ci \(2.0, 1.0\) must be"),
    "bad-n": (_scorer(_Echo([DownstreamMetric("a", "b", 1.0, n=-1)])), r"n -1 must be None or a count"),
    "not-a-metric": (_scorer(_Echo([{"value": 1.0}])), r"score\(row\)\[0\] is a dict, not harness.DownstreamMetric"),
}


def test_a_correct_scorer_passes() -> None:
    assert check_scorer(_scorer(_Echo()), "echo")[0].value == 61.5


@pytest.mark.parametrize(("make", "match"), list(BROKEN_SCORERS.values()), ids=list(BROKEN_SCORERS))
def test_check_scorer_names_what_is_broken(make: Callable[..., Any], match: str) -> None:
    with pytest.raises(AssertionError, match=match):
        check_scorer(make, "echo")


GOOD_CATEGORY = {
    "name": "Hand gesture",
    "definition": "The gesture a person makes with their hands.",
    "examples": [{"caption": "A man waves goodbye.", "positive": "The man waves.",
                  "negatives": ["The man points.", "The man claps."]}],
    "data": {"path": "gestures.jsonl"},
}
ROW = {"id": "g1", "category": "hand_gesture", "caption": "A girl waves at the bus.", "positive": "The girl waves.",
       "negatives": ["The girl claps."]}


def _category(tmp_path: Path, changes: dict[str, Any] | None = None, row: dict[str, Any] | None = None) -> Path:
    import yaml

    cat = {**GOOD_CATEGORY, **(changes or {})}
    (tmp_path / "gestures.jsonl").write_text(json.dumps({**ROW, **(row or {})}) + "\n")
    path = tmp_path / "hand_gesture.yaml"
    path.write_text(yaml.safe_dump({k: v for k, v in cat.items() if v is not None}))
    return path


def test_a_category_and_the_shipped_ones_pass(tmp_path: Path) -> None:
    found = check_category(_category(tmp_path))
    assert (found.slug, found.tasks, found.not_loaded) == ("hand_gesture", {"hand-gesture": 1}, {})
    from conftest import REPO

    sample = check_category(REPO / "tasks" / "categories" / "ocr.yaml")
    assert sample.tasks["ted6k-sample-ocr"] > 0 and "ted6k-ocr" in sample.not_loaded  # $TED6K_PATH is not set here


BROKEN_CATEGORIES: dict[str, tuple[dict[str, Any], dict[str, Any] | None, str]] = {
    "unknown-field": ({"colour": "red"}, None, r"unknown field\(s\) \['colour'\]"),
    "no-definition": ({"definition": None}, None, r"field 'definition' must be a non-empty string"),
    "bad-slug": ({"slug": "Hand Gesture"}, None, r"slug 'Hand Gesture' is not a lowercase identifier"),
    "no-examples": ({"examples": []}, None, r"has no examples"),
    "no-negatives": ({"examples": [{"caption": "c", "positive": "p", "negatives": []}]}, None,
                     r"examples\[0\] has no negatives"),
    "positive-is-negative": ({"examples": [{"caption": "c", "positive": "p", "negatives": ["p"]}]}, None,
                             r"the positive 'p' is also a negative"),
    "no-task": ({"data": None}, None, r"makes no task"),
    "group-without-base-or-data": ({"data": None, "groups": ["mine"]}, None, r"no base file \(_mine.yaml\)"),
    "data-missing": ({"data": {"path": "nowhere.jsonl"}}, None, r"task 'hand-gesture' does not load: .*nowhere.jsonl"),
    "data-of-another-category": ({}, {"category": "waving"}, r"selects category 'hand_gesture', but .* has no instance"),
}


@pytest.mark.parametrize(("changes", "row", "match"), list(BROKEN_CATEGORIES.values()), ids=list(BROKEN_CATEGORIES))
def test_check_category_names_what_is_broken(tmp_path: Path, changes: dict[str, Any], row: dict[str, Any] | None,
                                             match: str) -> None:
    with pytest.raises(AssertionError, match=match):
        check_category(_category(tmp_path, changes, row))


def test_fake_features_fill_padding() -> None:
    from harness.testing import check_features

    x, mask = check_features(8)(["one", "one two three"])
    assert x.shape == (2, 3, 8) and mask.tolist() == [[True, False, False], [True, True, True]]
    assert float(x[0, 1:].min()) == 1e3
    stack, _ = check_features(8, 3)(["one", "one two three"])
    assert stack.shape == (2, 3, 3, 8)
    assert np.isfinite(x.numpy()).all()


# ---------------------------------------------------------------------------------------------
# `harness check`: what it accepts, and one line naming the problem (the examples: tests/test_examples.py)


@pytest.fixture
def check(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    import sys

    from harness.cli.main import main

    monkeypatch.setattr(sys, "path", list(sys.path))  # harness check puts a source folder on it

    def run(*argv: str) -> tuple[int, str, str]:
        rc = main(list(argv))
        out, err = capsys.readouterr()
        return rc, out, err

    return run


ENCODER_PLUGIN = '''
from harness import hookimpl
from harness.testing import FakeEncoder

@hookimpl
def harness_encoder_families():
    return ["fake2"]

@hookimpl
def harness_load_encoder(spec):
    return FakeEncoder(spec.name, options=spec.options) if spec.family == "fake2" else None
'''


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


@pytest.mark.parametrize(("source", "match"), [
    ("from harness import hookimpl\n\ndef harness_load_encoder(spec):\n    return None\n",
     "harness_load_encoder is not marked @harness.hookimpl, so the harness never calls it"),
    ("from harness import hookimpl\n\n@hookimpl\ndef harness_load_encodr(spec):\n    return None\n",
     r"harness_load_encodr is not a harness hook \(did you mean harness_load_encoder\?\)"),
    ("X = 1\n", "implements no harness hook"),
    (ENCODER_PLUGIN, "encoder family 'fake2': nothing to check it on; .* give --encoder fake2:CHECKPOINT"),
    (ENCODER_PLUGIN.replace("@hookimpl\ndef harness_encoder_families", "@hookimpl\ndef harness_encoder_familiez"),
     "harness_encoder_familiez is not a harness hook"),
], ids=["unmarked", "misspelt", "no-hooks", "encoder-without-registry", "typo"])
def test_check_names_a_broken_plugin_file(tmp_path: Path, check: Any, source: str, match: str) -> None:
    plugin = tmp_path / f"plugin_{abs(hash(source))}.py"
    plugin.write_text(source)
    rc, _, err = check("check", str(plugin))
    assert rc == 2 and re.search(match, _one_line(err)), err


def test_check_an_encoder_plugin_file_with_an_encoder_named(tmp_path: Path, check: Any) -> None:
    plugin = tmp_path / "plugin_fake2.py"
    plugin.write_text(ENCODER_PLUGIN)
    rc, out, err = check("check", str(plugin), "--encoder", "fake2:seed-1")
    assert rc == 0, err
    assert "ok   hooks: harness_encoder_families, harness_load_encoder" in out
    assert "ok   encoder fake2:seed-1 (family fake2, checkpoint seed-1): 3 layers x width 16" in out


def test_check_a_project_folder_without_entry_point(tmp_path: Path, check: Any) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\nversion = "0.1"\n')
    rc, _, err = check("check", str(tmp_path))
    assert rc == 2 and "declares no entry point in the 'harness.plugins' group" in _one_line(err)


def test_check_an_unknown_target(check: Any) -> None:
    rc, _, err = check("check", "no_such_plugin_xyz")
    line = _one_line(err)
    assert rc == 2 and "not a path, an installed plugin's entry point or distribution, or an importable module" in line
    assert "builtin-data" in line, "the installed plugins are listed"


def test_check_installed_builtins_and_a_category_file(tmp_path: Path, check: Any) -> None:
    rc, out, err = check("check", "builtin-aggregators")
    assert rc == 0, err
    assert "ok   aggregator context: builds, embeds to [N, 1024] (trained a step, saved and reloaded)" in out
    table = tmp_path / "gen.csv"
    table.write_text("encoder,extractor,benchmark,metric,value\nminilm,last,geneval,overall,0.5\n")
    rc, out, err = check("check", "builtin-scorers")
    assert rc == 2 and "give its options with -O KEY=VALUE" in _one_line(err)
    rc, out, err = check("check", "builtin-scorers", "-O", f"path={table}")
    assert rc == 0 and "ok   scorer recorded: builds, scores a row: geneval overall = 0.5" in out, err
    rc, out, err = check("check", str(_category(tmp_path)))
    assert rc == 0 and "ok   category hand_gesture" in out and "hand-gesture (1 instances)" in out, err
