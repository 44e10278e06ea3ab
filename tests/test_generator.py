"""The toy-t2i generator plugin: scenes, renderer, checker, two-step layer weights, scorer."""

from __future__ import annotations

import json
import random
import subprocess
import sys

import pytest

from harness import ScoredRow
from harness.plugins import get_plugin_manager
from harness_plugins.generator import (
    caption_scene,
    check_facts,
    fact_holds,
    render,
    sample_scenes,
    scene_facts,
    variants,
)


def test_ground_truth_images_pass_the_checker() -> None:
    ok = total = 0
    for i, scene in enumerate(sample_scenes(100, seed=3)):
        cap = caption_scene(scene, random.Random(i))
        assert all(fact_holds(f, scene) for f in cap.facts), f"caption of scene {i} states a false fact"
        for size in (32, 64):
            res = check_facts(render(scene, size), cap.facts)
            ok, total = ok + sum(res), total + len(res)
    assert ok / total >= 0.98, f"checker reads only {ok}/{total} facts of rendered ground truth"


@pytest.mark.parametrize("kind", ["colour", "position", "count", "letter"])
def test_one_changed_fact_fails_alone(kind: str) -> None:
    checked = 0
    for scene in sample_scenes(60, seed=5):
        facts = scene_facts(scene)
        for new in variants(scene, kind):
            flipped = [f for f in facts if not fact_holds(f, new)]
            if len(flipped) != 1:
                continue  # this change touches several facts; the test wants exactly one
            res = check_facts(render(new), facts)
            failed = [f for f, r in zip(facts, res) if not r]
            assert failed == flipped, f"{kind} change {new}: checker failed {failed}, expected {flipped}"
            checked += 1
            break
    assert checked >= 5, f"only {checked} scenes had a one-fact {kind} change"


def test_two_step_layer_weights_move_then_freeze(tmp_path) -> None:
    torch = pytest.importorskip("torch")
    pytest.importorskip("diffusers")
    from harness_plugins.generator._model import train_generator, write_layer_weights
    from harness_plugins.generator._scorer import make_config

    feats, mask = torch.randn(8, 4, 5, 16), torch.ones(8, 5, dtype=torch.bool)
    imgs = torch.rand(8, 3, 32, 32) * 2 - 1
    runs = {m: train_generator(make_config("smoke", steps=6, n1=3, layer_weights=m), feats, mask, imgs)
            for m in ("two-step", "continuous", "frozen")}
    om = runs["two-step"].omega
    assert om[0] != [0.25] * 4 and om[2] != om[0], "ω did not move during the first N1 steps"
    assert om[2] == om[3] == om[5], "ω changed after N1 (two-step must freeze it)"
    assert runs["continuous"].omega[5] != runs["continuous"].omega[3], "continuous ω stopped moving"
    assert runs["frozen"].omega[5] == pytest.approx([0.25] * 4), "frozen (norm-avg) ω is not uniform"
    paths = write_layer_weights(runs["two-step"], tmp_path, layers=[0, 1, 2, 3], n1=3, mode="two-step")
    logits = json.loads(paths[1].read_text())["logits"]
    assert torch.softmax(torch.tensor(logits), 0).tolist() == pytest.approx(om[-1])
    assert len(json.loads(paths[0].read_text())["omega"]) == 6


def _scorer(**options: object):
    """A smoke toy-t2i scorer bound to a run context, as `harness score` hands it one."""
    from harness.downstream.context import ScoreContext
    from harness.testing import FakeEncoder

    pm = get_plugin_manager(["harness_plugins.generator"])
    assert "toy-t2i" in [n for ns in pm.hook.harness_scorer_names() for n in ns]
    scorer = pm.hook.harness_make_scorer(name="toy-t2i", options={"config": "smoke", "encoders": {"fake": FakeEncoder()},
                                                                  **options})
    scorer.bind(ScoreContext.create(pm))
    return scorer


def test_smoke_scorer_returns_named_metrics(tmp_path) -> None:
    pytest.importorskip("diffusers")
    metrics = _scorer(out_dir=str(tmp_path)).score(ScoredRow("fake", "learned"))
    names = {m.metric: m for m in metrics}
    assert {"checker-acc", "checker-acc:adjective", "checker-acc:quantity", "denoise-loss"} <= set(names)
    assert names["checker-acc"].n == 4 and names["denoise-loss"].n == 4, "smoke config samples 4 held-out captions"
    assert all(m.benchmark == "toy-t2i" and 0 <= m.value for m in metrics)
    assert 0 <= names["checker-acc"].value <= 1
    assert (tmp_path / "fake--learned" / "layer_logits.json").exists(), "learned row must export its ω"


