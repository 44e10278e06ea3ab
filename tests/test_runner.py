"""End to end on the fake encoder: results files, determinism, checkpoint reuse, baselines, controls."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("torch")

from harness.cli.main import main  # noqa: E402
from harness.features.extractors import parse_extractors  # noqa: E402
from harness.evaluation.scoring import derange_captions, permutation_null, score_instances  # noqa: E402
from harness.evaluation.tasks import load_task_sets  # noqa: E402
from harness.evaluation.runner import run  # noqa: E402

from conftest import TINY_PAIRS  # noqa: E402
from harness.registry import resolve_path  # noqa: E402

BASE = ["-p", "harness.testing", "run", "--encoders", "fake", "--tasks", "tiny", "--preset", "baby",
        "--train-pairs", TINY_PAIRS]


def _run(tmp_path: Path, name: str, *extra: str) -> dict:
    out = tmp_path / name
    assert main([*BASE, *extra, "--output", str(out)]) == 0
    return json.loads((out / "results.json").read_text())


def _overall(res: dict) -> dict:
    return {(s["extractor"], s["seed"]): s["value"] for s in res["scores"]
            if s["category"] == "all" and s["caption_type"] == "all"}


def test_results_schema_and_samples(tmp_path: Path) -> None:
    res = _run(tmp_path, "a", "--extract", "last,norm-avg,learned")
    prov = res["provenance"]
    assert res["schema"] == 2 and prov["versions"]["torch"] and prov["tasks"]["tiny"]["tasks"]["tiny"]["sha256"]
    for t in res["training"]:
        assert t["pairs"]["n"] == 8 and len(t["pairs"]["sha256"]) == 64 and t["pairs"]["source"] == TINY_PAIRS
    enc = prov["encoders"]["fake"]
    assert enc["extractors"]["norm-avg"]["view"] == "mean:layernorm:0,1,2,3", "fake keeps the embedding layer"
    assert enc["extractors"]["learned"]["view"] == "stack:layernorm:0,1,2,3"
    keys = {(s["extractor"], s["category"], s["caption_type"]) for s in res["scores"]}
    assert ("last", "ocr", "all") in keys and ("learned", "all", "video") in keys
    overall = [s for s in res["scores"] if s["category"] == "all" and s["caption_type"] == "all"]
    assert all(s["n"] == 5 and s["ci_low"] <= s["value"] <= s["ci_high"] for s in overall)
    t = {x["extractor"]: x for x in res["training"]}
    assert len(t["learned"]["layer_weights"]) == 4 and abs(sum(t["learned"]["layer_weights"]) - 1) < 1e-6
    assert t["last"]["config"]["lr"] == 1e-4 and len(t["last"]["checkpoint_sha256"]) == 64
    samples = [json.loads(line) for line in (tmp_path / "a" / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 15
    for s in samples:
        assert s["correct"] == (s["scores"][0] > max(s["scores"][1:]))
    assert (tmp_path / "a" / "layer_weights.png").stat().st_size > 1000


def test_same_seed_same_numbers_and_checkpoint_reuse(tmp_path: Path) -> None:
    first = _run(tmp_path, "a", "--extract", "norm-avg", "--seeds", "3")
    second = _run(tmp_path, "b", "--extract", "norm-avg", "--seeds", "3")
    assert [t["reused"] for t in second["training"]] == [True], "a checkpoint trained earlier must be reused"
    assert _overall(first) == _overall(second)
    assert [s["scores"] for s in map(json.loads, (tmp_path / "a" / "samples.jsonl").read_text().splitlines())] == \
        [s["scores"] for s in map(json.loads, (tmp_path / "b" / "samples.jsonl").read_text().splitlines())]
    retrained = _run(tmp_path, "c", "--extract", "norm-avg", "--seeds", "3", "--retrain")
    assert retrained["training"][0]["reused"] is False
    assert retrained["training"][0]["checkpoint_sha256"] == first["training"][0]["checkpoint_sha256"], \
        "retraining with the same seed must give bit-identical weights"


def test_eval_batch_size_does_not_change_accuracy(tmp_path: Path) -> None:
    a = _run(tmp_path, "a", "--extract", "last", "--batch-size", "1")
    b = _run(tmp_path, "b", "--extract", "last", "--batch-size", "64")
    assert _overall(a) == _overall(b)


def test_seeds_summary_and_mean_pool_baseline(tmp_path: Path) -> None:
    res = _run(tmp_path, "a", "--extract", "norm-avg", "--seeds", "0,1,2")
    summ = [s for s in res["seed_summary"] if s["category"] == "all" and s["caption_type"] == "all"]
    assert len(summ) == 1 and summ[0]["n_seeds"] == 3
    vals = [v for (_, _), v in _overall(res).items()]
    assert summ[0]["range"] == pytest.approx(max(vals) - min(vals))
    base = _run(tmp_path, "b", "--extract", "norm-avg,last", "--aggregator", "mean-pool")
    assert base["training"] == [] and "train_pairs" not in base["provenance"], "mean-pool must not train"
    assert {s["aggregator"] for s in base["scores"]} == {"mean-pool"}
    assert len(base["comparisons"]) == 1 and base["comparisons"][0]["reference"] == "fake/norm-avg/mean-pool"


def test_shuffled_control_is_a_derangement(registry, pm) -> None:
    insts = load_task_sets(pm, registry, ["tiny"])[0].instances
    shuffled = derange_captions(insts, seed=0)
    assert all(a.caption != b.caption for a, b in zip(insts, shuffled))
    assert [a.positive for a in insts] == [b.positive for b in shuffled]
    assert sorted(a.caption for a in insts) == sorted(b.caption for b in shuffled)


def test_runner_api_without_cli(pm, registry) -> None:
    res = run(pm, encoders=[registry.encoder("fake")], tasks=load_task_sets(pm, registry, ["tiny"]),
              extractors=parse_extractors(pm, ["layer:-2", "all-layers"]), aggregator="mean-pool", bootstrap=0)
    rows = sorted({s.extractor for s in res.scores})
    assert rows == ["layer:-2", "layer:0", "layer:1", "layer:2", "layer:3"], "all-layers sweeps 0..N"
    lm2 = {s.value for s in res.scores if s.extractor == "layer:-2" and s.category == "all" and s.caption_type == "all"}
    l2 = {s.value for s in res.scores if s.extractor == "layer:2" and s.category == "all" and s.caption_type == "all"}
    assert lm2 == l2, "layer:-2 is layer 2 of a 3-layer encoder"


@pytest.mark.parametrize(("args", "needle"), [
    (["--extract", "lats"], "Unknown extractor 'lats'. Did you mean: last?"),
    (["--extract", "layer:9"], "layer 9 is out of range"),
    (["--aggregator", "contex"], "Did you mean: context?"),
    (["--encoders", "fak"], "Did you mean: fake?"),
], ids=["extractor", "layer-range", "aggregator", "encoder"])
def test_bad_names_exit_2_with_one_line(args: list[str], needle: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*BASE, *args]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1, err


def test_every_name_is_resolved_before_any_work(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A typo in the second encoder must cost nothing: no encoding, no training, nothing cached."""
    cache, ckpts = tmp_path / "cache", tmp_path / "ckpt"
    argv = [*BASE, "--encoders", "fake,fak", "--cache-dir", str(cache), "--ckpt-dir", str(ckpts)]
    assert main(argv) == 2
    assert "Unknown encoder 'fak'" in capsys.readouterr().err
    assert not cache.exists() and not ckpts.exists(), "work was done before the bad name was found"


