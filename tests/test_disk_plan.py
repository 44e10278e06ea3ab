"""Disk plan: size parsing, per-view estimates (tokens x layers x width x itemsize), budget decisions,
--feature-dtype auto, --cache-fsync and the cache's disk use in the results."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

pytest.importorskip("torch")

from conftest import TINY_PAIRS  # noqa: E402

from harness.cli.argtypes import byte_size  # noqa: E402
from harness._exceptions import CacheError  # noqa: E402
from harness.cli.main import main  # noqa: E402
from harness.features.disk_plan import (  # noqa: E402
    DEFAULT_BUDGET_CAP,
    DEFAULT_BUDGET_RULE,
    ENTRY_OVERHEAD,
    IN_LOOP,
    SPECIAL_TOKENS,
    ViewNeed,
    bytes_per_token,
    default_budget,
    estimate_views,
    format_bytes,
    plan_disk,
    resolve_feature_dtype,
)
from harness.features.views import View  # noqa: E402

BASE = ["-p", "harness.testing", "run", "--encoders", "fake", "--tasks", "tiny", "--preset", "baby",
        "--train-pairs", TINY_PAIRS, "--bootstrap", "0", "--null-resamples", "0"]
STACK = View("stack", (0, 1, 2, 3), "layernorm")
LAST = View("single", (3,), "none")


@pytest.mark.parametrize(("text", "value"), [
    ("500M", 500 * 10**6), ("3G", 3 * 10**9), ("1.5T", 15 * 10**11), ("2GB", 2 * 10**9), ("4GiB", 4 << 30),
    ("1024", 1024), ("0", 0), (".5k", 500), ("7mib", 7 << 20),
], ids=lambda x: str(x))
def test_byte_size_reads_decimal_and_binary_units(text: str, value: int) -> None:
    assert byte_size(text) == value


@pytest.mark.parametrize("text", ["", "-1", "3X", "nan", "inf", "1e3", "G", "3iB", "1.2.3", "9" * 400 + "T"])
def test_byte_size_refuses_what_is_not_a_size(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="size"):
        byte_size(text)


@pytest.mark.parametrize("bad", ["3X", "-2G", "lots"])
def test_bad_cache_budget_is_one_line_exit_2(bad: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main([*BASE, f"--cache-budget={bad}"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--cache-budget" in err and "500M, 3G, 1.5T" in err, err


def test_bytes_per_token_is_layers_times_width_times_itemsize() -> None:
    assert bytes_per_token(STACK, 16, "float32") == 4 * 16 * 4
    assert bytes_per_token(STACK, 4096, "bfloat16") == 4 * 4096 * 2
    assert bytes_per_token(View("mean", (1, 2, 3), "layernorm"), 384, "float32") == 384 * 4, "a mean is one layer"
    assert bytes_per_token(LAST, 384, "float16") == 768
    # Qwen3-VL-8B (36 layers + embeddings dropped for MLLMs = 36, width 4096) in bf16: 288 KiB per token
    assert bytes_per_token(View("stack", tuple(range(1, 37)), "layernorm"), 4096, "bfloat16") == 294_912


def test_estimate_without_a_tokenizer_is_the_byte_upper_bound() -> None:
    """The fake encoder exposes no tokenizer: each text is priced at UTF-8 bytes + 8, capped at max_length."""
    from harness.testing import FakeEncoder

    enc = FakeEncoder(max_length=20)  # 3 layers + embeddings, width 16
    texts = ["a red cat", "ünï", "x " * 40]  # 9 bytes; 5 bytes; 80 bytes (capped at 20)
    needs = estimate_views(enc, "evaluation", texts, {STACK: ["learned"], LAST: ["last"]}, dtype="float32",
                           cache=None)
    stack, last = needs
    tokens = (9 + SPECIAL_TOKENS) + (5 + SPECIAL_TOKENS) + 20
    assert (stack.tokens, stack.exact, stack.n_texts, stack.extractors) == (tokens, False, 3, ("learned",))
    assert stack.nbytes == tokens * 4 * 16 * 4 + 3 * ENTRY_OVERHEAD
    assert last.nbytes == tokens * 16 * 4 + 3 * ENTRY_OVERHEAD
    assert "<= 50 tokens" in stack.line() and "evaluation view learned/stack: 3 texts" in stack.line()


def _tiny_bert(tmp_path: Path) -> Any:
    from encoder_fixtures import build_tiny_checkpoint, tiny_spec

    from harness.plugins import get_plugin_manager

    path = build_tiny_checkpoint("bert", tmp_path)
    return get_plugin_manager([]).hook.harness_load_encoder(spec=tiny_spec("bert", path))


def test_estimate_with_the_tokenizer_is_exact_and_cached_texts_need_nothing(tmp_path: Path) -> None:
    """Tiny BERT (64 positions): token counts from its tokenizer, capped at 64, equal what the cache then
    holds; once cached, the same texts need no space."""
    from harness.features.cache import FeatureCache, encoder_fingerprint
    from harness.features.store import FeatureStore

    enc = _tiny_bert(tmp_path)
    stack = View("stack", (0, 1, 2), "layernorm")
    texts = ["a red cat sits on the mat", "nothing", " ".join(["two dogs run across a green field"] * 12)]
    cache = FeatureCache(tmp_path / "features", encoder_fingerprint(enc.info))
    need, = estimate_views(enc, "evaluation", texts, {stack: ["learned"]}, dtype="float32", cache=cache)
    assert need.exact and need.n_texts == 3 and need.n_cached == 0
    store = FeatureStore(enc, [stack], cache=cache)
    store.ensure(texts)
    stored = [store.get(stack, t).shape[1] for t in texts]
    assert stored[2] == 64, "the long text is truncated at the 64 positions"
    assert need.tokens == sum(stored), "the tokenizer count is what the cache holds"
    assert need.nbytes == sum(stored) * 3 * 32 * 4 + 3 * ENTRY_OVERHEAD
    again, = estimate_views(enc, "evaluation", texts, {stack: ["learned"]}, dtype="float32", cache=cache)
    assert (again.n_texts, again.n_cached, again.tokens, again.nbytes) == (0, 3, 0, 0)
    cache.close()


def _need(role: str, view: View, nbytes: int) -> ViewNeed:
    return ViewNeed(role=role, view=view, extractors=("x",), n_texts=1, n_cached=0, tokens=1, exact=True,
                    nbytes=nbytes, dtype="float32")


def test_plan_caches_single_views_and_stacks_while_they_fit(tmp_path: Path) -> None:
    needs = [_need("evaluation", LAST, 100), _need("evaluation", STACK, 400), _need("training", LAST, 200),
             _need("training", STACK, 1000)]
    roomy = plan_disk(needs, folder=tmp_path, free=100_000, margin=1000)  # default budget 9,900 B
    assert not any(n.decision == IN_LOOP for n in roomy.needs) and roomy.to_write == 1700
    # 800 may be used: the single views (300) first, then the training stack (1000: no), evaluation's (400: yes)
    plan = plan_disk(needs, folder=tmp_path, free=10_000, margin=1000, budget=800)
    assert [n.decision for n in plan.needs] == ["cache", "cache", "cache", IN_LOOP]
    assert plan.in_loop("training", STACK) and not plan.in_loop("evaluation", STACK) and plan.to_write == 700
    assert any("x: trained with the encoder in the loop" in line and "800 B --cache-budget" in line
               for line in plan.lines())
    # free space less the margin is the limit of the single views when there is no budget (the stacks'
    # default budget, 10% of 500 B, is already spent by them)
    tight = plan_disk(needs, folder=tmp_path, free=1500, margin=1000)
    assert [n.decision for n in tight.needs] == ["cache", IN_LOOP, "cache", IN_LOOP] and tight.room == 500
    with pytest.raises(CacheError, match=r"need ~300 B .* only 299 B may be used.*--cache-budget.*--no-cache"):
        plan_disk(needs, folder=tmp_path, free=10_000, margin=1000, budget=299)
    assert all(n.decision == "ram" for n in plan_disk(needs, folder=None).needs), "--no-cache: nothing checked"


@pytest.mark.parametrize(("free", "margin", "expect"), [
    (10**12, 5 * 10**9, DEFAULT_BUDGET_CAP),  # a big disk: the 5 GB cap
    (20 * 10**9, 1 << 30, 1_892_625_817),  # 20 GB free, 1 GiB margin: a tenth of the rest, 1.9 GB
    (58_000_000_000, 5_400_000_000, DEFAULT_BUDGET_CAP),  # the machine the issue measured on: 5 GB
    (10_000, 1000, 900),
    (500, 1000, 0),  # less free than the margin: nothing
], ids=["big-disk", "laptop", "issue-machine", "small", "full"])
def test_default_budget_is_a_tenth_of_the_free_space_capped_at_5gb(free: int, margin: int, expect: int) -> None:
    assert DEFAULT_BUDGET_CAP == 5 * 10**9
    assert default_budget(free, margin) == expect


def _issue_needs() -> list[ViewNeed]:
    """The sizes ``harness run --extract learned --train-pairs demo --max-pairs 0`` printed on the sample:
    the stack of the 1,318 evaluation texts (627.2 MB) and of the 6,166 training texts (9.3 GB), float32."""
    return [_need("evaluation", STACK, 627_200_000), _need("training", STACK, 9_300_000_000)]


def test_without_a_budget_the_default_bounds_the_stacks(tmp_path: Path) -> None:
    """58 GB free (5.4 GB kept): the default is 5 GB, so the 9.3 GB training stack goes in the loop and the
    627 MB evaluation stack is cached -- what --cache-budget 3G did; without the default 9.9 GB was written."""
    plan = plan_disk(_issue_needs(), folder=tmp_path, free=58_000_000_000, margin=5_400_000_000)
    assert plan.budget is None and plan.default_budget == 5 * 10**9 and plan.stack_room == 5 * 10**9
    assert [n.decision for n in plan.needs] == ["cache", IN_LOOP] and plan.to_write == 627_200_000
    line = next(x for x in plan.lines() if x.startswith("feature cache "))
    assert "627.2 MB to write" in line and f"default budget 5.0 GB ({DEFAULT_BUDGET_RULE}" in line, line
    assert "--cache-budget SIZE sets another" in line, "the plan line says how to override the default"
    assert any(x.startswith("x: trained with the encoder in the loop") and "5.0 GB default cache budget" in x
               for x in plan.lines()), plan.lines()
    d = plan.as_dict()
    assert (d["default_budget"], d["default_budget_rule"], d["budget"]) == (5 * 10**9, DEFAULT_BUDGET_RULE, None)
    assert d["room"] == 52_600_000_000 and d["stack_room"] == 5 * 10**9 and d["to_write"] == 627_200_000
    # an explicit --cache-budget replaces the default, larger ...
    big = plan_disk(_issue_needs(), folder=tmp_path, free=58_000_000_000, margin=5_400_000_000, budget=12 * 10**9)
    assert [n.decision for n in big.needs] == ["cache", "cache"] and big.to_write == 9_927_200_000
    assert big.default_budget is None and big.as_dict()["default_budget_rule"] is None
    assert not any("default budget" in x for x in big.lines()) and any("--cache-budget 12.0 GB" in x
                                                                        for x in big.lines())
    # ... or smaller: then nothing is cached but what fits it
    small = plan_disk(_issue_needs(), folder=tmp_path, free=58_000_000_000, margin=5_400_000_000, budget=10**8)
    assert [n.decision for n in small.needs] == [IN_LOOP, IN_LOOP] and small.to_write == 0


def test_the_default_is_for_the_whole_run_and_never_stops_single_views(tmp_path: Path) -> None:
    free, margin = 58_000_000_000, 5_400_000_000
    # an earlier encoder of the run planned 4.5 GB: 500 MB of the default is left, the 627 MB stack loops
    later = plan_disk(_issue_needs(), folder=tmp_path, free=free, margin=margin, spent=4_500_000_000)
    assert later.default_budget == 500_000_000 and [n.decision for n in later.needs] == [IN_LOOP, IN_LOOP]
    assert any("default budget 500.0 MB left (earlier encoders took 4.5 GB)" in x for x in later.lines())
    assert later.as_dict()["spent_by_earlier_encoders"] == 4_500_000_000
    spent = plan_disk(_issue_needs(), folder=tmp_path, free=free, margin=margin, spent=9 * 10**9)
    assert spent.default_budget == 0, "a spent default is 0, not negative"
    # single views larger than the default are cached anyway (they have nowhere else to go), and said so;
    # the stack then goes in the loop
    needs = [_need("training", LAST, 7 * 10**9), _need("evaluation", STACK, 10**6)]
    plan = plan_disk(needs, folder=tmp_path, free=free, margin=margin)
    assert [n.decision for n in plan.needs] == ["cache", IN_LOOP] and plan.to_write == 7 * 10**9
    assert any("need 7.0 GB, more than the default budget 5.0 GB: they are cached anyway" in x
               for x in plan.lines()), plan.lines()
    with pytest.raises(CacheError, match="only 6.0 GB may be used"):  # but an explicit budget holds them
        plan_disk(needs, folder=tmp_path, free=free, margin=margin, budget=6 * 10**9)
    # nothing but the free space limits them without a budget
    with pytest.raises(CacheError, match="free space of"):
        plan_disk(needs, folder=tmp_path, free=8 * 10**9, margin=5_400_000_000)


def test_format_bytes() -> None:
    assert [format_bytes(n) for n in (0, 999, 1500, 9_400_000_000, 2 * 10**12)] == [
        "0 B", "999 B", "1.5 kB", "9.4 GB", "2.0 TB"]


def test_single_view_that_does_not_fit_exits_2_before_encoding(monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    from harness.testing import FakeEncoder

    calls: list[int] = []
    real = FakeEncoder.encode
    monkeypatch.setattr(FakeEncoder, "encode", lambda self, texts, **kw: calls.append(len(texts)) or real(
        self, texts, **kw))
    assert main([*BASE, "--extract", "last", "--cache-budget", "1k"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    for needle in ("only 1.0 kB may be used", "1.0 kB --cache-budget", "--cache-dir", "--no-cache"):
        assert needle in err, err
    assert calls == [], "nothing may be encoded before the plan is checked"


def _stub(device: str | None = None, param_device: str | None = None) -> Any:
    info = SimpleNamespace(options={"device": device} if device else {})
    model = None
    if param_device is not None:
        param = SimpleNamespace(device=SimpleNamespace(type=param_device))
        model = SimpleNamespace(parameters=lambda: iter([param]))
    return SimpleNamespace(info=info, model=model)


def test_feature_dtype_auto_is_bfloat16_on_cuda_float32_elsewhere() -> None:
    assert resolve_feature_dtype("auto", _stub(param_device="cuda")) == "bfloat16"
    assert resolve_feature_dtype("auto", _stub(param_device="cpu")) == "float32"
    assert resolve_feature_dtype("auto", _stub(device="cuda:1")) == "bfloat16", "no model: the device option"
    assert resolve_feature_dtype("auto", _stub(device="cpu")) == "float32"
    assert resolve_feature_dtype("float16", _stub(param_device="cuda")) == "float16", "an explicit dtype stays"


def test_run_records_resolved_dtype_plan_disk_use_and_fsync(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    import harness.features.sources as fs

    seen: list[Any] = []
    real = fs.FeatureCache

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append(kwargs.get("fsync"))
        return real(*args, **kwargs)

    monkeypatch.setattr(fs, "FeatureCache", spy)
    out, cache_dir = tmp_path / "out", tmp_path / "features"
    assert main([*BASE, "--extract", "last", "--cache-fsync", "none", "--cache-dir", str(cache_dir),
                 "--output", str(out)]) == 0
    text = capsys.readouterr().out
    assert "evaluation view last/single: 19 texts" in text and "training view last/single: 16 texts" in text
    assert seen == ["none"], "--cache-fsync reaches the FeatureCache"
    res = json.loads((out / "results.json").read_text())
    enc = res["provenance"]["encoders"]["fake"]
    assert enc["feature_dtype"] == "float32" and res["provenance"]["options"]["features"]["dtype"] == "auto"
    on_disk = sum(f.stat().st_size for f in cache_dir.rglob("*.tedf"))  # the shards
    assert enc["cache_disk_bytes"] == on_disk > 0
    assert f"feature cache holds {format_bytes(on_disk)} on disk" in text
    assert enc["features"] == {"last": {"evaluation": "cache", "training": "cache"}}
    plan = enc["disk_plan"]
    assert plan["folder"].startswith(str(cache_dir)) and plan["budget"] is None and plan["free"] > 0
    assert [v["view"] for v in plan["views"]] == ["single:none:3", "single:none:3"]
    assert all(v["decision"] == "cache" and v["bytes"] > 0 for v in plan["views"])
    seen.clear()
    assert main([*BASE, "--extract", "last", "--cache-dir", str(cache_dir)]) == 0
    assert seen == ["group"], "the default fsync policy"
    assert "evaluation view last/single: 0 texts (19 already cached)" in capsys.readouterr().out


def test_run_prints_and_records_the_default_budget_and_cache_budget_overrides_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """A disk whose default budget holds the single views but not the layer stacks: learned goes in the loop,
    the plan line names the default, results.json records it; --cache-budget 1G caches the stacks."""
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    roomy = usage(10 << 40, 0, 5 << 40)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: roomy)
    argv = [*BASE, "--extract", "last,learned"]
    assert main([*argv, "--cache-dir", str(tmp_path / "c0"), "--output", str(tmp_path / "o0")]) == 0
    assert "default budget 5.0 GB" in capsys.readouterr().out
    plan0 = json.loads((tmp_path / "o0" / "results.json").read_text())["provenance"]["encoders"]["fake"]["disk_plan"]
    single = sum(v["bytes"] for v in plan0["views"] if v["view"].startswith("single"))
    assert plan0["default_budget"] == DEFAULT_BUDGET_CAP and all(v["decision"] == "cache" for v in plan0["views"])

    # 10 GiB disk: a 1 GiB margin; the free space after it is 10x the single views (+5 B against rounding)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10 << 30, 0, (1 << 30) + 10 * single + 5))
    out = tmp_path / "o1"
    assert main([*argv, "--cache-dir", str(tmp_path / "c1"), "--output", str(out)]) == 0
    text = capsys.readouterr().out
    assert f"default budget {format_bytes(single)} ({DEFAULT_BUDGET_RULE}, for this run" in text, text
    assert "learned: trained with the encoder in the loop" in text and "default cache budget" in text, text
    enc = json.loads((out / "results.json").read_text())["provenance"]["encoders"]["fake"]
    assert enc["disk_plan"]["default_budget"] == single and enc["disk_plan"]["budget"] is None
    assert enc["disk_plan"]["default_budget_rule"] == DEFAULT_BUDGET_RULE
    assert enc["features"]["learned"] == {"evaluation": "encoder-in-the-loop", "training": "encoder-in-the-loop"}
    assert enc["features"]["last"] == {"evaluation": "cache", "training": "cache"}
    assert enc["disk_plan"]["to_write"] == single

    # two encoders share the run's default: the second gets what the first left
    out = tmp_path / "o3"
    assert main([*BASE[:3], "--encoders", "fake,fake[name=fake-b,revision=r2]", *BASE[5:], "--extract", "last",
                 "--cache-dir", str(tmp_path / "c3"), "--output", str(out)]) == 0
    encs = json.loads((out / "results.json").read_text())["provenance"]["encoders"]
    first, second = encs["fake"]["disk_plan"], encs["fake-b"]["disk_plan"]
    assert first["spent_by_earlier_encoders"] == 0 and second["spent_by_earlier_encoders"] == first["to_write"] > 0
    assert second["default_budget"] == first["default_budget"] - first["to_write"]
    assert "left (earlier encoders took" in capsys.readouterr().out

    out = tmp_path / "o2"
    assert main([*argv, "--cache-budget", "1G", "--cache-dir", str(tmp_path / "c2"), "--output", str(out)]) == 0
    assert "default budget" not in capsys.readouterr().out
    enc = json.loads((out / "results.json").read_text())["provenance"]["encoders"]["fake"]
    assert enc["disk_plan"]["budget"] == 10**9 and enc["disk_plan"]["default_budget"] is None
    assert enc["features"]["learned"] == {"evaluation": "cache", "training": "cache"}, "--cache-budget overrides"


def test_token_count_uses_an_hf_style_tokenizer_only() -> None:
    """``encoder.tokenizer(texts)["input_ids"]`` counts (less dropped prefix tokens, capped at the length);
    a tokenizer of another shape (open_clip's returns a tensor) falls back to the byte bound."""
    from harness.features.disk_plan import count_tokens
    from harness.testing import FakeEncoder
    from harness.types import EncoderOptions

    enc: Any = FakeEncoder(options=EncoderOptions(max_length=64, template="plain", drop_prefix_tokens=1))
    enc.tokenizer = lambda texts, **kw: {"input_ids": [[0] * (3 + 40 * i) for i, _ in enumerate(texts)]}
    assert count_tokens(enc, ["a", "b", "c"], limit=64) == ([2, 42, 63], True)
    enc.tokenizer = lambda texts, **kw: [[0] * 5 for _ in texts]
    assert count_tokens(enc, ["abc"], limit=64) == ([3 + SPECIAL_TOKENS], False)