def test_unconditioned_flag_ignores_the_text() -> None:
    pytest.importorskip("diffusers")
    a = _scorer(unconditioned=True).score(ScoredRow("fake", "last"))
    b = _scorer(unconditioned=True).score(ScoredRow("fake", "norm-avg"))
    assert [m.value for m in a] == pytest.approx([m.value for m in b]), "zero condition must not see the extractor"
    both = _scorer(baseline=True).score(ScoredRow("fake", "last"))
    assert {m.benchmark for m in both} == {"toy-t2i", "toy-t2i:uncond"}


def test_import_leaves_torch_out() -> None:
    code = "import sys, harness_plugins.generator; print('torch' in sys.modules, 'diffusers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"], "importing the generator plugin loaded torch or diffusers"


def test_score_rows_writes_downstream_csv_and_goes_on(tmp_path, monkeypatch) -> None:
    """harness score: one CSV row per metric with its interval, rewritten after each row; a rerun
    scores only what is missing, and a folder made with other options is refused."""
    pytest.importorskip("diffusers")
    from harness import ConfigError
    from harness.downstream.rows import read_downstream_file
    from harness.cli.score import score_rows
    from harness.testing import FakeEncoder
    from harness_plugins.generator import ToyT2IScorer

    pm = get_plugin_manager(["harness_plugins.generator"])
    opts = {"encoders": {"fake": FakeEncoder()}, "steps": "2", "n1": "1"}
    rows = [ScoredRow("fake", "last", ted=31.5), ScoredRow("fake", "learned", ted=40.0)]
    done = score_rows(pm, "toy-t2i:smoke", rows, tmp_path, options=opts, baseline=True, say=lambda _: None)
    back = read_downstream_file(tmp_path / "downstream.csv")
    assert [(r.encoder, r.extractor, r.ted, m.benchmark, m.metric) for r, m in back] == \
        [(r.encoder, r.extractor, r.ted, m.benchmark, m.metric) for r, m in done]
    assert [m.value for _, m in back] == [m.value for _, m in done], "values must survive the CSV exactly"
    acc = [m for _, m in back if m.metric == "checker-acc" and m.benchmark == "toy-t2i"]
    assert len(acc) == 2 and all(m.ci is not None and m.ci[0] <= m.value <= m.ci[1] for m in acc)
    margins = {r.extractor: m for r, m in back if m.metric == "checker-margin"}
    cond = {r.extractor: m.value for r, m in back if m.metric == "checker-acc" and m.benchmark == "toy-t2i"}
    base = [m.value for r, m in back if m.metric == "checker-acc" and m.benchmark == "toy-t2i:uncond"]
    assert margins["last"].value == pytest.approx(cond["last"] - base[0]), "margin = conditioned - unconditioned"
    for name in ("fake--last/grid.png", "fake--learned/omega.png", "fake--learned/layer_logits.json",
                 "uncond/samples.json"):
        assert (tmp_path / "rows" / name).is_file(), name

    calls: list[str] = []
    real = ToyT2IScorer._run
    monkeypatch.setattr(ToyT2IScorer, "_run", lambda self, row, **kw: calls.append(row.extractor) or real(self, row, **kw))
    more = rows + [ScoredRow("fake", "norm-avg")]
    score_rows(pm, "toy-t2i:smoke", more, tmp_path, options=opts, baseline=True, say=lambda _: None)
    assert calls == ["norm-avg"], "a rerun must score only the missing row, and reuse the saved baseline"
    assert len({(r.encoder, r.extractor) for r, _ in read_downstream_file(tmp_path / "downstream.csv")}) == 3
    with pytest.raises(ConfigError, match="another --out"):
        score_rows(pm, "toy-t2i:smoke", rows, tmp_path, options={**opts, "steps": "3"}, baseline=True)
    fresh = tmp_path / "fresh"
    with pytest.raises(ConfigError, match="stepz"):
        score_rows(pm, "toy-t2i:smoke", rows, fresh, options={**opts, "stepz": "3"})
    assert not (fresh / "score.json").exists(), "a refused option must not claim the folder for a later run"


def test_score_options_reach_the_config_or_are_refused() -> None:
    from harness import ConfigError
    from harness_plugins.generator import make_config

    cfg = make_config("cpu", steps="120", lr="0.01", layer_weights="continuous", channels="16,32")
    assert (cfg.steps, cfg.lr, cfg.layer_weights, cfg.channels) == (120, 0.01, "continuous", (16, 32))
    for bad, match in (({"stepz": "3"}, "unknown config option"), ({"steps": "x"}, "expected int"),
                       ({"steps": "0"}, "at least 1"), ({"n1": "900"}, "between 0 and steps"),
                       ({"image_size": "48"}, "multiple of 32")):
        with pytest.raises(ConfigError, match=match):
            make_config("cpu", **bad)


