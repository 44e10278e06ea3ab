"""The run context `harness score` hands a scorer: the command's plugins and registry, each row's
encoder with the options its run recorded, and its features through the run's cache, bit for bit."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from harness import ConfigError, DownstreamMetric, ScoredRow, hookimpl
from harness.cli.main import build_parser, main
from harness.cli.score import _rows, score_context, score_rows
from harness.downstream.context import ScoreContext
from harness.plugins import get_plugin_manager

torch = pytest.importorskip("torch")

TINY = "pkg:harness/testing_data/tiny.jsonl"
RUN_FLAGS = ["--tasks", TINY, "--extract", "last,norm-avg", "--aggregator", "mean-pool", "--max-length", "16",
             "--template", "plain", "--bootstrap", "0", "--null-resamples", "0"]
EXTRA = """encoders:
  xfake:
    family: fake
    checkpoint: seed-1
    options: {max_length: 64, template: granted-caption}
"""


def _caption() -> str:
    """The longest caption of the tiny task: the run encoded it, so its cache holds it."""
    path = Path(__file__).resolve().parent.parent / "harness" / "testing_data" / "tiny.jsonl"
    return max((json.loads(line)["caption"] for line in path.read_text().splitlines() if line.strip()), key=len)


def _ted_run(out: Path, encoder: str, pre: Sequence[str], cache: Path, *flags: str) -> None:
    """``harness [pre] run --encoders ENCODER --max-length 16 --template plain [flags] --output OUT``."""
    argv = [*pre, "run", "--encoders", encoder, *RUN_FLAGS, *flags, "--cache-dir", str(cache), "--output", str(out)]
    assert main(argv) == 0


def _score_context(pre: Sequence[str], plugins: Sequence[str], out: Path) -> tuple[ScoreContext, dict]:
    """The context and rows `harness [pre] score OUT` builds (the same functions, the same flags)."""
    pm = get_plugin_manager(list(plugins))
    args = build_parser(pm).parse_args([*pre, "score", str(out), "--out", str(out.parent / "gen")])
    return score_context(args, pm), {r.key: r for r in _rows(args)}


def _bit_for_bit(out: Path, encoder: str, pre: Sequence[str], plugins: Sequence[str]) -> ScoreContext:
    """After a TED run (`_ted_run`: --max-length 16 --template plain) to ``out``, check that the score
    context's features of a caption are exactly what the run cached, and differ from registry defaults'."""
    prov = json.loads((out / "results.json").read_text())["provenance"]
    ctx, rows = _score_context(pre, plugins, out)
    caption = _caption()
    # the run's encoder, resolved as `harness run` does it (registry entry + the encoder flags)
    run_spec = ctx.registry.encoder(encoder)
    run_spec = replace(run_spec, options=replace(run_spec.options, max_length=16, template="plain"))
    run_enc = ctx.pm.hook.harness_load_encoder(spec=run_spec)
    from harness.features.cache import FeatureCache, encoder_fingerprint

    rec = prov["encoders"][encoder]
    cache = FeatureCache(Path(rec["feature_cache"]).parent, encoder_fingerprint(run_enc.info), dtype=rec["feature_dtype"])
    assert str(cache.dir) == rec["feature_cache"], "the run's cache folder must follow from its encoder"
    text = run_enc.format(caption, role="caption")
    try:
        for ext in ("last", "norm-avg"):
            row = rows[(encoder, ext)]
            enc = ctx.encoder(row)
            assert enc.format(caption, role="caption") == text, "the context must format as the run did"
            assert dict(enc.info.options) == dict(run_enc.info.options)
            stored = cache.read(cache.key(rec["extractors"][ext]["view"], text))
            assert stored is not None, f"the run cached no {ext} features of the caption"
            got = ctx.features(row, [text])
            assert got.cache == rec["feature_cache"] and got.dtype == rec["feature_dtype"]
            assert got.extractor.view.key == rec["extractors"][ext]["view"]
            assert torch.equal(got.features[0], stored.float()) and bool(got.mask.all()), \
                f"{encoder}/{ext}: the score context's features differ from the run's cache"
            # registry defaults (no --max-length / --template) read the caption differently
            default = ctx.pm.hook.harness_load_encoder(spec=ctx.registry.encoder(encoder))
            plain = ctx.with_encoders({encoder: default}).with_features(no_cache=True)
            base = plain.features(ScoredRow(encoder, ext), [default.format(caption, role="caption")])
            assert base.features.shape != got.features.shape or not torch.equal(base.features, got.features)
    finally:
        cache.close()
    return ctx


def test_registry_file_encoder_reads_the_runs_cache_bit_for_bit(tmp_path: Path) -> None:
    """An encoder only in `--registry extra.yaml`, run with -p harness.testing and float16 features."""
    (tmp_path / "extra.yaml").write_text(EXTRA)
    pre = ["-p", "harness.testing", "--registry", str(tmp_path / "extra.yaml")]
    _ted_run(tmp_path / "ted", "xfake", pre, tmp_path / "cache", "--feature-dtype", "float16")
    ctx = _bit_for_bit(tmp_path / "ted", "xfake", pre, ["harness.testing"])
    assert "xfake" in ctx.registry.encoders, "--registry must reach the context's registry"
    row = ScoredRow("xfake", "last")  # a bare --rows row: the registry's entry, its defaults
    assert ctx.encoder_spec(row).options.template == "granted-caption"


@pytest.fixture(scope="module")
def bert_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A TED run of a tiny BERT checkpoint named ad hoc as bert:PATH (its own feature cache)."""
    pytest.importorskip("transformers")
    from encoder_fixtures import build_tiny_checkpoint

    root = tmp_path_factory.mktemp("bert")
    name = f"bert:{build_tiny_checkpoint('bert', root)}"
    _ted_run(root / "ted", name, [], root / "cache")
    return root, name


