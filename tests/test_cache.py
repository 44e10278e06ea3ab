"""The on-disk feature cache: reuse, keys, corruption, SIGKILL resume, identical results."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from harness import cli  # noqa: E402
from harness.cache import FeatureCache, encoder_fingerprint  # noqa: E402
from harness.feature_store import FeatureStore  # noqa: E402
from harness.views import View  # noqa: E402
from harness.testing import FakeEncoder  # noqa: E402
from harness.types import EncoderInfo  # noqa: E402

TEXTS = [f"text {i} " + "word " * (i % 7) + f"end{i}" for i in range(24)]
VIEWS = [View("single", (3,), "none"), View("mean", (0, 1, 2, 3), "layernorm"), View("stack", (0, 1, 2, 3), "layernorm")]
TINY = ["-p", "harness.testing", "-p", "no:hf", "run", "--encoders", "fake", "--tasks", "tiny",
        "--train-pairs", "pkg:harness/testing_data/tiny_pairs.jsonl", "--preset", "baby", "--bootstrap", "0",
        "--extract", "last,learned"]


def _store(root: Path, encoder: FakeEncoder | None = None, **kw: object) -> FeatureStore:
    enc = encoder or FakeEncoder()
    return FeatureStore(enc, VIEWS, cache=FeatureCache(root, encoder_fingerprint(enc.info)), **kw)  # type: ignore[arg-type]


def _snapshot(store: FeatureStore) -> dict[tuple[str, str], torch.Tensor]:
    return {(v.key, t): store.get(v, t).clone() for v in VIEWS for t in TEXTS}


def _assert_same(a: dict, b: dict, *, atol: float = 0.0) -> None:
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=atol, msg=f"cached view {k} differs")


def test_second_ensure_encodes_nothing(tmp_path: Path) -> None:
    first = _store(tmp_path, batch_size=5)
    assert first.ensure(TEXTS) == len(TEXTS)
    assert first.encoder.calls == [5, 5, 5, 5, 4] and not first._data, "with a cache nothing is kept in RAM"
    enc = FakeEncoder()
    second = _store(tmp_path, enc, batch_size=5)
    assert second.ensure(TEXTS) == 0 and enc.calls == [], "a warm cache must not call the encoder"
    _assert_same(_snapshot(first), _snapshot(second))
    ram = FeatureStore(FakeEncoder(), VIEWS, batch_size=5)
    ram.ensure(TEXTS)
    _assert_same(_snapshot(ram), _snapshot(second))
    assert enc.calls == [], "reading every view back encoded something"


def _info(**options: object) -> EncoderInfo:
    base = {"dtype": "float32", "template": "plain", "max_length": 512, "drop_prefix_tokens": 0}
    return EncoderInfo(name="x", family="bert", checkpoint="org/model", revision="abc", num_layers=2, width=8,
                       include_embedding_default=True, options={**base, **options})


@pytest.mark.parametrize("change", [
    {"options": {"template": "granted-caption"}}, {"options": {"max_length": 256}}, {"options": {"dtype": "bfloat16"}},
    {"options": {"drop_prefix_tokens": 3}}, {"info": {"checkpoint": "org/other"}}, {"info": {"revision": "def"}},
    {"feature_dtype": "float16"}, {"view": "mean:layernorm:0,1"}, {"text": "a red cup."},
], ids=["template", "max-length", "dtype", "drop-prefix", "checkpoint", "revision", "feature-dtype", "view", "text"])
def test_keys_change_with_everything_that_changes_features(tmp_path: Path, change: dict) -> None:
    base = FeatureCache(tmp_path, encoder_fingerprint(_info()))
    info = replace(_info(**change.get("options", {})), **change.get("info", {}))
    other = FeatureCache(tmp_path, encoder_fingerprint(info), dtype=change.get("feature_dtype", "float32"))
    k0 = base.key("single:none:2", "a red cup")
    assert other.key(change.get("view", "single:none:2"), change.get("text", "a red cup")) != k0
    assert FeatureCache(tmp_path, encoder_fingerprint(_info())).key("single:none:2", "a red cup") == k0, \
        "keys must be stable across processes"


def _corrupt(shard: Path, how: str) -> None:
    data = bytearray(shard.read_bytes())
    if how == "payload":
        data[-3] ^= 0xFF
    else:
        data = data[: len(data) - 10]
    shard.write_bytes(bytes(data))


def _texts_in(store: FeatureStore, shard: Path) -> set[str]:
    keys = set((store.cache._read_header(shard.name) or {}).keys())  # type: ignore[union-attr]
    return {t for t in TEXTS if store.cache.key(VIEWS[0].key, t) in keys}  # type: ignore[union-attr]


@pytest.mark.parametrize("how", ["payload", "truncated"])
def test_corrupt_shard_is_detected_and_recomputed(tmp_path: Path, how: str,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    first = _store(tmp_path, batch_size=6)
    first.ensure(TEXTS)
    want = _snapshot(first)
    shards = sorted(first.cache.dir.glob("*.tedf"))  # type: ignore[union-attr]
    assert len(shards) == 4
    bad = _texts_in(first, shards[-1])
    assert len(bad) == 6
    _corrupt(shards[-1], how)
    enc = FakeEncoder()
    seen: list[str] = []
    plain_encode = enc.encode
    enc.encode = lambda texts, **kw: (seen.extend(texts), plain_encode(texts, **kw))[1]  # type: ignore[method-assign]
    with caplog.at_level(logging.WARNING, logger="harness"):
        again = _store(tmp_path, enc, batch_size=6)
        n = again.ensure(TEXTS)
        got = _snapshot(again)
    assert "feature cache: shard" in caplog.text, "corruption must be logged"
    if how == "truncated":  # a bad header or size is found when the index is built: recomputed by ensure
        assert n == 6 and sorted(seen) == sorted(bad), f"re-encoded {seen}, expected the bad shard's texts"
    else:  # a bad payload is found on read: recomputed on demand
        assert n == 0 and seen and set(seen) <= bad, f"re-encoded {seen}, expected texts of the bad shard only"
    for k in want:
        torch.testing.assert_close(got[k], want[k], msg=f"recomputed view {k} differs")
    assert not shards[-1].exists(), "the bad shard should be removed"


_KILL_SCRIPT = """
import sys, time
from harness.cache import FeatureCache, encoder_fingerprint
from harness.feature_store import FeatureStore
from harness.views import View
from harness.testing import FakeEncoder