def test_score_cli_refuses_bad_input_in_one_line(tmp_path) -> None:
    from harness.cli.main import main

    for argv in (["score", "--out", str(tmp_path / "a")],
                 ["score", "--rows", "minilm", "--out", str(tmp_path / "b")],
                 ["score", "--rows", "minilm/last", "-O", "steps", "--out", str(tmp_path / "c")],
                 ["score", "--rows", "minilm/last", "--scorer", "nope", "--out", str(tmp_path / "d")],
                 ["score", "--rows", "minilm/last", "-O", "stepz=3", "--out", str(tmp_path / "e")]):
        assert main(argv) == 2, argv


def test_downstream_csv_intervals_are_checked(tmp_path) -> None:
    from harness import DataError
    from harness.downstream.rows import read_downstream_file

    head = "encoder,extractor,benchmark,metric,value,ci_low,ci_high\n"
    (tmp_path / "a.csv").write_text(head + "e,x,b,m,0.5,0.4,\n")
    with pytest.raises(DataError, match=r"a\.csv:2: field .ci_high. is empty; give both"):
        read_downstream_file(tmp_path / "a.csv")
    (tmp_path / "b.csv").write_text(head + "e,x,b,m,0.5,0.6,0.7\n")
    with pytest.raises(DataError, match="does not contain"):
        read_downstream_file(tmp_path / "b.csv")
    (tmp_path / "c.csv").write_text(head + "e,x,b,m,0.5,0.4,0.6\n")
    assert read_downstream_file(tmp_path / "c.csv")[0][1].ci == (0.4, 0.6)


def test_configs_build_the_documented_unets() -> None:
    """cpu: attention only at the coarsest level (what fits 2 cores); gpu: 64 px, attention at two levels,
    pooled text on the timestep embedding."""
    pytest.importorskip("diffusers")
    from harness_plugins.generator import make_config
    from harness_plugins.generator._model import build_unet

    cpu, gpu = build_unet(make_config("cpu")).config, build_unet(make_config("gpu")).config
    assert cpu.down_block_types == ("DownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D")
    assert gpu.sample_size == 64 and gpu.down_block_types[-2:] == ("CrossAttnDownBlock2D",) * 2
    assert gpu.down_block_types[0] == "DownBlock2D" and gpu.class_embed_type == "projection"


def _train_data(n: int = 16):
    torch = pytest.importorskip("torch")
    g = torch.Generator().manual_seed(0)
    feats, mask = torch.randn(n, 4, 5, 16, generator=g), torch.ones(n, 5, dtype=torch.bool)
    mask[:, 3:] = False
    return feats, mask, torch.rand(n, 3, 32, 32, generator=g) * 2 - 1


def test_reading_losses_back_in_blocks_changes_no_number() -> None:
    """The loop keeps the loss and ω on the device and reads them back every ``sync_every`` steps: the same
    losses and ω, to the bit, whatever the block (a block boundary inside the run, at its end, past it)."""
    pytest.importorskip("diffusers")
    from harness_plugins.generator._model import train_generator
    from harness_plugins.generator._scorer import make_config

    feats, mask, imgs = _train_data()
    runs = [train_generator(make_config("smoke", steps=7, n1=4, sync_every=k), feats, mask, imgs)
            for k in (1, 3, 7, 50)]
    assert len(runs[0].losses) == len(runs[0].omega) == 7
    for run in runs[1:]:
        assert run.losses == runs[0].losses and run.omega == runs[0].omega
    assert runs[0].omega[4] == runs[0].omega[6] != runs[0].omega[0], "two-step ω moved, then froze at n1"


