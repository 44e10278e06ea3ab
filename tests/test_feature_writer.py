"""The feature pass close to the raw forward: packed views, the background writer, back-pressure, errors."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")

from harness import CacheError  # noqa: E402
from harness.features import _shard  # noqa: E402
from harness.features import cache as cache_mod  # noqa: E402
from harness.features._writer import BackgroundWriter  # noqa: E402
from harness.features.cache import FeatureCache, encoder_fingerprint  # noqa: E402
from harness.features.store import FeatureStore, pack_tokens  # noqa: E402
from harness.features.views import View, compute_packed_views, compute_views  # noqa: E402
from harness.testing import FakeEncoder  # noqa: E402
from harness.types import EncoderOptions  # noqa: E402
from cli_checks import full_disk_after  # noqa: E402

TEXTS = [f"text {i} " + "word " * (i % 7) + f"end{i}" for i in range(30)]
VIEWS = [View("single", (3,), "none"), View("single", (2,), "none"), View("mean", (0, 1, 2, 3), "layernorm"),
         View("stack", (0, 1, 2, 3), "layernorm")]
ALL_NORMS = [*VIEWS, View("single", (1,), "rms"), View("mean", (1, 3), "none"), View("stack", (3, 1), "rms"),
             View("mean", (0, 1, 2, 3), "rms"), View("single", (3,), "layernorm")]


def _store(root: Path | None, enc: FakeEncoder | None = None, *, writers: int | None = None,
           dtype: str = "float32", **kw: Any) -> FeatureStore:
    enc = enc or FakeEncoder()
    cache = None if root is None else FeatureCache(root, encoder_fingerprint(enc.info), dtype=dtype, writers=writers)
    return FeatureStore(enc, VIEWS, dtype=dtype, cache=cache, writers=1 if writers is None else writers, **kw)


def _snapshot(store: FeatureStore, texts: list[str] = TEXTS) -> dict[tuple[str, str], Any]:
    return {(v.key, t): store.get(v, t).clone() for v in store.views for t in texts}


def _assert_identical(a: dict, b: dict, what: str) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]), f"{what}: view {k} differs"


def _payloads(folder: Path) -> dict[str, bytes]:
    """Every entry's stored bytes, by key, read from the shard files."""
    out = {}
    for shard in folder.glob("*.tedf"):
        data = shard.read_bytes()
        hlen = int.from_bytes(data[8:12], "little")
        header = json.loads(data[16:16 + hlen])
        base = _shard.align(16 + hlen)
        ends = sorted([off for _, off, _, _ in header["entries"]] + [header["payload_bytes"]])
        for key, off, _, _ in header["entries"]:
            out[key] = data[base + off:base + ends[ends.index(off) + 1]]
    return out


def _no_tmp(folder: Path) -> bool:
    return not [p for p in folder.rglob("*") if p.name.endswith(".tmp")]


# ---- packed views ------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
@pytest.mark.parametrize("layer_dtype", ["float32", "bfloat16"])
def test_packed_views_equal_padded_views_bit_for_bit(dtype: str, layer_dtype: str) -> None:
    g = torch.Generator().manual_seed(1)
    hidden = [(3 * torch.randn(5, 9, 16, generator=g)).to(getattr(torch, layer_dtype)) for _ in range(4)]
    mask = torch.ones(5, 9, dtype=torch.bool)
    mask[1, 6:] = mask[3, 2:] = mask[4, :] = False  # padding, and a text with no tokens left
    mask[2, 0] = False  # a dropped prefix token inside a text
    out_dtype = getattr(torch, dtype)
    want = compute_views(hidden, ALL_NORMS, dtype=out_dtype)
    tensors = [want[v.key].transpose(1, 2) if v.op == "stack" else want[v.key] for v in ALL_NORMS]
    ref, ref_layout = pack_tokens(tensors, mask)
    index = mask.reshape(-1).nonzero().squeeze(1)
    got, layout = compute_packed_views(hidden, ALL_NORMS, index, dtype=out_dtype)
    assert layout == ref_layout and got.dtype == out_dtype
    assert torch.equal(got, ref), "packed views differ from the padded computation"
    buf = torch.full((got.numel() + 7,), float("nan"), dtype=out_dtype)
    into, _ = compute_packed_views(hidden, ALL_NORMS, index, dtype=out_dtype, out=buf)
    assert into.data_ptr() == buf.data_ptr() and torch.equal(into, ref), "out= must be filled in place"
    with pytest.raises(ValueError, match="flat"):
        compute_packed_views(hidden, ALL_NORMS, index, dtype=out_dtype, out=buf[:10])