class Slow(FakeEncoder):
    def encode(self, texts, **kw):
        time.sleep(0.25)
        return super().encode(texts, **kw)

enc = Slow()
views = [View(*v) for v in {views!r}]
FeatureStore(enc, views, batch_size=2, cache=FeatureCache(sys.argv[1], encoder_fingerprint(enc.info))).ensure({texts!r})
"""


def test_sigkilled_run_resumes_without_recomputing(tmp_path: Path) -> None:
    script = _KILL_SCRIPT.format(views=[(v.op, v.layers, v.norm) for v in VIEWS], texts=TEXTS)
    proc = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], stderr=subprocess.PIPE)
    enc = FakeEncoder()
    shard_dir = FeatureCache(tmp_path, encoder_fingerprint(enc.info)).dir
    deadline = time.time() + 30
    while len(list(shard_dir.glob("*.tedf"))) < 3:
        assert proc.poll() is None, f"worker died: {proc.stderr.read().decode()[-2000:]}"  # type: ignore[union-attr]
        assert time.time() < deadline, "no shards appeared within 30 s"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    store = _store(tmp_path, enc, batch_size=2)
    done = {t for t in TEXTS if store.has(t)}
    assert 6 <= len(done) < len(TEXTS), f"{len(done)} texts finished before the kill"
    seen: list[str] = []
    plain_encode = enc.encode
    enc.encode = lambda texts, **kw: (seen.extend(texts), plain_encode(texts, **kw))[1]  # type: ignore[method-assign]
    assert store.ensure(TEXTS) == len(TEXTS) - len(done)
    assert set(seen) == set(TEXTS) - done and len(seen) == len(set(seen)), "finished shards were recomputed"
    ram = FeatureStore(FakeEncoder(), VIEWS)
    ram.ensure(TEXTS)
    _assert_same(_snapshot(ram), _snapshot(store), atol=1e-6)  # other batches, other process: float noise only


def _results(out: Path) -> tuple[list, list]:
    data = json.loads((out / "results.json").read_text())
    return [(r["extractor"], r["category"], r["value"]) for r in data["scores"]], [t["losses"] for t in data["training"]]


def test_results_identical_with_and_without_cache(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                 _private_cache: Path) -> None:
    cached = [*TINY, "--cache-dir", str(tmp_path / "feat"), "--ckpt-dir", str(tmp_path / "ck1")]
    assert cli.main([*cached, "--output", str(tmp_path / "a")]) == 0
    assert "fake: 35 texts encoded" in capsys.readouterr().out
    assert cli.main([*TINY, "--no-cache", "--ckpt-dir", str(tmp_path / "ck2"), "--output", str(tmp_path / "b")]) == 0
    assert not (_private_cache / "features").exists(), "--no-cache wrote features"
    assert _results(tmp_path / "a") == _results(tmp_path / "b"), "the cache changed the numbers"
    assert cli.main([*cached, "--seeds", "1"]) == 0
    assert "fake: 0 texts encoded" in capsys.readouterr().out, "a rerun with a new seed re-encoded texts"


class _OomAbove(FakeEncoder):
    """Raises CUDA OOM for batches larger than ``limit`` (simulated on CPU)."""

    limit = 16

    def encode(self, texts, **kw):  # type: ignore[no-untyped-def]
        if len(texts) > self.limit:
            self.calls.append(-len(texts))
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return super().encode(texts, **kw)


def test_auto_batch_size_backs_off_on_oom(tmp_path: Path) -> None:
    texts = [f"t{i} " * (1 + i % 5) for i in range(150)]
    enc = _OomAbove()
    store = FeatureStore(enc, VIEWS[:1], batch_size="auto")
    assert store.ensure(texts) == 150
    assert enc.calls[:5] == [8, -64, -32, 16, 16], "auto: 8, then 64 off CUDA, halving on OOM"
    assert all(0 < c <= 16 for c in enc.calls[3:]) and all(store.has(t) for t in texts)
    with pytest.raises(torch.cuda.OutOfMemoryError):
        FeatureStore(_OomAbove(), VIEWS[:1], batch_size=32).ensure(texts)  # a fixed size is never changed


class _GappedMask(FakeEncoder):
    """Masks out the second token of every text: views must skip it (the gather path)."""

    def encode(self, texts, **kw):  # type: ignore[no-untyped-def]
        out = super().encode(texts, **kw)
        out.attention_mask[:, 1] = 0
        return out


@pytest.mark.parametrize("cached", [False, True], ids=["ram", "cache"])
def test_views_skip_masked_tokens_inside_a_text(tmp_path: Path, cached: bool) -> None:
    enc = _GappedMask()
    cache = FeatureCache(tmp_path, encoder_fingerprint(enc.info)) if cached else None
    store = FeatureStore(enc, VIEWS, batch_size=5, cache=cache)
    store.ensure(TEXTS)
    ref = FakeEncoder().encode(TEXTS[:1])
    keep = ref.attention_mask[0].bool()
    keep[1] = False
    want = ref.hidden_states[3][0][keep]
    torch.testing.assert_close(store.get(VIEWS[0], TEXTS[0]), want, msg="masked token leaked into a view")
    assert store.get(VIEWS[2], TEXTS[0]).shape == (4, int(keep.sum()), enc.width)


def test_cli_batch_size_accepts_auto() -> None:
    parser = cli.build_parser()
    assert parser.parse_args(["run", "--batch-size", "auto"]).batch_size == "auto"
    assert parser.parse_args(["run", "--batch-size", "16"]).batch_size == 16
    with pytest.raises(SystemExit):
        parser.parse_args(["run", "--batch-size", "0"])
