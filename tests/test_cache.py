"""The on-disk feature cache: reuse, keys, corruption, SIGKILL resume, identical results."""

from __future__ import annotations

import errno
import json
import logging
import math
import os
import re
import signal
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from cli_checks import full_disk_after

torch = pytest.importorskip("torch")

from harness import CacheError  # noqa: E402
from harness.cli import main as cli  # noqa: E402
from harness.features._shard import owner_tag as _owner_tag  # noqa: E402
from harness.features.cache import FeatureCache, encoder_fingerprint  # noqa: E402
from harness.features.store import FeatureStore  # noqa: E402
from harness.features.views import View  # noqa: E402
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
    header = store.cache._header(shard.name)  # type: ignore[union-attr]
    keys = set(header.entries if header else ())
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
    # a bad size is found when the index is built, a bad payload when ensure verifies it: both re-encoded there
    assert n == 6 and sorted(seen) == sorted(bad), f"re-encoded {seen}, expected the bad shard's texts"
    assert enc.calls == [6], "the bad shard's texts should be re-encoded as one batch"
    for k in want:
        torch.testing.assert_close(got[k], want[k], msg=f"recomputed view {k} differs")
    assert not shards[-1].exists(), "the bad shard should be removed"


def _header(shard: Path) -> dict[str, Any]:
    data = shard.read_bytes()
    return json.loads(data[16:16 + int.from_bytes(data[8:12], "little")])  # type: ignore[no-any-return]