def test_channels_last_and_compile_train_the_same_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """NHWC convolutions and the compiled UNet (aot_eager here: inductor takes minutes on 2 cores) give the
    eager NCHW losses to float rounding; compile wraps the UNet once per training."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("diffusers")
    from harness_plugins.generator._model import train_generator
    from harness_plugins.generator._scorer import make_config

    feats, mask, imgs = _train_data()
    base = train_generator(make_config("smoke", steps=4), feats, mask, imgs).losses
    nhwc = train_generator(make_config("smoke", steps=4, channels_last=True), feats, mask, imgs)
    assert nhwc.unet.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    assert nhwc.losses == pytest.approx(base, rel=1e-4)
    compiled: list[object] = []
    real = torch.compile

    def aot_eager(model, **kw):
        compiled.append(model)
        return real(model, backend="aot_eager", **kw)

    monkeypatch.setattr(torch, "compile", aot_eager)
    comp = train_generator(make_config("smoke", steps=4, compile=True), feats, mask, imgs)
    assert compiled == [comp.unet], "the UNet (and only it) is compiled, once"
    assert comp.losses == pytest.approx(base, rel=1e-4)


def test_a_failed_compile_names_the_option_to_turn_it_off(monkeypatch: pytest.MonkeyPatch) -> None:
    torch = pytest.importorskip("torch")
    pytest.importorskip("diffusers")
    from harness import ConfigError
    from harness_plugins.generator._model import train_generator
    from harness_plugins.generator._scorer import make_config

    def no_backend(gm, inputs):
        raise RuntimeError("no working triton here")

    real = torch.compile
    monkeypatch.setattr(torch, "compile", lambda model, **kw: real(model, backend=no_backend, **kw))
    feats, mask, imgs = _train_data()
    with pytest.raises(ConfigError, match=r"torch.compile of the UNet failed .*no working triton.*-O compile=false"):
        train_generator(make_config("smoke", steps=2, compile=True), feats, mask, imgs)


def test_heldout_start_holds_out_the_cpu_configs_prompts_under_any_config(tmp_path) -> None:
    """``heldout_start=1024, n_heldout=128`` gives the gpu config the cpu config's 128 held-out prompts and
    trains it on none of them (the seeded scene list is the same prefix at every length)."""
    from harness import ConfigError
    from harness_plugins.generator._scorer import captions_for, make_config, split

    cpu_train, cpu_held = split(make_config("cpu"))
    assert (cpu_train, cpu_held) == (list(range(1024)), list(range(1024, 1152))), "default: held out after training"
    train, held = split(make_config("gpu", heldout_start=1024, n_heldout=128))
    assert held == cpu_held and len(train) == 20000 and not set(train) & set(held)
    assert train[1023:1025] == [1023, 1152]
    caps = captions_for(1400, 0)
    assert [c.text for c in captions_for(1152, 0)[1024:]] == [caps[i].text for i in held]
    for bad in ("-2", "20001"):
        with pytest.raises(ConfigError, match="heldout_start"):
            make_config("gpu", heldout_start=bad)
    # through the scorer: the held-out captions it scores are those prompts
    pytest.importorskip("diffusers")
    _scorer(out_dir=str(tmp_path)).score(ScoredRow("fake", "last"))  # default smoke: held out after 16
    moved = tmp_path / "moved"
    scorer = _scorer(out_dir=str(moved))
    from harness_plugins.generator._scorer import make_config as mk

    scorer.config = mk("smoke", heldout_start=4)
    scorer.score(ScoredRow("fake", "last"))
    scored = [c["text"] for c in json.loads((moved / "fake--last" / "samples.json").read_text())["captions"]]
    assert scored == [c.text for c in captions_for(20, 0)[4:8]]


def test_the_unet_sees_the_images_in_the_layout_they_come_in(monkeypatch: pytest.MonkeyPatch) -> None:
    """The scorer's images are NHWC memory seen as NCHW (channels_last strides) and the convolutions follow
    the layout they get.  Forcing them to NCHW (an issue-23 change, caught before it landed) changed every
    toy-t2i number after the first steps: minilm/last on the cpu config fell from the README's 29.3% to
    22.3%.  Only ``channels_last=true`` may change the layout."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("diffusers")
    from harness_plugins.generator import _model
    from harness_plugins.generator._scorer import make_config

    seen: list[bool] = []  # per UNet call: was the noisy input channels_last (and not plain NCHW)?
    real = _model.build_unet

    def spying(cfg):
        unet = real(cfg)
        forward = unet.forward

        def spy(sample, *args, **kwargs):
            seen.append(sample.is_contiguous(memory_format=torch.channels_last) and not sample.is_contiguous())
            return forward(sample, *args, **kwargs)
        unet.forward = spy
        return unet

    monkeypatch.setattr(_model, "build_unet", spying)
    feats, mask, imgs = _train_data()
    nhwc = imgs.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2)  # as the scorer builds them from numpy
    for images, channels_last, expect in ((nhwc, False, True), (imgs, False, False), (imgs, True, True)):
        seen.clear()
        _model.train_generator(make_config("smoke", steps=2, channels_last=channels_last), feats, mask, images)
        assert seen and all(s == expect for s in seen), (channels_last, images.stride(), seen)
    base = _model.train_generator(make_config("smoke", steps=4), feats, mask, nhwc).losses
    assert base == _model.train_generator(make_config("smoke", steps=4, sync_every=1), feats, mask, nhwc).losses