def test_corrupted_checkpoint_is_retrained_not_reused(tmp_path: Path) -> None:
    first = _run(tmp_path, "a", "--extract", "last")
    ckpt = Path(first["training"][0]["checkpoint"])
    data = bytearray(ckpt.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte
    ckpt.write_bytes(bytes(data))
    second = _run(tmp_path, "b", "--extract", "last")
    assert second["training"][0]["reused"] is False, "an altered checkpoint must not be reused"
    assert second["training"][0]["checkpoint_sha256"] == first["training"][0]["checkpoint_sha256"]
    assert _overall(first) == _overall(second)
    ckpt.with_suffix(".json").write_text("{trunc")  # unreadable metadata: treated as missing
    assert _run(tmp_path, "c", "--extract", "last")["training"][0]["reused"] is False


def test_unwritable_checkpoint_dir_still_reports(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    res = _run(tmp_path, "a", "--extract", "last", "--ckpt-dir", str(blocker / "sub"))
    t = res["training"][0]
    assert t["checkpoint"] is None and t["steps"] > 0 and _overall(res)


def test_nan_loss_stops_the_run_before_scoring(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    from harness_plugins.aggregators import training

    real = training.info_nce
    monkeypatch.setitem(training._LOSSES, "infonce", lambda *a, **k: real(*a, **k) * float("nan"))
    out = tmp_path / "out"
    assert main([*BASE, "--extract", "last", "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert "the loss became nan at step 1" in err and not (out / "results.json").exists()


@pytest.mark.parametrize("args", [["--seeds", ","], ["--max-pairs", "-1"], ["--bootstrap", "-5"], ["--limit", "0"],
                                  ["--extract", ","], ["--lr", "-1"], ["--train-batch-size", "1"], ["--epochs", "0"],
                                  ["--temperature", "0"], ["--dim-out", "0"], ["--seeds", "a"]],
                         ids=lambda a: " ".join(a))
def test_degenerate_options_exit_2_in_one_line(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main([*BASE, *args])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and args[0] in err, err


def test_derangement_over_captions_does_not_stall_on_ted6k_shaped_data() -> None:
    """~17 statements per caption: a permutation of instances almost never avoids every collision."""
    import time

    from harness.types import Instance

    insts = [Instance(id=f"{c}-{s}", category="action", caption=f"caption {c}", positive=f"p{c}-{s}",
                      negatives=("n",), caption_type="video" if c % 3 else "image")
             for c in range(100) for s in range(17)]
    t0 = time.perf_counter()
    out = derange_captions(insts, seed=1)
    assert time.perf_counter() - t0 < 1.0
    assert all(a.caption != b.caption for a, b in zip(insts, out))
    moved = {(a.caption, b.caption) for a, b in zip(insts, out)}
    assert len(moved) == 100, "all statements of one caption must move to the same other caption"
    types = {a.caption: a.caption_type for a in insts}
    assert all(b.caption_type == types[b.caption] for b in out), "the caption type travels with its caption"
    assert derange_captions(insts, seed=1) == out and derange_captions(insts, seed=2) != out


def test_permutation_null_is_the_shuffled_accuracy_over_derangements(pm, registry) -> None:
    from harness.features.extractors import parse_extractors as parse

    res = run(pm, encoders=[registry.encoder("fake")], tasks=load_task_sets(pm, registry, ["tiny"]),
              extractors=parse(pm, ["last"]), aggregator="mean-pool", bootstrap=0, null_resamples=50)
    overall = [s for s in res.scores if s.category == "all" and s.caption_type == "all"][0]
    assert overall.chance == pytest.approx(sum(1 / (1 + len(i.negatives))
                                               for i in load_task_sets(pm, registry, ["tiny"])[0].instances) / 5)
    assert overall.null_low <= overall.null_mean <= overall.null_high
    cross = {(s.category, s.caption_type) for s in res.scores if "all" not in (s.category, s.caption_type)}
    assert len(cross) == 5 and ("spatial", "image") in cross, f"category x caption type slices: {cross}"


def test_null_with_one_draw_equals_scoring_that_derangement() -> None:
    import numpy as np

    from harness.types import Instance

    rng = np.random.default_rng(0)
    insts = [Instance(id=str(i), category="c", caption=f"cap{i}", positive=f"pos{i}", negatives=(f"n{i}a", f"n{i}b"))
             for i in range(12)]
    texts = {t for i in insts for t in (i.caption, *i.candidates)}
    vectors = {t: v / np.linalg.norm(v) for t, v in zip(sorted(texts), rng.normal(size=(len(texts), 8)))}
    fmt = lambda i: (i.caption, list(i.candidates))  # noqa: E731
    for seed in range(5):
        null = permutation_null(insts, vectors, fmt, n_resamples=1, seed=seed)[("all", "all")]
        direct = np.mean([ok for _, ok in score_instances(derange_captions(insts, seed=seed), vectors, fmt)])
        assert null.mean == pytest.approx(direct)


def test_shuffled_captions_control_per_seed(tmp_path: Path) -> None:
    res = _run(tmp_path, "a", "--extract", "last", "--aggregator", "mean-pool", "--control", "shuffled-captions",
               "--seeds", "0,1,2")
    overall = [s for s in res["scores"] if s["category"] == "all" and s["caption_type"] == "all"]
    assert [s["seed"] for s in overall] == [0, 1, 2] and all(s["control"] == "shuffled-captions" for s in overall)
    assert all(s["null_mean"] is not None for s in overall)


def test_one_caption_has_no_permutation_null_and_does_not_hang() -> None:
    import numpy as np

    from harness.types import Instance

    insts = [Instance(id=str(i), category="c", caption="the only caption", positive=f"p{i}", negatives=(f"n{i}",))
             for i in range(3)]
    vectors = {t: np.ones(4) / 2 for i in insts for t in (i.caption, *i.candidates)}
    fmt = lambda i: (i.caption, list(i.candidates))  # noqa: E731
    assert permutation_null(insts, vectors, fmt, n_resamples=10, seed=0) == {}
    with pytest.raises(Exception, match="at least 2 distinct captions"):
        derange_captions(insts, seed=0)


def test_pairs_raw_and_truncated_at_train_length_captions_prefixed(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Official handling: every caption gets the prefix at evaluation; training pairs are raw and cut at 1024
    (here 5 words), in a store of their own."""
    from harness.testing import FakeEncoder

    seen: list[tuple[str, int | None]] = []
    real = FakeEncoder.encode

    def spy(self, texts, *, up_to_layer=None, max_length=None):  # type: ignore[no-untyped-def]
        seen.extend((t, max_length) for t in texts)
        return real(self, texts, up_to_layer=up_to_layer, max_length=max_length)

    monkeypatch.setattr(FakeEncoder, "encode", spy)
    reg = tmp_path / "reg.yaml"
    reg.write_text("encoders:\n  fake-t:\n    family: fake\n    checkpoint: seed-0\n"
                   "    options: {max_length: 64, train_max_length: 5, template: '[cap] {text}'}\n")
    out = tmp_path / "out"
    assert main(["-p", "harness.testing", "--registry", str(reg), "run", "--encoders", "fake-t", "--tasks", "tiny",
                 "--preset", "baby", "--train-pairs", TINY_PAIRS, "--extract", "last", "--bootstrap", "0",
                 "--output", str(out)]) == 0
    pairs = [json.loads(line) for line in Path(resolve_path(TINY_PAIRS)).read_text().splitlines()]
    pair_texts = {t for p in pairs for t in (p["a"], p["b"])}
    assert {m for t, m in seen if t in pair_texts} == {5}, "pairs must be encoded raw, at train_max_length"
    captions = [t for t, m in seen if t.startswith("[cap] ")]
    assert len(captions) == 5 and all(m is None for t, m in seen if t.startswith("[cap] "))
    enc = json.loads((out / "results.json").read_text())["provenance"]["encoders"]["fake-t"]
    import re

    longer = sum(len(re.findall(r"\w+", t)) > 5 for t in pair_texts)
    assert enc["n_train_texts"] == len(pair_texts) and 0 < longer < len(pair_texts)
    assert enc["texts_truncated"] == 0 and enc["train_texts_truncated"] == longer
    assert enc["pairs_formatting"].startswith("raw")


@pytest.mark.parametrize(("records", "needle"), [
    ([{"a": "one caption", "b": "the same scene"}], "1 pair(s); contrastive training needs at least 2"),
    ([{"a": f"caption {i}", "b": f"other {i}", "group": "g"} for i in range(6)], "are in group 'g'"),
], ids=["one-pair", "one-group"])
def test_pairs_that_cannot_train_fail_before_encoding(tmp_path: Path, records: list, needle: str,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps(r) + "\n" for r in records))
    out = tmp_path / "out"
    argv = ["-p", "harness.testing", "run", "--encoders", "fake", "--tasks", "tiny", "--preset", "baby",
            "--train-pairs", str(pairs), "--extract", "last", "--output", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1, err
    assert not (out / "results.json").exists()


def test_no_training_step_is_not_scored(tmp_path: Path, capsys: pytest.CaptureFixture[str], no_model_load: None) -> None:
    """The official preset drops the last partial batch: 3 pairs at a global batch of 128 make no step,
    which is known, and refused, before any model loads."""
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({"a": f"c {i}", "b": f"d {i}"}) + "\n" for i in range(3)))
    out = tmp_path / "out"
    argv = ["-p", "harness.testing", "run", "--encoders", "fake", "--tasks", "tiny", "--preset", "official",
            "--train-pairs", str(pairs), "--extract", "last", "--output", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "preset 'official' cuts batches of 128 pairs" in err and "3 pair(s) make no batch" in err, err
    assert len(err.splitlines()) == 1, err
    import os

    saved = Path(os.environ["HARNESS_CACHE_DIR"]) / "aggregators"  # this test's private cache (conftest)
    assert not (out / "results.json").exists() and not list(saved.glob("*.pt")), "an untrained aggregator was saved"
