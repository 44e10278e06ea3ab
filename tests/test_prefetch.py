"""The training feed (harness_plugins.aggregators.prefetch): batches fetched ahead on a thread give the
synchronous path's losses and weights bit for bit, stay bounded, raise the fetch's error at the
step it belongs to, and never leave a thread behind."""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Sequence
from typing import Any

import pytest

torch = pytest.importorskip("torch")

from harness import CaptionPair  # noqa: E402
from harness_plugins.aggregators.context import ContextModel  # noqa: E402
from harness_plugins.aggregators.mean_pool import MeanPoolHead  # noqa: E402
from harness_plugins.aggregators.prefetch import Feed  # noqa: E402
from harness_plugins.aggregators.training import PRESETS, TrainConfig, train  # noqa: E402

BABY = PRESETS["baby"]
WIDTH = 16
FEED_THREAD = "harness-train-feed"


def _feed_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == FEED_THREAD]


@pytest.fixture(autouse=True)
def _no_thread_left() -> Any:
    assert not _feed_threads(), "a feed thread was alive before the test"
    yield
    assert not _feed_threads(), "a feed thread outlived its training"


def _pairs(n: int = 40) -> list[CaptionPair]:
    return [CaptionPair(a=f"a{i} " + "x" * (i % 7), b=f"b{i} " + "y" * (i % 5), group=f"g{i % 13}") for i in range(n)]


def _features(layers: int = 1) -> dict[str, torch.Tensor]:
    """A fixed ``[(L,) T, D]`` tensor per text, its length varying with the text (so batches are padded)."""
    g = torch.Generator().manual_seed(0)
    texts = [t for p in _pairs() for t in (p.a, p.b)]
    lead = (layers,) if layers > 1 else ()
    return {t: torch.randn(*lead, 2 + len(t) % 6, WIDTH, generator=g) for t in texts}


