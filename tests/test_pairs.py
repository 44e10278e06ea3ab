"""Training pairs: required outside the shipped demo, named `demo` on purpose, built from a datasets dataset."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

pytest.importorskip("torch")

from harness.cli.main import main  # noqa: E402
from harness.registry import resolve_path  # noqa: E402

FAKE = ["-p", "harness.testing", "run", "--encoders", "fake", "--preset", "baby", "--bootstrap", "0"]


@pytest.fixture
def user_task(tmp_path: Path) -> Path:
    dst = tmp_path / "my_ted.jsonl"
    shutil.copy(resolve_path("pkg:harness/testing_data/tiny.jsonl"), dst)
    return dst


def test_trained_aggregator_outside_the_demo_needs_pairs(user_task: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*FAKE, "--tasks", str(user_task)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--train-pairs" in err and "harness pairs" in err and "demo" in err, err
    assert main([*FAKE, "--tasks", str(user_task), "--aggregator", "mean-pool"]) == 0, "mean-pool needs no pairs"


def test_demo_pairs_by_name_are_recorded(user_task: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert main([*FAKE, "--tasks", str(user_task), "--train-pairs", "demo", "--max-pairs", "16", "--extract", "last",
                 "--output", str(out)]) == 0
    t = json.loads((out / "results.json").read_text())["training"][0]
    assert t["pairs"]["source"] == "demo" and t["pairs"]["n"] == 16 and t["pairs"]["n_available"] > 3000


def _save_dataset(folder: Path, rows: dict[str, list]) -> None:
    datasets = pytest.importorskip("datasets")
    datasets.Dataset.from_dict(rows).save_to_disk(str(folder))


def test_pairs_from_a_list_column_and_from_grouped_rows(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    listed = tmp_path / "listed"
    _save_dataset(listed, {"video": ["v1", "v2", "v3"],
                           "captions": [["a red cup", "a cup, red", "the red cup"], ["one dog"], ["x", "y"]]})
    out = tmp_path / "p1.jsonl"
    assert main(["pairs", str(listed), "--caption-column", "captions", "--id-column", "video",
                 "--caption-type", "video", "--out", str(out)]) == 0
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(recs) == 3 + 0 + 1, "3 pairs from v1, none from v2, 1 from v3"
    assert {r["group"] for r in recs} == {"v1", "v3"} and {r["caption_type"] for r in recs} == {"video"}
    assert "4 caption pairs from 2 of 3 items" in capsys.readouterr().out

    rows = tmp_path / "rows"
    _save_dataset(rows, {"image_id": [7, 7, 8, 8, 8], "caption": ["a", "b", "c", "d", "c"]})
    out2 = tmp_path / "p2.jsonl"
    assert main(["pairs", str(rows), "--id-column", "image_id", "--out", str(out2), "--max-per-item", "1"]) == 0
    recs = [json.loads(line) for line in out2.read_text().splitlines()]
    assert [r["group"] for r in recs] == ["7", "8"], "one pair per item; the duplicate caption 'c' is not a pair"
    assert main(["validate", "--pairs", str(out2)]) == 0


def test_pairs_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    single = tmp_path / "single"
    _save_dataset(single, {"caption": ["only", "one each"]})
    assert main(["pairs", str(single), "--out", str(tmp_path / "x.jsonl")]) == 2
    assert "gives no pair" in capsys.readouterr().err
    assert main(["pairs", str(single), "--caption-column", "text", "--out", str(tmp_path / "x.jsonl")]) == 2
    err = capsys.readouterr().err.strip()
    assert "is missing; columns are caption" in err and len(err.splitlines()) == 1


def test_a_task_file_declares_itself_demo(user_task: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Whether the demo pairs may stand in is the task's own declaration (`demo: true`), not a list in core."""
    yaml = tmp_path / "mine.yaml"
    yaml.write_text(f"demo: true\ndata:\n  path: {user_task}\n  format: jsonl\n")
    assert main([*FAKE, "--tasks", str(yaml), "--extract", "last", "--max-pairs", "16"]) == 0
    yaml.write_text(f"demo: yes please\ndata:\n  path: {user_task}\n")
    assert main([*FAKE, "--tasks", str(yaml)]) == 2
    assert "field 'demo' must be true or false" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["pairs", "{tmp}/missing.jsonl", "--out", "{tmp}/p.jsonl"],
                                  ["build-data", "{tmp}/missing.jsonl", "--types", "action", "--out", "{tmp}/o"]],
                         ids=["pairs", "build-data"])
def test_a_missing_local_file_is_not_looked_up_on_the_hub(tmp_path: Path, argv: list[str],
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert main([a.format(tmp=tmp_path) for a in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert "missing.jsonl: does not exist" in err and "Hub" not in err and len(err.splitlines()) == 1, err


def test_build_data_types_must_name_something(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["build-data", str(tmp_path / "c.jsonl"), "--types", ",", "--out", str(tmp_path / "o")])
    assert exc.value.code == 2 and "--types: ',' names nothing" in capsys.readouterr().err