def _rewrite_header(shard: Path, header: bytes) -> None:
    """Give ``shard`` this header, with a valid checksum, and its old payload."""
    data = shard.read_bytes()
    hlen = int.from_bytes(data[8:12], "little")
    payload = data[(16 + hlen + 63) // 64 * 64:]
    prefix = struct.pack("<8sII", b"TEDFEAT1", len(header), zlib.crc32(header)) + header
    shard.write_bytes(prefix + b"\0" * (-len(prefix) % 64) + payload)


def _counting(enc: FakeEncoder) -> list[str]:
    seen: list[str] = []
    plain_encode = enc.encode
    enc.encode = lambda texts, **kw: (seen.extend(texts), plain_encode(texts, **kw))[1]  # type: ignore[method-assign]
    return seen


MORE = [*TEXTS, *(f"more {i} " + "word " * (i % 5) + f"stop{i}" for i in range(16))]  # 40 texts


def test_corrupt_payload_is_reencoded_in_full_batches_and_counted(tmp_path: Path) -> None:
    first = _store(tmp_path, batch_size=32)
    first.ensure(MORE)
    want = {(v.key, t): first.get(v, t).clone() for v in VIEWS for t in MORE}
    shards = set(first.cache.dir.glob("*.tedf"))  # type: ignore[union-attr]
    big = next(s for s in shards if _header(s)["meta"]["texts"] == 32)
    _corrupt(big, "payload")
    enc = FakeEncoder()
    again = _store(tmp_path, enc, batch_size=8)
    assert again.ensure(MORE) == 32 and again.n_encoded == 32, "the bad shard's 32 texts must be counted"
    assert enc.calls == [8, 8, 8, 8], f"re-encoded in batches {enc.calls}, expected four of 8"
    new = set(again.cache.dir.glob("*.tedf")) - shards  # type: ignore[union-attr]
    assert len(new) <= math.ceil(32 / 8), f"{len(new)} new shards for 32 texts at batch size 8"
    got = {(v.key, t): again.get(v, t).clone() for v in VIEWS for t in MORE}
    _assert_same(want, got, atol=1e-6)  # other batches: float noise only
    assert enc.calls == [8, 8, 8, 8] and again.n_encoded == 32, "reading back encoded more"


def test_cli_reports_texts_reencoded_for_a_corrupt_shard(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = [*TINY, "--cache-dir", str(tmp_path / "feat"), "--ckpt-dir", str(tmp_path / "ck")]
    assert cli.main([*run, "--batch-size", "32", "--output", str(tmp_path / "a")]) == 0
    assert "fake: 35 texts encoded" in capsys.readouterr().out
    shards = set((tmp_path / "feat").glob("*/*.tedf"))
    biggest = max(shards, key=lambda s: _header(s)["meta"]["texts"])
    n_bad = _header(biggest)["meta"]["texts"]
    assert n_bad >= 16, "the test needs a shard of many texts"
    _corrupt(biggest, "payload")
    assert cli.main([*run, "--batch-size", "8", "--output", str(tmp_path / "b")]) == 0
    assert f"fake: {n_bad} texts encoded" in capsys.readouterr().out, "texts re-encoded for a bad shard went uncounted"
    prov = json.loads((tmp_path / "b" / "results.json").read_text())["provenance"]["encoders"]["fake"]
    assert prov["texts_encoded"] == n_bad, "results provenance must count the re-encoded texts"
    assert len(set((tmp_path / "feat").glob("*/*.tedf")) - shards) <= -(-n_bad // 8), "re-encoded one text per shard"
    assert _results(tmp_path / "a")[0] == _results(tmp_path / "b")[0], "recomputed features changed the scores"


@pytest.mark.parametrize("how", ["unmapped", "refreshed"])
def test_features_going_bad_after_ensure_are_reencoded_together(tmp_path: Path, how: str) -> None:
    # Entries are checked once per process (shards are never rewritten in place), so what can
    # still go bad after `ensure` is a shard removed meanwhile (e.g. another process dropped it):
    # found when its mapping was evicted and is opened again, or when `refresh` lists the folder.
    enc = FakeEncoder()
    store = _store(tmp_path, enc, batch_size=6)
    store.ensure(TEXTS)
    want = _snapshot(store)
    shard = sorted(store.cache.dir.glob("*.tedf"))[1]  # type: ignore[union-attr]
    bad = _texts_in(store, shard)
    shard.unlink()
    if how == "unmapped":
        store.cache._maps.clear()  # type: ignore[union-attr]  # as the LRU of mappings evicts them
    else:
        store.cache.refresh()  # type: ignore[union-attr]
    store._lru.clear()
    seen = _counting(enc)
    _assert_same(want, _snapshot(store), atol=1e-6)
    assert sorted(seen) == sorted(bad) and enc.calls[-1] == 6, f"re-encoded {enc.calls[4:]}, expected one batch of 6"
    assert store.n_encoded == len(TEXTS) + 6


def _drop_key(m: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in m.items() if k != key}


_CRAFTED: dict[str, Callable[[dict[str, Any]], Any]] = {
    "list": lambda m: m["entries"],
    "entries-dict": lambda m: {**m, "entries": {"k": 1}},
    "entry-short": lambda m: {**m, "entries": [e[:3] for e in m["entries"]]},
    "entry-dict": lambda m: {**m, "entries": [dict(enumerate(e)) for e in m["entries"]]},
    "shape-str": lambda m: {**m, "entries": [[k, o, "4x16", c] for k, o, _, c in m["entries"]]},
    "offset-past-end": lambda m: {**m, "entries": [[k, o + 10**9, s, c] for k, o, s, c in m["entries"]]},
    "payload-str": lambda m: {**m, "payload_bytes": str(m["payload_bytes"])},
    "payload-missing": lambda m: _drop_key(m, "payload_bytes"),
    "not-json": lambda m: b"\xff{not json",
}


@pytest.mark.parametrize("edit", list(_CRAFTED.values()), ids=list(_CRAFTED))
def test_crafted_header_is_treated_as_corrupt(tmp_path: Path, edit: Callable[[dict[str, Any]], Any],
                                              caplog: pytest.LogCaptureFixture) -> None:
    first = _store(tmp_path, batch_size=6)
    first.ensure(TEXTS)
    want = _snapshot(first)
    shard = sorted(first.cache.dir.glob("*.tedf"))[-1]  # type: ignore[union-attr]
    bad = _texts_in(first, shard)
    header = edit(_header(shard))
    _rewrite_header(shard, header if isinstance(header, bytes) else json.dumps(header).encode())
    enc = FakeEncoder()
    seen = _counting(enc)
    with caplog.at_level(logging.WARNING, logger="harness"):
        again = _store(tmp_path, enc, batch_size=6)
        assert again.ensure(TEXTS) == 6 and sorted(seen) == sorted(bad), f"re-encoded {seen}"
    assert "feature cache: shard" in caplog.text and not shard.exists(), "a bad header must be logged and removed"
    _assert_same(want, _snapshot(again))


def _dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True)
    return int(proc.stdout)


def test_temp_files_of_dead_writers_are_removed_at_start(tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path, encoder_fingerprint(FakeEncoder().info))
    tag, pid = _owner_tag(), _dead_pid()
    assert re.fullmatch(rf"\.x\.tedf\.{tag}-{os.getpid()}-[0-9a-f]{{8}}\.tmp", cache._tmp_path("x.tedf").name), \
        "temp names must carry the writer's host tag and pid"
    names = {
        "dead": f".a.tedf.{tag}-{pid}-0123abcd.tmp",
        "live": f".b.tedf.{tag}-{os.getpid()}-0123abcd.tmp",  # e.g. another rank writing now
        "other-host": f".c.tedf.{'0' * 8 if tag != '0' * 8 else '1' * 8}-{pid}-0123abcd.tmp",
        "old-unknown": ".00000000000000000001-1-abcd0123.tedf.tmp",
        "new-unknown": ".00000000000000000002-1-abcd0123.tedf.tmp",
    }
    for name in names.values():
        (cache.dir / name).write_bytes(b"partial shard")
    hour_ago = time.time() - 7200
    os.utime(cache.dir / names["old-unknown"], (hour_ago, hour_ago))
    FeatureCache(tmp_path, encoder_fingerprint(FakeEncoder().info))
    left = {k for k, name in names.items() if (cache.dir / name).exists()}
    assert left == {"live", "other-host", "new-unknown"}, f"kept {left}"


def test_disk_full_fails_in_one_line_and_leaves_no_temp_file(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    feat = tmp_path / "feat"
    run = [*TINY, "--cache-dir", str(feat), "--ckpt-dir", str(tmp_path / "ck"), "--batch-size", "8"]
    opened = full_disk_after(monkeypatch, 1)  # the first shard fits, then the disk is full
    assert cli.main([*run, "--output", str(tmp_path / "a")]) == 2
    monkeypatch.undo()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: feature cache"), err
    for part in (str(feat), "No space left", "Free space", "--cache-dir", "--no-cache"):
        assert part in err[0], f"{part!r} missing from {err[0]!r}"
    assert len(opened) > 1
    assert not [f for _, _, fs in os.walk(feat) for f in fs if f.endswith(".tmp")], "a temp file was left behind"
    kept = sum(_header(s)["meta"]["texts"] for s in feat.glob("*/*.tedf"))
    assert kept >= 1, "the shard written before the disk filled up was lost"
    assert cli.main([*run, "--output", str(tmp_path / "b")]) == 0
    assert f"fake: {35 - kept} texts encoded" in capsys.readouterr().out, "texts already on disk were re-encoded"


@pytest.mark.parametrize("where", ["file", "proc"])
def test_unusable_cache_dir_fails_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], where: str) -> None:
    if where == "file":
        path = tmp_path / "feat"
        path.write_text("not a folder")
    else:
        if not Path("/proc/self").is_dir():
            pytest.skip("no /proc here")
        path = Path("/proc/harness-test/features")
    assert cli.main([*TINY, "--cache-dir", str(path), "--ckpt-dir", str(tmp_path / "ck")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(path) in err[0] and "--no-cache" in err[0], err


def _make_read_only(how: str, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if how == "chmod":
        if os.name != "posix" or os.geteuid() == 0:
            pytest.skip("root ignores permissions")
        for d in [root, *(p for p in root.rglob("*") if p.is_dir())]:
            d.chmod(0o555)
        return
    real_open, real_mkdir = os.open, os.mkdir  # a read-only filesystem, simulated (works as root too)

    def open_(path: Any, flags: int, *args: Any, **kw: Any) -> int:
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT) and str(path).startswith(str(root)):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_open(path, flags, *args, **kw)

    def mkdir(path: Any, *args: Any, **kw: Any) -> None:
        if str(path).startswith(str(root)):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        real_mkdir(path, *args, **kw)

    monkeypatch.setattr(os, "open", open_)
    monkeypatch.setattr(os, "mkdir", mkdir)


@pytest.mark.parametrize("how", ["chmod", "erofs"])
def test_read_only_cache_serves_what_it_holds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    root = tmp_path / "feat"
    full = _store(root, batch_size=6)
    full.ensure(TEXTS)
    want = _snapshot(full)
    full.cache.close()  # type: ignore[union-attr]
    _make_read_only(how, root, monkeypatch)
    try:
        enc = FakeEncoder()
        store = _store(root, enc, batch_size=6)
        assert store.ensure(TEXTS) == 0 and enc.calls == [], "a complete read-only cache must just work"
        _assert_same(want, _snapshot(store))
        with pytest.raises(CacheError) as info:
            store.ensure([*TEXTS, "a text not cached yet"])
        msg = str(info.value)
        assert "\n" not in msg and str(store.cache.dir) in msg and "--no-cache" in msg and "1 texts" in msg, msg  # type: ignore[union-attr]
        assert enc.calls == [], "nothing may be encoded when it cannot be stored"
        with pytest.raises(CacheError, match="--no-cache"):  # a new encoder needs a new folder in it
            FeatureCache(root, encoder_fingerprint(FakeEncoder(seed=1).info))
    finally:
        monkeypatch.undo()
        for d in [root, *(p for p in root.rglob("*") if p.is_dir())]:
            d.chmod(0o755)


_KILL_SCRIPT = """
import sys, time
from harness.features.cache import FeatureCache, encoder_fingerprint
from harness.features.store import FeatureStore
from harness.features.views import View
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