# ---- the background writer is the synchronous path, later --------------------------------
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_background_writes_are_bit_identical_to_synchronous_ones(tmp_path: Path, dtype: str) -> None:
    sync = _store(tmp_path / "sync", writers=0, dtype=dtype, batch_size=7)
    bg = _store(tmp_path / "bg", dtype=dtype, batch_size=7)
    ram = _store(None, dtype=dtype, batch_size=7)
    ram_sync = _store(None, writers=0, dtype=dtype, batch_size=7)
    for s in (sync, bg, ram, ram_sync):
        assert s.ensure(TEXTS) == len(TEXTS)
    assert sync.cache is not None and bg.cache is not None
    assert sync.cache._writer.n_jobs == bg.cache._writer.n_jobs == 5 and bg.cache._writer.pending == 0
    assert _payloads(sync.cache.dir) == _payloads(bg.cache.dir), "shard bytes differ from the synchronous path"
    want = _snapshot(sync)
    _assert_identical(want, _snapshot(bg), "background cache")
    _assert_identical(want, _snapshot(ram), "RAM")
    _assert_identical(want, _snapshot(ram_sync), "RAM, synchronous")
    cold = _store(tmp_path / "bg", dtype=dtype)  # read back from disk by a fresh process's view of it
    assert cold.ensure(TEXTS) == 0
    _assert_identical(want, _snapshot(cold), "read back")


def test_the_writer_waits_for_the_copy_before_reading(tmp_path: Path) -> None:
    """``ready`` stands for the CUDA event of a non-blocking copy: the shard must hold what landed after it."""
    cache = FeatureCache(tmp_path, {"encoder": "t"})
    staged = torch.zeros(4, 3)
    released = []

    class Copy:
        def synchronize(self) -> None:
            time.sleep(0.05)
            staged.copy_(torch.arange(12.0).view(4, 3))  # the copy lands only now

    cache.put([(cache.key("v", "a"), staged)], ready=Copy(), release=lambda: released.append(1))
    pending = cache.read(cache.key("v", "a"))  # a read while queued waits for it too, and gets a copy
    assert pending is not None and torch.equal(pending, torch.arange(12.0).view(4, 3))
    assert pending.data_ptr() != staged.data_ptr(), "a queued entry must be read as a copy (its buffer is reused)"
    cache.close()
    assert released == [1], "the staging buffer was not handed back exactly once"
    again = FeatureCache(tmp_path, {"encoder": "t"})
    assert torch.equal(again.read(again.key("v", "a")), torch.arange(12.0).view(4, 3))


def test_staging_buffers_are_reused(tmp_path: Path) -> None:
    store = _store(tmp_path, batch_size=3)
    store.ensure(TEXTS)
    assert store._staging.n_allocated <= cache_mod._MAX_PENDING + 1 < len(TEXTS) // 3, \
        f"{store._staging.n_allocated} staging buffers for {len(TEXTS) // 3} batches"
    assert not store._staging._free, "staging buffers must be let go between passes"


# ---- errors ------------------------------------------------------------------------------
@pytest.mark.parametrize("writers", [1, 2, 0], ids=["one-thread", "two-threads", "synchronous"])
def test_a_write_error_in_the_writer_is_one_error_in_the_caller(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               writers: int) -> None:
    store = _store(tmp_path, writers=writers, batch_size=5)
    assert store.cache is not None
    opened = full_disk_after(monkeypatch, 2)
    with pytest.raises(CacheError) as err:
        store.ensure(TEXTS)
    monkeypatch.undo()
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith("feature cache") and "No space left" in msg and "--no-cache" in msg
    assert len(opened) >= 3 and store.cache._writer.pending == 0, "a writer is still busy after the error"
    assert _no_tmp(tmp_path), "a half-written temp file was left behind"
    fresh = FeatureCache(tmp_path, encoder_fingerprint(FakeEncoder().info))  # whatever landed is whole
    assert fresh.verify(fresh.key(v.key, t) for v in VIEWS for t in TEXTS) == 0, "a shard on disk is damaged"
    # a rerun encodes only what is missing, and gets the same numbers
    again = _store(tmp_path, batch_size=5)
    kept = sum(again.has(t) for t in TEXTS)
    assert kept >= 10, "the shards written before the disk filled up were lost"
    assert again.ensure(TEXTS) == len(TEXTS) - kept
    _assert_identical(_snapshot(_ram_reference()), _snapshot(again), "after the rerun")