def _batch_fn(feats: dict[str, torch.Tensor], calls: list[str] | None = None, *, delay: float = 0.0,
              fail_at: int | None = None) -> Any:
    """Right-padded ``[B, (L,) T, D]`` and mask, as `FeatureStore.batch`; records the calling thread."""
    n = [0]

    def fn(texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        n[0] += 1
        if calls is not None:
            calls.append(threading.current_thread().name)
        if fail_at is not None and n[0] == fail_at:
            raise OSError(f"shard unreadable at call {fail_at}")
        time.sleep(delay)
        seqs = [feats[t] for t in texts]
        t_max = max(s.shape[-2] for s in seqs)
        x = torch.zeros(len(seqs), *seqs[0].shape[:-2], t_max, WIDTH)
        mask = torch.zeros(len(seqs), t_max, dtype=torch.bool)
        for i, s in enumerate(seqs):
            x[i, ..., : s.shape[-2], :] = s
            mask[i, : s.shape[-2]] = True
        return x, mask
    return fn


def _train(make: Any, cfg: TrainConfig, *, prefetch: int, layers: int = 1, **kw: Any) -> tuple[Any, dict[str, Any]]:
    torch.manual_seed(0)
    model = make()
    calls: list[str] = []
    report = train(model, _batch_fn(_features(layers), calls, **kw), _pairs(), cfg, seed=3, prefetch=prefetch)
    return report, {"state": {k: v.clone() for k, v in model.state_dict().items()}, "calls": calls}


CASES = {
    "context-bucketed": (lambda: ContextModel(WIDTH, BABY), BABY, 1),
    "context-learned-stack-ntxent-random": (
        lambda: ContextModel(WIDTH, TrainConfig(dim_out=8, heads=2, mlp_ratio=2.0), n_layers_in=3),
        TrainConfig(dim_out=8, heads=2, mlp_ratio=2.0, epochs=2, batch_size=6, loss="ntxent", center_logits=True,
                    batching="random"), 3),
    "mean-pool-bf16": (lambda: MeanPoolHead(WIDTH, BABY), TrainConfig(dim_out=8, epochs=2, batch_size=8,
                                                                       precision="bf16"), 1),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_prefetched_training_is_bit_identical_to_the_synchronous_path(case: str) -> None:
    make, cfg, layers = CASES[case]
    sync, s = _train(make, cfg, prefetch=0, layers=layers)
    assert set(s["calls"]) == {threading.current_thread().name}, "prefetch 0 fetches in the caller's thread"
    for depth in (1, 3):
        ahead, a = _train(make, cfg, prefetch=depth, layers=layers)
        assert set(a["calls"]) == {FEED_THREAD}, f"depth {depth}: every fetch runs on the feed thread"
        assert ahead.steps == sync.steps > 4, case
        assert ahead.losses == sync.losses, f"{case}, depth {depth}: losses differ from the synchronous path"
        assert ahead.layer_weight_trajectory == sync.layer_weight_trajectory
        for k, v in s["state"].items():
            assert torch.equal(a["state"][k], v), f"{case}, depth {depth}: weight {k} differs"


def test_the_feed_runs_ahead_of_the_consumer_but_no_further_than_its_depth() -> None:
    fetched: list[int] = []

    def fetch(i: int) -> tuple[torch.Tensor, ...]:
        fetched.append(i)
        return (torch.full((2,), float(i)),)

    with Feed(range(20), fetch, device="cpu", depth=3) as feed:
        seen = []
        for i, (t,) in feed:
            if i == 10:  # a slow step: the thread fills the queue (3) and holds one more, then waits
                deadline = time.monotonic() + 10
                while len(fetched) < 15 and time.monotonic() < deadline:
                    time.sleep(0.01)
                time.sleep(0.2)
                assert len(fetched) == 15, f"{len(fetched) - 11} batches ahead of item 10, expected 3 queued + 1"
            assert len(fetched) - (i + 1) <= 3 + 1, f"item {i}: the feed ran further ahead than its queue"
            seen.append((i, float(t[0])))
    assert seen == [(i, float(i)) for i in range(20)], "items come in their order, each with its own tensors"


def test_a_fetch_error_is_raised_at_its_step_with_the_earlier_steps_done() -> None:
    make, cfg, _ = CASES["context-bucketed"]
    done: list[int] = []
    torch.manual_seed(0)
    with pytest.raises(OSError, match="shard unreadable at call 5") as err:
        train(make(), _batch_fn(_features(), fail_at=5), _pairs(), cfg, seed=3, prefetch=2,
              on_step=lambda step, loss: done.append(step))
    assert done == [1, 2], "calls 1-4 are steps 1-2 (two calls a step); call 5 fails step 3, as without the prefetch"
    assert "fn" in [frame.name for frame in traceback.extract_tb(err.value.__traceback__)], \
        "the traceback reaches into the fetch that failed"


def test_an_error_in_the_step_stops_and_joins_the_feed_thread() -> None:
    make, cfg, _ = CASES["context-bucketed"]

    def boom(step: int, loss: float) -> None:
        if step == 2:
            raise KeyboardInterrupt  # e.g. Ctrl-C while the thread waits on a full queue
    with pytest.raises(KeyboardInterrupt):
        train(make(), _batch_fn(_features(), delay=0.01), _pairs(), cfg, seed=3, prefetch=2, on_step=boom)


def test_a_non_finite_loss_stops_training_and_the_feed() -> None:
    make, cfg, _ = CASES["context-bucketed"]
    feats = {t: torch.full_like(v, float("nan")) for t, v in _features().items()}
    report = train(make(), _batch_fn(feats), _pairs(), cfg, seed=3, prefetch=2)
    assert report.steps == 1 and report.losses[0] != report.losses[0], "stops after the first NaN loss"


def test_closing_a_feed_blocked_on_a_full_queue_joins_it_at_once() -> None:
    feed = Feed(range(1000), lambda i: (torch.zeros(1),), device="cpu", depth=1)
    time.sleep(0.1)  # the thread has filled the queue and waits to put the next item
    t0 = time.perf_counter()
    feed.close()
    assert time.perf_counter() - t0 < 2.0, "close() waited for the items to run out"
    with pytest.raises(ValueError, match="depth must be >= 0"):
        Feed(range(3), lambda i: (torch.zeros(1),), device="cpu", depth=-1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_on_cuda_pinned_asynchronous_copies_give_the_synchronous_numbers() -> None:
    from torch.nn.attention import SDPBackend, sdpa_kernel

    feats = _features()
    pairs = _pairs()
    out = {}
    with sdpa_kernel(SDPBackend.MATH):  # the fused attention backwards may accumulate in any order
        for depth in (0, 2):
            torch.manual_seed(0)
            model = ContextModel(WIDTH, BABY).cuda()
            out[depth] = train(model, _batch_fn(feats), pairs, BABY, seed=3, prefetch=depth).losses
    assert out[2] == out[0], "prefetched CUDA copies changed the losses"
    got = list(Feed(range(3), lambda i: (torch.full((4,), float(i)),), device="cuda", depth=2))
    assert [(i, t.device.type, float(t[0])) for i, (t,) in got] == [(i, "cuda", float(i)) for i in range(3)]


def test_pinned_feed_takes_the_stored_dtype_path_and_widens_it_exactly() -> None:
    """`pair_features(pinned=True)` calls a batch function's ``padded(texts, pin=True)`` when it has one
    (else the function itself); a `Feed` with ``float32=True`` widens bf16 to the float32 values."""
    from harness_plugins.aggregators.prefetch import pair_features

    feats = {t: v.to(torch.bfloat16) for t, v in _features().items()}
    plain = _batch_fn({t: v.float() for t, v in feats.items()})
    asked: list[bool] = []

    class WithPadded:
        def __call__(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
            return plain(texts)

        def padded(self, texts: Sequence[str], *, pin: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
            asked.append(pin)
            x, mask = plain(texts)
            return x.to(torch.bfloat16), mask

    pairs = _pairs()
    fetch = pair_features(WithPadded(), pairs, pinned=True)
    got = fetch([0, 3, 5])
    assert asked == [True, True] and got[0].dtype == torch.bfloat16, "the padded path was not taken"
    assert pair_features(plain, pairs, pinned=True)([0, 3, 5])[0].dtype == torch.float32, "no padded: plain calls"
    assert pair_features(WithPadded(), pairs)([0, 3, 5])[0].dtype == torch.float32 and len(asked) == 2
    (_, widened), = list(Feed([[0, 3, 5]], fetch, device="cpu", depth=0, float32=True))
    assert [t.dtype for t in widened] == [torch.float32, torch.bool, torch.float32, torch.bool]
    assert all(torch.equal(w, p) for w, p in zip(widened, pair_features(plain, pairs)([0, 3, 5])))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_on_cuda_bf16_store_batches_padded_into_pinned_memory_give_the_synchronous_numbers() -> None:
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from harness.features.store import FeatureStore
    from harness.features.views import View
    from harness.testing import FakeEncoder

    view = View("single", (3,), "none")
    store = FeatureStore(FakeEncoder(width=WIDTH), [view], dtype="bfloat16")
    pairs = _pairs()
    store.ensure([t for p in pairs for t in (p.a, p.b)])
    out = {}
    with sdpa_kernel(SDPBackend.MATH):
        for depth in (0, 2):  # 0: float32 batches moved in the loop; 2: bf16 padded into pinned memory
            torch.manual_seed(0)
            model = ContextModel(WIDTH, BABY).cuda()
            out[depth] = train(model, store.batches(view), pairs, BABY, seed=3, prefetch=depth).losses
    assert out[2] == out[0], "bf16 batches widened on the device changed the losses"
