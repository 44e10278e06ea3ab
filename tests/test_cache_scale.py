"""The feature cache at scale: mapped reads, fast batches, fsync policy, truncation flags, one copy per batch."""

from __future__ import annotations

import gc
import json
import logging
import os
import stat
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from harness import ConfigError  # noqa: E402
from harness.features import _shard  # noqa: E402
from harness.features import cache as cache_mod  # noqa: E402
from harness.features.cache import CACHE_FORMAT, FeatureCache, encoder_fingerprint  # noqa: E402
from harness.features.store import FeatureStore, pack_tokens, unpack_tokens  # noqa: E402
from harness.testing import FakeEncoder  # noqa: E402
from harness.types import EncodedBatch  # noqa: E402
from harness.features.views import View, view_bytes_per_token  # noqa: E402

# "text i" + (i % 7) x "word" + "end{i}": 3 + i % 7 words, so 20 of 24 exceed 3 tokens
TEXTS = [f"text {i} " + "word " * (i % 7) + f"end{i}" for i in range(24)]
N_OVER_3 = sum(i % 7 != 0 for i in range(24))
SINGLE, MEAN, STACK = View("single", (3,), "none"), View("mean", (0, 1, 2, 3), "layernorm"), \
    View("stack", (0, 1, 2, 3), "layernorm")
VIEWS = [SINGLE, MEAN, STACK]


def _cache(root: Path, enc: FakeEncoder | None = None, **kw: object) -> FeatureCache:
    return FeatureCache(root, encoder_fingerprint((enc or FakeEncoder()).info), **kw)  # type: ignore[arg-type]


def _store(root: Path | None, enc: FakeEncoder | None = None, *, dtype: str = "float32", **kw: object) -> FeatureStore:
    enc = enc or FakeEncoder()
    cache = None if root is None else _cache(root, enc, dtype=dtype)
    return FeatureStore(enc, VIEWS, dtype=dtype, cache=cache, **kw)  # type: ignore[arg-type]


