"""End to end on the fake encoder: results files, determinism, checkpoint reuse, baselines, controls."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("torch")

from harness.cli import main  # noqa: E402
from harness.runner import RunOptions, run, shuffle_captions  # noqa: E402

from conftest import TINY_PAIRS  # noqa: E402

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
    assert res["schema"] == 1 and prov["versions"]["torch"] and prov["tasks"]["tiny"]["tasks"]["tiny"]["sha256"]
    assert prov["train_pairs"]["n"] == 8 and len(prov["train_pairs"]["sha256"]) == 64
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
    from harness.runner import load_task_sets

    insts = load_task_sets(pm, registry, RunOptions(tasks=("tiny",)))[0][1]
    shuffled = shuffle_captions(insts, seed=0)
    assert all(a.caption != b.caption for a, b in zip(insts, shuffled))
    assert [a.positive for a in insts] == [b.positive for b in shuffled]
    assert sorted(a.caption for a in insts) == sorted(b.caption for b in shuffled)


def test_runner_api_without_cli(pm, registry) -> None:
    opts = RunOptions(encoders=("fake",), tasks=("tiny",), extract=("layer:-2", "all-layers"), aggregator="mean-pool",
                      bootstrap=0)
    res = run(pm, registry, opts)
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
