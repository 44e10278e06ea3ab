"""The aggregators plugin: context aggregator architecture, padding invariance, loss, training helps;
mean-pool; cheap construction through the hook."""

from __future__ import annotations

import random

import pytest

torch = pytest.importorskip("torch")

from harness import AggregatorOptions, CaptionPair  # noqa: E402
from harness_plugins.aggregators.context import PRESETS, ContextConfig, ContextModel, info_nce, rope, train  # noqa: E402
from harness_plugins.aggregators.mean_pool import masked_mean  # noqa: E402

BABY = PRESETS["baby"]


def test_official_defaults() -> None:
    cfg = PRESETS["default"]
    assert (cfg.dim_out, cfg.heads, cfg.mlp_ratio, cfg.blocks, cfg.rope) == (1024, 8, 4.0, 2, True)
    assert (cfg.temperature, cfg.logit_clamp, cfg.weight_decay) == (0.07, 15.0, 1e-5)
    assert (PRESETS["paper"].lr, PRESETS["paper"].epochs) == (1e-5, 1)
    assert (cfg.lr, cfg.epochs) == (1e-4, 2), "defaults must be the ones measured to train on thousands of pairs"


def test_architecture_bias_free_attention_and_shapes() -> None:
    model = ContextModel(64, ContextConfig())
    block = model.blocks[0]
    assert all(getattr(block, p).bias is None for p in "qkvo")
    assert block.mlp[0].out_features == 256 and isinstance(block.mlp[1], torch.nn.GELU)
    assert len(model.blocks) == 2 and model.proj.out_features == 1024
    x, mask = torch.randn(3, 5, 64), torch.ones(3, 5, dtype=torch.bool)
    assert model(x, mask).shape == (3, 1024)


def test_padding_invariance() -> None:
    torch.manual_seed(0)
    model = ContextModel(32, BABY).eval()
    short, long = torch.randn(1, 4, 32), torch.randn(1, 9, 32)
    alone = model(short, torch.ones(1, 4, dtype=torch.bool))
    x = torch.zeros(2, 9, 32)
    x[0, :4], x[1] = short[0], long[0]
    x[0, 4:] = 1e3  # garbage in padding must not leak
    mask = torch.zeros(2, 9, dtype=torch.bool)
    mask[0, :4], mask[1] = True, True
    batched = model(x, mask)
    torch.testing.assert_close(batched[0:1], alone, atol=1e-5, rtol=1e-5)
    pooled = masked_mean(x, mask)
    torch.testing.assert_close(pooled[0], short[0].mean(0))


def test_rope_is_relative_and_skips_nothing_it_should_not() -> None:
    q = torch.randn(1, 1, 6, 8)
    assert not torch.allclose(rope(q), q)
    # dot products depend only on relative position
    a, b = rope(q)[0, 0], rope(q, offset=5)[0, 0]
    torch.testing.assert_close(a[1] @ a[3], b[1] @ b[3], atol=1e-4, rtol=1e-4)


def test_learned_weights_start_as_norm_avg_and_fuse() -> None:
    cfg = BABY
    model = ContextModel(16, cfg, n_layers_in=3).eval()
    torch.testing.assert_close(model.layer_weights(), torch.full((3,), 1 / 3))
    layers = torch.randn(2, 3, 5, 16)
    mask = torch.ones(2, 5, dtype=torch.bool)
    torch.testing.assert_close(model(layers, mask), model(layers.mean(1), mask), atol=1e-5, rtol=1e-5)
    frozen = ContextModel(16, ContextConfig(layer_weights="frozen"), n_layers_in=3)
    assert not frozen.layer_logits.requires_grad


def test_info_nce_masks_same_group_and_clamps() -> None:
    cfg = ContextConfig()
    torch.manual_seed(0)
    z = torch.nn.functional.normalize(torch.randn(4, 8), dim=-1)
    zb = z + 0.5 * torch.randn(4, 8)
    base = info_nce(z, zb, [None, None, None, None], cfg)
    grouped = info_nce(z, zb, ["g", "g", None, None], cfg)
    # manual: row 0 must not see column 1 (same group) as a negative
    logits = (torch.nn.functional.normalize(z, dim=-1) @ torch.nn.functional.normalize(zb, dim=-1).T / 0.07).clamp(-15, 15)
    logits[0, 1] = logits[1, 0] = float("-inf")
    t = torch.arange(4)
    manual = 0.5 * (torch.nn.functional.cross_entropy(logits, t) + torch.nn.functional.cross_entropy(logits.T, t))
    torch.testing.assert_close(grouped, manual)
    assert grouped < base
    # clamp: identical vectors give logit 1/0.07 = 14.3 on the diagonal, below the clamp; 1/0.01 is clamped
    hot = info_nce(z, z, [None] * 4, ContextConfig(temperature=0.01))
    assert torch.isfinite(hot)