def _entries(n: int, *, seed: int = 0) -> list[tuple[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return [(f"k{seed}-{i}", torch.randn(3 + i, 8, generator=g)) for i in range(n)]


def _slow_batch(store: FeatureStore, view: View, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """The per-text padding loop `FeatureStore.batch` used before: the reference for its values."""
    seqs = [store.get(view, t).float() for t in texts]
    t_max = max(s.shape[-2] for s in seqs)
    x = torch.zeros(len(seqs), *seqs[0].shape[:-2], t_max, seqs[0].shape[-1])
    mask = torch.zeros(len(seqs), t_max, dtype=torch.bool)
    for i, s in enumerate(seqs):
        x[i, ..., : s.shape[-2], :] = s
        mask[i, : s.shape[-2]] = True
    return x, mask


# ---- 1. memory-mapped reads ------------------------------------------------------------
def test_reads_are_zero_copy_slices_of_one_mapping(tmp_path: Path) -> None:
    entries = _entries(4)
    writer = _cache(tmp_path)
    writer.put(entries)
    writer.close()
    cache = _cache(tmp_path)  # another process: nothing pending, everything on disk
    (shard,) = cache.dir.glob("*.tedf")
    got = [cache.read(k) for k, _ in entries]
    for (k, want), t in zip(entries, got):
        assert t is not None and torch.equal(t, want), f"entry {k} read back wrong"
    ptrs = {t.untyped_storage().data_ptr() for t in got}  # type: ignore[union-attr]
    assert len(ptrs) == 1, "entries of one shard must be slices of one mapping, not copies"
    assert got[0].untyped_storage().nbytes() == shard.stat().st_size, "the storage is the whole mapped file"  # type: ignore[union-attr]
    assert list(cache._maps) == [shard.name]


def test_each_entry_is_checksummed_once_per_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    entries = _entries(3)
    writer = _cache(tmp_path)
    writer.put(entries)
    writer.flush()
    calls: list[int] = []
    real = _shard.crc32
    monkeypatch.setattr(_shard, "crc32", lambda t: (calls.append(t.numel()), real(t))[1])
    for _ in range(3):
        writer.read(entries[0][0])
    assert calls == [], "entries this process wrote are not checked again on read"
    cache = _cache(tmp_path)
    for _ in range(3):
        assert cache.read(entries[0][0]) is not None
    assert calls == [entries[0][1].nbytes], f"first read checks the entry once, later reads not: {calls}"
    cache.verify(k for k, _ in entries)
    for k, _ in entries:
        cache.read(k)
    assert len(calls) == 1, "entries checked by verify are not checked again on read"
    assert cache.verify(k for k, _ in entries) == 0


def test_first_read_of_a_corrupt_entry_drops_its_shard(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    writer = _cache(tmp_path)
    good, bad = _entries(2, seed=0), _entries(2, seed=1)
    writer.put(good)
    writer.put(bad)
    writer.close()
    shards = {json.loads(_header_bytes(p))["entries"][0][0]: p for p in writer.dir.glob("*.tedf")}
    path = shards[bad[0][0]]
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF  # the last entry of the bad shard
    path.write_bytes(bytes(data))
    cache = _cache(tmp_path)
    assert cache.read(bad[0][0]) is not None, "the first entry of that shard is intact"
    with caplog.at_level(logging.WARNING, logger="harness"):
        assert cache.read(bad[1][0]) is None, "a corrupt entry must not be returned"
    assert "failed its checksum" in caplog.text and not path.exists(), "the shard must be dropped with a warning"
    assert bad[0][0] not in cache and bad[1][0] not in cache, "the whole shard's entries count as missing"
    assert torch.equal(cache.read(good[1][0]), good[1][1]), "other shards stay readable"  # type: ignore[arg-type]


def _header_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    return data[16:16 + int.from_bytes(data[8:12], "little")]


def test_tensors_read_before_a_drop_stay_valid(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cache_mod, "_MAX_MAPPED", 2)
    writer = _cache(tmp_path)
    batches = [_entries(2, seed=s) for s in range(4)]
    for b in batches:
        writer.put(b)
    writer.close()
    cache = _cache(tmp_path)
    held = [cache.read(b[0][0]) for b in batches]  # four shards through an LRU of two mappings
    assert len(cache._maps) == 2, "the LRU of mappings must stay bounded"
    shard = cache._index[batches[0][0][0]][0]
    assert cache.read(batches[0][1][0]) is not None and shard in cache._maps  # mapped again
    cache._drop(shard, "is dropped by this test")
    assert shard not in cache._maps and not (cache.dir / shard).exists(), "the mapping goes before the file"
    gc.collect()
    for b, t in zip(batches, held):
        assert torch.equal(t, b[0][1]), "a tensor read earlier changed or died with its mapping"  # type: ignore[arg-type]


# ---- 2. fast batches -------------------------------------------------------------------
@pytest.mark.parametrize("view", VIEWS, ids=lambda v: v.op)
def test_batch_from_ram_is_unchanged(view: View) -> None:
    store = _store(None, batch_size=5)
    store.ensure(TEXTS)
    texts = TEXTS[3:12]
    x, mask = store.batch(view, texts)
    want_x, want_mask = _slow_batch(store, view, texts)
    assert x.dtype == torch.float32 and x.shape == want_x.shape
    assert torch.equal(x, want_x) and torch.equal(mask, want_mask), "batch from RAM changed"
    if view.op == "stack":
        assert x.shape[:2] == (len(texts), 4), "stack batches are [B, L, T, D]"
    dense = x.transpose(1, 2) if view.op == "stack" else x
    assert dense.is_contiguous(), "a batch is one dense block (token-major for stacks)"


@pytest.mark.parametrize("view", VIEWS, ids=lambda v: v.op)
def test_batch_from_bf16_cache_is_the_rounded_float32_features(tmp_path: Path, view: View) -> None:
    ram = _store(None, batch_size=6)
    ram.ensure(TEXTS)
    _store(tmp_path, dtype="bfloat16", batch_size=6).ensure(TEXTS)
    warm = _store(tmp_path, dtype="bfloat16", batch_size=6)
    assert warm.ensure(TEXTS) == 0
    texts = TEXTS[::-3]
    x, mask = warm.batch(view, texts)
    want_x, want_mask = _slow_batch(warm, view, texts)
    assert x.dtype == torch.float32 and torch.equal(x, want_x) and torch.equal(mask, want_mask)
    if view.op != "mean":  # a mean is accumulated in float32 and rounded once: the same only up to bf16 rounding
        ref, _ = ram.batch(view, texts)
        assert torch.equal(x, ref.to(torch.bfloat16).float()), "bf16 cache batch is not the rounded float32 batch"


# ---- 3. fsync policy -------------------------------------------------------------------
def _count_fsyncs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    seen: list[str] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        seen.append("dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return seen


@pytest.mark.parametrize("mode", ["shard", True, "group", "none", False], ids=str)
def test_fsync_policy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str | bool) -> None:
    payload = 3840  # a shard is this plus a header of at most 256 bytes
    cache = _cache(tmp_path, fsync=mode, group_bytes=payload * 5 // 2)  # a group is full after 3 shards
    seen = _count_fsyncs(monkeypatch)
    for i in range(5):
        cache.put([(f"k{i}", torch.zeros(payload // 4))])
    cache._writer.wait()  # every shard written, no flush (its group sync) yet
    written = {"shard": ["file", "dir"] * 5, "group": ["file"] * 3 + ["dir"], "none": []}
    name = {True: "shard", False: "none"}.get(mode, mode)  # type: ignore[call-overload]
    assert cache.fsync == name
    assert sorted(seen) == sorted(written[name]), f"fsync={mode!r}: {seen} before flush"
    cache.flush()
    flushed = {"shard": ["file", "dir"] * 5, "group": ["file"] * 5 + ["dir"] * 2, "none": []}
    assert sorted(seen) == sorted(flushed[name]), f"fsync={mode!r}: {seen} after flush"
    assert len(list(cache.dir.glob("*.tedf"))) == 5


def test_group_fsync_syncs_every_64_shards_and_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = _cache(tmp_path)
    assert cache.fsync == "group" and cache.group_bytes == 1 << 30, "group fsync of 1 GiB is the default"
    seen = _count_fsyncs(monkeypatch)
    for i in range(cache_mod.GROUP_SHARDS + 1):
        cache.put([(f"k{i}", torch.zeros(4))])
    cache._writer.wait()  # every shard written, no flush (its group sync) yet
    assert seen.count("file") == cache_mod.GROUP_SHARDS and seen.count("dir") == 1
    cache.close()
    assert seen.count("file") == cache_mod.GROUP_SHARDS + 1 and seen.count("dir") == 2
    with pytest.raises(ConfigError, match="shard, group, none"):
        _cache(tmp_path, fsync="always")


# ---- 4. truncation flags ---------------------------------------------------------------
class _CountOnly(FakeEncoder):
    """An encoder that reports how many texts it truncated, not which."""

    def encode(self, texts, **kw):  # type: ignore[no-untyped-def]
        out = super().encode(texts, **kw)
        return EncodedBatch(out.hidden_states, out.attention_mask, n_truncated=out.n_truncated)


def test_n_truncated_is_the_same_cold_and_warm(tmp_path: Path) -> None:
    cold = _store(tmp_path, batch_size=5, max_length=3)
    cold.ensure(TEXTS)
    assert cold.n_truncated == N_OVER_3 == 20, f"cold run counted {cold.n_truncated} truncated texts"
    enc = FakeEncoder()
    warm = _store(tmp_path, enc, batch_size=5, max_length=3)
    assert warm.ensure(TEXTS) == 0 and enc.calls == []
    assert warm.n_truncated == N_OVER_3, f"warm run counted {warm.n_truncated}, the cold one {N_OVER_3}"
    ram = _store(None, batch_size=5, max_length=3)
    ram.ensure(TEXTS)
    assert ram.n_truncated == N_OVER_3
    half = _store(tmp_path / "half", batch_size=5, max_length=3)
    half.ensure(TEXTS[:12])
    assert half.n_truncated == sum(i % 7 != 0 for i in range(12))
    mixed = _store(tmp_path / "half", batch_size=5, max_length=3)
    mixed.ensure(TEXTS[6:])
    mixed.ensure(TEXTS)
    assert mixed.n_truncated == N_OVER_3, "a text ensured twice, or cached and encoded, must count once"


def test_truncation_flags_are_in_the_shard_header(tmp_path: Path) -> None:
    store = _store(tmp_path, batch_size=24, max_length=3)
    store.ensure(TEXTS)
    assert CACHE_FORMAT == 2, "the shard layout changed: old shards must not match"
    (shard,) = store.cache.dir.glob("*.tedf")  # type: ignore[union-attr]
    header = json.loads(_header_bytes(shard))
    flagged = {header["entries"][i][0] for i in header["truncated"]}
    cache = store.cache
    assert cache is not None
    want = {cache.key(v.key, t) for t in TEXTS for v in VIEWS if len(t.split()) > 3}
    assert flagged == want and len(flagged) == N_OVER_3 * len(VIEWS)


@pytest.mark.parametrize("flags", [True, False], ids=["flags", "count-only"])
def test_truncation_survives_a_shard_reencoded_mid_run(tmp_path: Path, flags: bool) -> None:
    store = _store(tmp_path, FakeEncoder() if flags else _CountOnly(), batch_size=6, max_length=3)
    store.ensure(TEXTS)
    shard = sorted(store.cache.dir.glob("*.tedf"))[-1]  # type: ignore[union-attr]  # the shortest texts: 2 of 6 cut
    shard.unlink()
    store.cache.refresh()  # type: ignore[union-attr]
    for t in TEXTS:
        store.get(SINGLE, t)  # re-encodes the lost shard's texts
    assert store.n_encoded == len(TEXTS) + 6
    store.ensure(TEXTS)
    assert store.n_truncated == N_OVER_3, "re-encoded texts were counted again"
    if flags:
        fresh = _store(tmp_path, batch_size=6, max_length=3)
        assert fresh.ensure(TEXTS) == 0 and fresh.n_truncated == N_OVER_3, "the re-encoded shard lost its flags"


def test_an_encoder_without_flags_is_still_counted(tmp_path: Path) -> None:
    store = _store(tmp_path, _CountOnly(), batch_size=5, max_length=3)
    store.ensure(TEXTS)
    assert store.n_truncated == N_OVER_3


def test_tokenize_flags_each_truncated_text() -> None:
    from harness.encoding import tokenize, tokenize_flagged

    def tokenizer(texts: list[str], **kw: object) -> dict[str, object]:
        ids = [[0, *range(len(t.split())), 1] for t in texts]  # BOS, one id per word, EOS
        return {"input_ids": ids, "attention_mask": [[1] * len(i) for i in ids], "other": None}

    texts = ["a b c", "a", "a b c d e"]
    inputs, flags = tokenize_flagged(tokenizer, texts, max_length=4)
    assert flags == [True, False, True] and set(inputs) == {"input_ids", "attention_mask"}
    assert tokenize(tokenizer, texts, max_length=4)[1] == 2


# ---- 5. one device-to-host copy per batch ----------------------------------------------
def test_pack_tokens_puts_every_view_in_one_buffer() -> None:
    g = torch.Generator().manual_seed(0)
    mask = torch.tensor([[1, 1, 1, 0], [1, 0, 1, 1], [1, 0, 0, 0]], dtype=torch.bool)  # padding and a gap
    single = torch.randn(3, 4, 5, generator=g)
    stack = torch.randn(3, 4, 2, 5, generator=g)  # token-major [B, T, L, D]
    flat, layout = pack_tokens([single, stack], mask)
    assert flat.dim() == 1 and flat.numel() == 7 * 5 + 7 * 2 * 5, "one flat buffer of real tokens only"
    moved = flat.clone()  # what the single device-to-host copy does
    got = unpack_tokens(moved, layout)
    assert torch.equal(got[0], single[mask]) and torch.equal(got[1], stack[mask])
    assert all(t.untyped_storage().data_ptr() == moved.untyped_storage().data_ptr() for t in got)
    with pytest.raises(ValueError, match="share a dtype"):
        pack_tokens([single, stack.half()], mask)


def test_views_of_a_batch_share_one_host_buffer() -> None:
    store = _store(None, batch_size=8)
    store.ensure(TEXTS[:8])
    ptrs = {store._data[(v.key, t)].untyped_storage().data_ptr() for v in VIEWS for t in TEXTS[:8]}
    assert len(ptrs) == 1, f"{len(ptrs)} host buffers for one batch: views were copied off the device separately"


# ---- 6. bytes per token, disk use -------------------------------------------------------
def test_view_bytes_per_token_prices_the_payload_exactly(tmp_path: Path) -> None:
    assert view_bytes_per_token(SINGLE, 16, 2) == 32
    assert view_bytes_per_token(MEAN, 16, 4) == 64
    assert view_bytes_per_token(STACK, 16, 2) == 4 * 16 * 2
    store = _store(tmp_path, dtype="bfloat16", batch_size=6)
    cache = store.cache
    assert cache is not None and cache.disk_bytes() == 0
    store.ensure(TEXTS)
    shards = list(cache.dir.glob("*.tedf"))
    assert cache.disk_bytes() == sum(p.stat().st_size for p in shards), "disk_bytes is the shards' size"
    payload = sum(json.loads(_header_bytes(p))["payload_bytes"] for p in shards)
    width = store.encoder.info.width
    tokens = {t: store.get(SINGLE, t).shape[0] for t in TEXTS}
    assert payload == sum(n * view_bytes_per_token(v, width, 2) for n in tokens.values() for v in VIEWS)


def test_an_entry_of_zero_tokens_is_stored_and_read_back(tmp_path) -> None:
    """A text whose every token was dropped (drop_prefix_tokens) is a [0, D] entry: it must not break the shard."""
    import torch

    from harness.features.cache import FeatureCache

    cache = FeatureCache(tmp_path, {"encoder": "t"})
    empty, full = torch.zeros(0, 4), torch.arange(8.0).view(2, 4)
    cache.put([(cache.key("v", "a"), empty), (cache.key("v", "b"), full)])
    cache.close()
    again = FeatureCache(tmp_path, {"encoder": "t"})
    assert again.read(again.key("v", "a")).shape == (0, 4)
    assert torch.equal(again.read(again.key("v", "b")), full)
