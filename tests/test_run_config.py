"""``--config run.yaml`` for run, train and score; the resolved config.yaml reruns a run (issue 22, item 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from cli_checks import FAKE, refused

from harness.cli.main import main


def _write(path: Path, text: str) -> str:
    path.write_text(text, encoding="utf-8")
    return str(path)


def _scores(out: Path) -> list[tuple[str, str, int, str, float]]:
    data = json.loads((out / "results.json").read_text())
    return sorted((s["encoder"], s["extractor"], s["seed"], s["category"], s["value"]) for s in data["scores"])


def test_run_file_runs_flags_override_and_config_yaml_reruns(tmp_path: Path) -> None:
    cfg = _write(tmp_path / "run.yaml", f"""
encoders: [fake, "fake[max_length=2,name=fake-2]"]
tasks: tiny
extract: [last, norm-avg]
aggregator: mean-pool
seeds: [0, 1]
bootstrap: 0
null_resamples: 0          # _ and - both name the option
cache-dir: {tmp_path / 'cache'}
no-cache: false
output: {tmp_path / 'ignored'}
""")
    out = tmp_path / "a"
    assert main([*FAKE, "run", "--config", cfg, "--seeds", "3", "--output", str(out)]) == 0
    data = json.loads((out / "results.json").read_text())
    opts = data["provenance"]["options"]
    assert opts["seeds"] == [3], "a flag overrides the run file"
    assert opts["extract"] == ["last", "norm-avg"] and opts["config"] == cfg
    assert set(data["provenance"]["encoders"]) == {"fake", "fake-2"}
    assert not (tmp_path / "ignored").exists()
    assert {s["seed"] for s in data["scores"]} == {3}

    resolved = yaml.safe_load((out / "config.yaml").read_text())
    assert resolved["plugins"] == ["harness.testing"]
    assert resolved["encoders"] == ["fake", "fake[max_length=2,name=fake-2]"]
    assert resolved["seeds"] == [3] and resolved["aggregator"] == "mean-pool" and resolved["bootstrap"] == 0
    assert "config" not in resolved and "command" not in resolved

    # the written file alone (no -p: it names its plugins) reruns the same thing
    again = tmp_path / "b"
    assert main(["run", "--config", str(out / "config.yaml"), "--output", str(again)]) == 0
    assert _scores(again) == _scores(out)
    assert yaml.safe_load((again / "config.yaml").read_text()) == {**resolved, "output": str(again)}


@pytest.mark.parametrize("text, needles", [
    ("encoders: fake\nlrr: 0.1\n", ["unknown option 'lrr'", "did you mean 'lr'"]),
    ("encoders: fake\nfrobnicate: 1\n", ["unknown option 'frobnicate' for harness run"]),
    ("lr: abc\n", [": lr:", "'abc'"]),
    ("lr: .nan\n", [": lr:", "not a finite number"]),
    ("seeds: [0, x]\n", [": seeds:"]),
    ("preset: fancy\n", [": preset: 'fancy' is not one of default, official"]),
    ("retrain: maybe\n", [": retrain: 'maybe' is not true or false"]),
    ("encoders: 'fake[dtyp=float16]'\n", ["Unknown key 'dtyp'"]),
    ("encoders: 'fake[]'\n", ["empty brackets"]),
    ("epochs: {a: 1}\n", [": epochs: expected a value or a list"]),
    ("- a\n- b\n", ["a run file is a mapping"]),
    ("lr: [1\n", ["run.yaml:", "not valid YAML"]),
])
def test_bad_run_files_are_one_line(text: str, needles: list[str], tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str], no_model_load: None) -> None:
    cfg = _write(tmp_path / "run.yaml", "tasks: tiny\naggregator: mean-pool\n" * ("tasks" not in text
                                                                                   and not text.startswith("-"))
                 + text)
    rc = main([*FAKE, "run", "--config", cfg, "--cache-dir", str(tmp_path / "c")])
    refused(capsys, rc, *needles)


def test_missing_or_empty_run_file(tmp_path: Path, capsys: pytest.CaptureFixture[str], no_model_load: None) -> None:
    refused(capsys, main([*FAKE, "run", "--config", str(tmp_path / "nope.yaml")]), "nope.yaml", "no such file")
    refused(capsys, main([*FAKE, "run", "--config", ""]), "--config ''")
    refused(capsys, main([*FAKE, "run", "--config", str(tmp_path)]), "is not a file")


def test_train_takes_a_run_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = _write(tmp_path / "train.yaml", f"""
encoders: fake
extract: last
preset: baby
train-pairs: demo
max-pairs: 8
epochs: 1
ckpt-dir: {tmp_path / 'ck'}
cache-dir: {tmp_path / 'cache'}
""")
    assert main([*FAKE, "train", "--config", cfg]) == 0
    assert "trained" in capsys.readouterr().out
    assert list((tmp_path / "ck").rglob("*.pt")), "the checkpoint lands where the run file says"
    bad = _write(tmp_path / "bad.yaml", "encoders: fake\noutput: x\n")  # train has no --output
    refused(capsys, main([*FAKE, "train", "--config", bad]), "unknown option 'output' for harness train")


def test_score_takes_a_run_file_with_its_results_and_writes_its_own(tmp_path: Path, results_dir: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "gen"
    cfg = _write(tmp_path / "score.yaml", f"""
results: [{results_dir}]
scorer: toy-t2i:smoke
option: [steps=2, n1=1]
out: {tmp_path / 'elsewhere'}
""")
    assert main([*FAKE, "score", "--config", cfg, "--out", str(out)]) == 0
    assert (out / "downstream.csv").is_file() and not (tmp_path / "elsewhere").exists()
    resolved = yaml.safe_load((out / "config.yaml").read_text())
    assert resolved["results"] == [str(results_dir)] and resolved["option"] == ["steps=2", "n1=1"]
    assert resolved["out"] == str(out) and resolved["scorer"] == "toy-t2i:smoke"
    capsys.readouterr()
    bad = _write(tmp_path / "bad.yaml", "scorer: toy-t2i:smoke\nseeds: [1]\n")
    refused(capsys, main([*FAKE, "score", str(results_dir), "--config", bad, "--out", str(out)]),
            "unknown option 'seeds' for harness score")


def test_secrets_are_never_written(tmp_path: Path) -> None:
    out = tmp_path / "a"
    assert main([*FAKE, "run", "--encoders", "fake", "--tasks", "tiny", "--aggregator", "mean-pool", "--extract",
                 "last", "--bootstrap", "0", "--null-resamples", "0", "--llm-api-key", "sk-SECRET",
                 "--cache-dir", str(tmp_path / "c"), "--output", str(out)]) == 0
    for name in ("config.yaml", "results.json"):
        assert "sk-SECRET" not in (out / name).read_text()
    assert yaml.safe_load((out / "config.yaml").read_text())["llm-api-key"] is None