def _ram_reference(batch_size: int = 5) -> FeatureStore:
    """The reference numbers: the same batches, kept in RAM (the fake's float noise depends on the batch)."""
    ram = FeatureStore(FakeEncoder(), VIEWS, batch_size=batch_size, writers=0)
    ram.ensure(TEXTS)
    return ram


class _Boom(FakeEncoder):
    """Fails on its ``fail_at``-th batch, as a crash or Ctrl-C mid-pass would."""

    def __init__(self, fail_at: int, exc: BaseException) -> None:
        super().__init__()
        self.fail_at, self.exc = fail_at, exc

    def encode(self, texts, **kw):  # type: ignore[no-untyped-def]
        if len(self.calls) + 1 == self.fail_at:
            self.calls.append(len(texts))
            raise self.exc
        return super().encode(texts, **kw)


@pytest.mark.parametrize("exc", [RuntimeError("encoder blew up"), KeyboardInterrupt()], ids=["error", "ctrl-c"])
def test_an_interrupted_pass_keeps_whole_shards_and_a_rerun_encodes_the_rest(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exc: BaseException) -> None:
    real = FeatureCache._write_entries

    def slow(self: FeatureCache, *a: Any) -> None:  # writes still queued when the encoder fails
        time.sleep(0.1)
        real(self, *a)

    monkeypatch.setattr(FeatureCache, "_write_entries", slow)
    enc = _Boom(4, exc)
    store = _store(tmp_path, enc, batch_size=5)
    with pytest.raises(type(exc)) as err:
        store.ensure(TEXTS)
    assert err.value is exc, "the encoder's own error must be the one raised"
    assert store.cache is not None and store.cache._writer.pending == 0, "queued shards were not finished"
    assert _no_tmp(tmp_path)
    assert len(list(store.cache.dir.glob("*.tedf"))) == 3, "the 3 batches before the failure must be on disk"
    monkeypatch.undo()
    enc2 = FakeEncoder()
    again = _store(tmp_path, enc2, batch_size=5)
    assert again.ensure(TEXTS) == len(TEXTS) - 15 and enc2.calls == [5, 5, 5], "finished shards were re-encoded"
    _assert_identical(_snapshot(_ram_reference()), _snapshot(again), "after the rerun")


def test_an_error_in_the_ram_writer_reaches_the_caller(monkeypatch: pytest.MonkeyPatch) -> None:
    store = _store(None, batch_size=5)
    plain = store._keep

    def keep(*a: Any) -> None:
        if len(store._data) >= 2 * len(VIEWS) * 5:
            raise MemoryError("no room for the features")
        plain(*a)

    monkeypatch.setattr(store, "_keep", keep)
    with pytest.raises(MemoryError, match="no room"):
        store.ensure(TEXTS)
    assert store._ram_writer.pending == 0


# ---- back-pressure -----------------------------------------------------------------------
def test_submit_blocks_while_the_queue_is_full() -> None:
    writer = BackgroundWriter(threads=1, max_jobs=2, max_bytes=1 << 30, name="test")
    gate = threading.Event()
    done: list[int] = []
    writer.submit(lambda: (gate.wait(5), done.append(1))[1] and None)
    writer.submit(lambda: done.append(2))
    third = threading.Thread(target=writer.submit, args=(lambda: done.append(3),))
    third.start()
    third.join(0.3)
    assert third.is_alive() and writer.pending == 2, "a third job was queued past max_jobs"
    gate.set()
    third.join(5)
    assert not third.is_alive()
    writer.close()
    assert done == [1, 2, 3] and writer.n_blocked == 1 and writer.peak_jobs == 2


def test_bytes_bound_the_queue_but_one_job_always_fits() -> None:
    writer = BackgroundWriter(threads=2, max_jobs=10, max_bytes=100, name="test")
    gate = threading.Event()
    writer.submit(lambda: gate.wait(5) and None, nbytes=60)
    writer.submit(lambda: gate.wait(5) and None, nbytes=30)
    assert writer.pending_bytes == 90
    blocked = threading.Thread(target=writer.submit, args=(lambda: None,), kwargs={"nbytes": 20})
    blocked.start()
    blocked.join(0.3)
    assert blocked.is_alive(), "the queue took more bytes than max_bytes"
    gate.set()
    blocked.join(5)
    writer.close()
    big = BackgroundWriter(threads=1, max_jobs=2, max_bytes=10, name="test")
    big.submit(lambda: None, nbytes=1000)  # alone it may be larger than the bound
    big.close()


