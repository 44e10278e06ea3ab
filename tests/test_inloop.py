"""Encoder in the loop: the same features as the cache, batch by batch, and a learned run that does not
fit the cache budget giving the same results as one that caches its layer stack."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")

from conftest import TINY_PAIRS  # noqa: E402

from harness.features.cache import FeatureCache  # noqa: E402
from harness.features.sources import EncoderInTheLoop  # noqa: E402
from harness.features.store import FeatureStore  # noqa: E402
from harness.registry import resolve_path  # noqa: E402
from harness.testing import FakeEncoder  # noqa: E402
from harness.types import EncoderOptions  # noqa: E402
from harness.features.views import View  # noqa: E402

TEXTS = ["two dogs run across a green field while the sun sets", "a red cat sits on the mat", "nothing here"]
STACK = View("stack", (0, 1, 2, 3), "layernorm")


@pytest.mark.parametrize("view", [STACK, View("mean", (1, 2, 3), "layernorm"), View("single", (3,), "none")],
                         ids=["stack", "mean", "single"])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_in_the_loop_batch_equals_the_cached_batch(view: View, dtype: str, tmp_path: Path) -> None:
    """Same texts in one batch: bit-identical to `FeatureStore.batch` over the cache, padding and mask included
    (one dropped prefix token per text leaves a gap at the start of every mask row)."""
    enc = FakeEncoder(options=EncoderOptions(max_length=64, template="plain", drop_prefix_tokens=1))
    store = FeatureStore(enc, [view], batch_size=8, dtype=dtype, cache=FeatureCache(tmp_path, {"fake": 1}, dtype=dtype))
    store.ensure(TEXTS)
    want_x, want_mask = store.batch(view, TEXTS)
    loop = EncoderInTheLoop(enc, view, dtype=dtype)
    x, mask = loop(TEXTS)  # the store encodes longest first: these are in that order already
    assert x.dtype == torch.float32 and x.is_contiguous() and mask.dtype == torch.bool
    assert x.shape == want_x.shape and torch.equal(mask, want_mask)
    assert torch.equal(x, want_x), f"in-the-loop {view.op} features differ from cached ones"
    assert (loop.n_calls, loop.n_texts) == (1, 3)


def test_in_the_loop_features_train_and_ignore_a_cpu_autocast() -> None:
    """The result takes part in autograd (not an inference tensor), and a bf16 training preset's CPU
    autocast does not reach the encoder forward: features stay the float32 ones."""
    enc = FakeEncoder()
    loop = EncoderInTheLoop(enc, STACK)
    plain, _ = loop(TEXTS)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under, _ = loop(TEXTS)
    assert torch.equal(plain, under)
    logits = torch.zeros(4, requires_grad=True)
    torch.einsum("l,bltd->btd", torch.softmax(logits, 0), under).pow(2).sum().backward()
    assert logits.grad is not None and bool(logits.grad.abs().sum() > 0)


def test_in_the_loop_passes_the_training_length() -> None:
    seen: list[int | None] = []
    enc = FakeEncoder()
    real = enc.encode
    enc.encode = lambda texts, **kw: seen.append(kw.get("max_length")) or real(texts, **kw)  # type: ignore[method-assign]
    x, mask = EncoderInTheLoop(enc, STACK, max_length=3)(TEXTS)
    assert seen == [3] and x.shape[2] == 3 and mask.sum(1).tolist() == [3, 3, 2]


def _cache_of(folder: Path) -> list[FeatureCache]:
    """Every feature cache under ``folder``, opened from the fingerprint it recorded."""
    out = []
    for fp in sorted(folder.glob("*/fingerprint.json")):
        meta = json.loads(fp.read_text())
        cache = FeatureCache(folder, meta["encoder"], dtype=meta["dtype"])
        assert cache.dir == fp.parent, "the recorded fingerprint names this folder"
        out.append(cache)
    return out


def _tiny_bert(tmp_path: Path) -> str:
    from encoder_fixtures import build_tiny_checkpoint

    return f"bert:{build_tiny_checkpoint('bert', tmp_path)}"


@pytest.mark.parametrize("encoder", ["fake", "tiny-bert"])
def test_learned_in_the_loop_equals_the_cached_run(encoder: str, tmp_path: Path, pm: Any, registry: Any) -> None:
    """A learned run whose layer stack is cached, and the same run with a --cache-budget that holds only the
    single-layer view (so learned is trained and evaluated with the encoder in the loop): the same scores for
    every instance, and the in-the-loop run's cache holds no stack entry."""
    from harness.features.extractors import parse_extractors
    from harness.options import AggregatorOptions, FeatureOptions, TrainingOptions
    from harness.evaluation.results import RunResult
    from harness.evaluation.tasks import load_task_sets
    from harness.evaluation.runner import run

    spec = registry.encoder(encoder if encoder == "fake" else _tiny_bert(tmp_path))

    def go(label: str, budget: int | None = None) -> tuple[RunResult, list[str]]:
        said: list[str] = []
        res = run(pm, encoders=[spec], tasks=load_task_sets(pm, registry, ["tiny"]),
                  extractors=parse_extractors(pm, ["last", "learned"]),
                  aggregator_options=AggregatorOptions(preset="baby"),
                  # retrain: the in-the-loop run must not reuse the cached run's aggregator
                  training=TrainingOptions(train_pairs=TINY_PAIRS, retrain=True),
                  features=FeatureOptions(cache_dir=str(tmp_path / f"{label}-features"), cache_budget=budget),
                  bootstrap=0, null_resamples=0, say=said.append)
        return res, said

    cached, _ = go("cached")
    plan = cached.provenance.encoders[spec.name].disk_plan
    assert plan is not None
    single = sum(v["bytes"] for v in plan["views"] if v["view"].startswith("single"))
    looped, said = go("looped", single)

    enc, enc_cached = looped.provenance.encoders[spec.name], cached.provenance.encoders[spec.name]
    assert enc.features == {"last": {"evaluation": "cache", "training": "cache"},
                            "learned": {"evaluation": "encoder-in-the-loop", "training": "encoder-in-the-loop"}}
    assert enc_cached.features["learned"] == {"evaluation": "cache", "training": "cache"}
    assert {t.extractor: t.features for t in looped.training} == {"last": "cache", "learned": "encoder-in-the-loop"}
    assert any(line.startswith("learned: trained with the encoder in the loop") for line in said), said
    assert any("training view learned/stack" in line and "NOT cached: encoder in the loop" in line for line in said)
    assert enc.in_loop_encodings > 0 and enc_cached.in_loop_encodings == 0
    # same numbers: every instance scored alike, and the same accuracy per slice
    assert len(looped.samples) == len(cached.samples) == 10
    for a, b in zip(cached.samples, looped.samples):
        assert (a.extractor, a.id, a.correct) == (b.extractor, b.id, b.correct)
        assert b.scores == pytest.approx(a.scores, abs=1e-5), f"{a.extractor} {a.id} scores moved"
    acc = lambda r: {(s.extractor, s.category, s.caption_type): s.value for s in r.scores}  # noqa: E731
    assert acc(looped) == acc(cached)
    ta, tb = ({t.extractor: t for t in r.training} for r in (cached, looped))
    assert tb["learned"].losses == pytest.approx(ta["learned"].losses, abs=1e-5)
    assert tb["learned"].layer_weights == pytest.approx(ta["learned"].layer_weights, abs=1e-6)
    assert tb["learned"].key == ta["learned"].key, "CPU float32 in-the-loop features are the cached ones"
    # the in-the-loop cache holds the single-layer view of every text and no stack entry
    view = enc.extractors["learned"]["view"]
    pairs = [json.loads(line) for line in Path(resolve_path(TINY_PAIRS)).read_text().splitlines()]
    pair_texts = {t for p in pairs for t in (p["a"], p["b"])}
    for label, want_stack in (("cached", True), ("looped", False)):
        caches = _cache_of(tmp_path / f"{label}-features")
        assert len(caches) == 1
        has_stack = [caches[0].key(view, t) in caches[0] for t in pair_texts]
        assert all(has_stack) if want_stack else not any(has_stack)
        assert len(caches[0]) == (enc.n_eval_texts + enc.n_train_texts) * (2 if want_stack else 1), label
        caches[0].close()
    assert enc.cache_disk_bytes is not None and enc_cached.cache_disk_bytes is not None
    assert 0 < enc.cache_disk_bytes < enc_cached.cache_disk_bytes


def test_read_only_cache_serves_its_views_and_loops_the_stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    """A read-only cache holding the single-layer view: learned runs with the encoder in the loop; a view it
    lacks is the cache's one-line 'not writable' error, before any encoding."""
    import errno
    import os

    from harness.cli.main import main

    root = tmp_path / "features"
    base = ["-p", "harness.testing", "run", "--encoders", "fake", "--tasks", "tiny", "--preset", "baby",
            "--train-pairs", TINY_PAIRS, "--bootstrap", "0", "--null-resamples", "0", "--cache-dir", str(root)]
    assert main([*base, "--extract", "last"]) == 0
    capsys.readouterr()
    real_open = os.open

    def read_only(path: Any, flags: int, *args: Any, **kw: Any) -> int:  # a read-only filesystem, simulated
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT) and str(path).startswith(str(root)):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_open(path, flags, *args, **kw)

    monkeypatch.setattr(os, "open", read_only)
    assert main([*base, "--extract", "last,learned"]) == 0
    out = capsys.readouterr().out
    assert "learned: trained with the encoder in the loop" in out and "read-only feature cache" in out, out
    assert main([*base, "--extract", "norm-avg"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "is not writable" in err and "--no-cache" in err, err