def _synthetic_pairs(n: int, seed: int) -> list[CaptionPair]:
    rng = random.Random(seed)
    colors, things = ["red", "blue", "green", "black", "white", "yellow"], ["cup", "dog", "car", "lamp", "boat", "kite"]
    out = []
    for i in range(n):
        c1, c2 = rng.sample(colors, 2)
        t1, t2 = rng.sample(things, 2)
        out.append(CaptionPair(a=f"a {c1} {t1} next to a {c2} {t2}", b=f"the {t2} is {c2} and the {t1} is {c1}", group=str(i)))
    return out


def test_training_beats_untrained_on_held_out_pairs() -> None:
    from harness.feature_store import FeatureStore
    from harness.views import View
    from harness.testing import FakeEncoder

    enc = FakeEncoder(width=32, num_layers=2)
    view = View("single", (2,), "layernorm")
    train_pairs, held = _synthetic_pairs(400, 0), _synthetic_pairs(64, 1)
    store = FeatureStore(enc, [view])
    store.ensure([t for p in train_pairs + held for t in (p.a, p.b)])
    feats = lambda texts: store.batch(view, texts)  # noqa: E731
    cfg = ContextConfig(dim_out=32, heads=4, mlp_ratio=2.0, lr=1e-3, epochs=3, batch_size=32)

    def retrieval(model: ContextModel) -> float:
        with torch.no_grad():
            za = torch.nn.functional.normalize(model(*feats([p.a for p in held])), dim=-1)
            zb = torch.nn.functional.normalize(model(*feats([p.b for p in held])), dim=-1)
        return float(((za @ zb.T).argmax(1) == torch.arange(len(held))).float().mean())

    torch.manual_seed(0)
    model = ContextModel(32, cfg)
    before = retrieval(model)
    report = train(model, feats, train_pairs, cfg, seed=0)
    after = retrieval(model)
    assert report.steps == 3 * 13 and report.final_loss < report.first_loss
    assert before < 0.35, f"untrained aggregator retrieves {before:.2f}: the test is too easy"
    assert after > before + 0.3, f"training did not help: {before:.2f} -> {after:.2f}"


def test_hook_builds_cheaply_and_resolves_options() -> None:
    from harness.plugins import get_plugin_manager

    pm = get_plugin_manager([])
    agg = pm.hook.harness_make_aggregator(name="context", width=4096, n_layers_in=37,
                                          options=AggregatorOptions(preset="paper", lr=3e-5, device="cpu"))
    assert agg.trainable and agg.model is None, "construction must not build a 4096-wide model"
    cfg = agg.config()
    assert (cfg["lr"], cfg["epochs"], cfg["preset"], cfg["n_layers_in"], cfg["width"]) == (3e-5, 1, "paper", 37, 4096)
    pool = pm.hook.harness_make_aggregator(name="mean-pool", width=8, n_layers_in=1, options=AggregatorOptions())
    assert not pool.trainable and pool.config() == {"pooling": "masked-mean"}
    assert pm.hook.harness_make_aggregator(name="nope", width=8, n_layers_in=1, options=AggregatorOptions()) is None


def test_context_save_load_round_trip(tmp_path) -> None:
    from harness.feature_store import FeatureStore
    from harness.testing import FakeEncoder
    from harness.views import View
    from harness_plugins.aggregators.context import ContextAggregator

    enc = FakeEncoder(width=16, num_layers=2)
    view = View("stack", (0, 1, 2), "layernorm")
    pairs = _synthetic_pairs(16, 0)
    store = FeatureStore(enc, [view])
    store.ensure([t for p in pairs for t in (p.a, p.b)])
    feats = lambda texts: store.batch(view, texts)  # noqa: E731
    opts = AggregatorOptions(preset="baby", device="cpu")
    agg = ContextAggregator(16, 3, opts)
    report = agg.fit(feats, pairs, seed=0)
    assert report.steps == 2 and report.layer_weights is not None and len(report.layer_weights) == 3
    agg.save(str(tmp_path / "a.pt"))
    again = ContextAggregator(16, 3, opts)
    again.load(str(tmp_path / "a.pt"))
    texts = [p.a for p in pairs]
    assert (agg.embed(feats, texts) == again.embed(feats, texts)).all()