def test_a_slow_disk_slows_the_pass_and_bounds_its_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = FeatureCache._write_entries
    live: list[int] = []

    def slow(self: FeatureCache, *a: Any) -> None:
        live.append(self._writer.pending)
        time.sleep(0.2)  # far slower than the fake encoder's batch
        real(self, *a)

    monkeypatch.setattr(FeatureCache, "_write_entries", slow)
    store = _store(tmp_path, batch_size=2)
    assert store.cache is not None
    store.ensure(TEXTS)
    writer = store.cache._writer
    assert writer.n_jobs == 15 and writer.n_blocked >= 8, f"the encoder waited only {writer.n_blocked} times"
    assert writer.peak_jobs <= cache_mod._MAX_PENDING and max(live) <= cache_mod._MAX_PENDING
    assert store._staging.n_allocated <= cache_mod._MAX_PENDING + 1, "staging memory grew with the queue"
    _assert_identical(_snapshot(_ram_reference(2)), _snapshot(store), "slow disk")


def test_writer_errors_wait_for_the_other_jobs_and_are_raised_once(caplog: pytest.LogCaptureFixture) -> None:
    writer = BackgroundWriter(threads=2, max_jobs=4, max_bytes=1 << 30, name="test")
    finished: list[str] = []

    def fail() -> None:
        raise OSError("first")

    def slow() -> None:
        time.sleep(0.2)
        finished.append("slow")

    writer.submit(slow)
    writer.submit(fail)
    with pytest.raises(OSError, match="first"):
        writer.wait()
    assert finished == ["slow"] and writer.pending == 0, "the error was raised while a job still ran"
    writer.wait()  # raised once
    writer.submit(lambda: (_ for _ in ()).throw(ValueError("later")))
    writer.settle()  # an error path's cleanup: logged, not raised
    assert "later" in caplog.text and writer.pending == 0
    writer.close()


def test_synchronous_writer_runs_jobs_inline() -> None:
    writer = BackgroundWriter(threads=0, max_jobs=1, max_bytes=0, name="test")
    ran: list[str] = []
    writer.submit(lambda: ran.append(threading.current_thread().name))
    assert ran == [threading.current_thread().name] and writer.pending == 0
    with pytest.raises(ValueError):
        BackgroundWriter(threads=-1, max_jobs=1, max_bytes=0, name="test")


def test_truncation_flags_survive_the_background_writer(tmp_path: Path) -> None:
    enc = FakeEncoder(options=EncoderOptions(max_length=3, template="plain"))
    store = _store(tmp_path, enc, batch_size=4)
    store.ensure(TEXTS)
    want = sum(len(t.split()) > 3 for t in TEXTS)
    assert store.n_truncated == want
    warm = _store(tmp_path, FakeEncoder(options=EncoderOptions(max_length=3, template="plain")))
    assert warm.ensure(TEXTS) == 0 and warm.n_truncated == want


@pytest.mark.parametrize("where", ["ram", "cache"])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_padded_batches_are_the_float32_batches_in_the_stored_dtype(tmp_path: Path, where: str, dtype: str) -> None:
    """`FeatureStore.padded` (what a CUDA trainer moves, widened on the device) holds `batch`'s values
    exactly, in the stored dtype, for every kind of view; `batches(view)` offers both."""
    store = _store(tmp_path / "c" if where == "cache" else None, dtype=dtype)
    store.ensure(TEXTS)
    texts = [TEXTS[i] for i in (5, 0, 13, 6, 29)]  # lengths differ: padding in the middle of the batch
    for view in VIEWS:
        x, mask = store.batch(view, texts)
        px, pmask = store.padded(view, texts)
        assert px.dtype == getattr(torch, dtype) and x.dtype == torch.float32
        assert px.shape == x.shape and torch.equal(pmask, mask), view
        assert torch.equal(px.float(), x), f"{view}: padded values differ from batch()"
        assert not px[~pmask if view.op != "stack" else ~pmask[:, None].expand(px.shape[:3])].any(), "padding is zero"
        fn = store.batches(view)
        assert torch.equal(fn(texts)[0], x) and torch.equal(fn.padded(texts)[0], px)
    assert store.padded(VIEWS[0], [])[0].shape[0] == 0