def test_family_path_encoder_reads_the_runs_cache_bit_for_bit(bert_run: tuple[Path, str]) -> None:
    """An ad hoc FAMILY:PATH encoder; max_length 16 truncates and the template drops the caption prefix."""
    root, name = bert_run
    ctx = _bit_for_bit(root / "ted", name, [], [])
    assert ctx.registry.encoder(name).options.template == "granted-caption", "registry default for the check"


def test_harness_score_runs_on_a_family_path_row(bert_run: tuple[Path, str]) -> None:
    """`harness score DIR --scorer toy-t2i:smoke` on a bert:PATH row (refused as 'not in the registry' before)."""
    pytest.importorskip("diffusers")
    root, name = bert_run
    gen = root / "gen"
    argv = ["score", str(root / "ted"), "--scorer", "toy-t2i:smoke", "--rows", f"{name}/last", "--out", str(gen)]
    assert main(argv) == 0
    from harness.downstream.rows import read_downstream_file

    done = read_downstream_file(gen / "downstream.csv")
    assert {(r.encoder, r.extractor) for r, _ in done} == {(name, "last")}
    assert any(m.metric == "checker-acc" for _, m in done)
    assert (gen / "rows").is_dir()


def test_rows_without_a_record_resolve_through_the_registry() -> None:
    ctx = ScoreContext.create(get_plugin_manager(["harness.testing"]))
    spec = ctx.encoder_spec(ScoredRow("fake", "last"))
    assert (spec.family, spec.options.max_length) == ("fake", 64)
    with pytest.raises(ConfigError, match="FAMILY:PATH"):
        ctx.encoder_spec(ScoredRow("nope", "last"))


def _recorded_row(extractor: str = "last", **extra: Any) -> ScoredRow:
    prov = {"family": "fake", "checkpoint": "seed-0", "options": {"max_length": 8, "template": "plain", "seed": 0},
            "feature_dtype": "float32", "feature_cache": None, **extra}
    return ScoredRow("fake", extractor, provenance=prov)


def test_recorded_options_win_and_missing_plugins_are_named() -> None:
    row = _recorded_row()
    ctx = ScoreContext.create(get_plugin_manager(["harness.testing"]), device="meta")
    spec = ctx.encoder_spec(row)
    assert (spec.options.max_length, spec.options.template, spec.options.device) == (8, "plain", "meta")
    bare = ScoreContext.create(get_plugin_manager(["no:harness.testing"]))
    with pytest.raises(ConfigError, match=r"family 'fake'.*-p MODULE"):
        bare.encoder(row)
    wrong = _recorded_row(extractors={"last": {"view": "single:none:2", "include_embedding": None}})
    with pytest.raises(ConfigError, match="the run read view single:none:2"):
        ScoreContext.create(get_plugin_manager(["harness.testing"])).extractor(wrong)


class _Binding:
    """A third-party scorer with ``bind``: it gets the command's context before any row."""

    name = "binding"

    def __init__(self) -> None:
        self.context: Any = None

    def bind(self, context: ScoreContext) -> None:
        self.context = context

    def rows(self) -> Sequence[ScoredRow]:
        return []

    def score(self, row: ScoredRow) -> list[DownstreamMetric]:
        assert self.context is not None, "bind must come before score"
        enc = self.context.encoder(row)
        got = self.context.features(row, [enc.format("a red cup", role="caption")])
        return [DownstreamMetric("bind", "tokens", float(got.mask.sum()), 1)]


class _Plugin:
    def __init__(self) -> None:
        self.made: list[_Binding] = []

    @hookimpl
    def harness_scorer_names(self) -> list[str]:
        return ["binding"]

    @hookimpl
    def harness_make_scorer(self, name: str, options: Mapping[str, Any]) -> Any:
        if name != "binding":
            return None
        self.made.append(_Binding())
        return self.made[-1]


def test_score_binds_the_context_and_scorers_without_bind_still_work(tmp_path: Path) -> None:
    pm = get_plugin_manager(["harness.testing", "harness_plugins.scorers"])
    plugin = _Plugin()
    pm.register(plugin, name="binding-scorer")
    ctx = ScoreContext.create(pm)
    done = score_rows(pm, "binding", [ScoredRow("fake", "last")], tmp_path / "a", context=ctx, say=lambda _: None)
    assert plugin.made[-1].context is ctx and [m.value for _, m in done] == [3.0]
    recorded = tmp_path / "down.csv"
    recorded.write_text("encoder,extractor,benchmark,metric,value\nfake,last,b,m,0.5\n")
    done = score_rows(pm, str(recorded), [ScoredRow("fake", "last")], tmp_path / "b", say=lambda _: None)
    assert [m.value for _, m in done] == [0.5], "the recorded scorer has no bind and must keep working"


def test_toy_t2i_needs_a_bound_context() -> None:
    pytest.importorskip("diffusers")
    pm = get_plugin_manager(["harness_plugins.generator"])
    scorer = pm.hook.harness_make_scorer(name="toy-t2i", options={"config": "smoke"})
    with pytest.raises(ConfigError, match="no run context"):
        scorer.score(ScoredRow("fake", "last"))
