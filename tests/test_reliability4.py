"""Issue 21, "Reliability, round two", part 3, through the real CLI (`harness.cli.main.main`).

* item 11: a partial TED-6K file (the official JSON lacking some categories) runs the categories it has
  under ``--tasks ted6k`` and says in one line which are absent; a category task named alone, or a group
  whose data has none of its categories, stops in one line naming the category and the file, before any
  model load.

(Item 2, every input file through one reader, is tested with the build-data tests in test_build_data.py.)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cli_checks import FAKE, QUICK, refused

from harness.cli.main import main

FAKE = ["-p", "harness.testing"]
QUICK = ["--encoders", "fake", "--aggregator", "mean-pool", "--bootstrap", "0", "--null-resamples", "0",
         "--extract", "last", "--no-cache"]


def _question(pos: str, *negs: str) -> dict[str, Any]:
    ok = "success"
    return {"question": "q", "correct_statement": {"status": ok, "statement": pos},
            "incorrect_statements": [{"status": ok, "statement": n} for n in negs]}


def _partial(path: Path) -> Path:
    """An official-format TED-6K JSON with two of the nine categories (action, spatial)."""
    path.write_text(json.dumps({
        "cap-1": {"caption": "A man runs through a park.", "caption_type": "video", "statements": {
            "Action Recognition": _question("He runs.", "He sits.", "He swims."),
            "Spatial Relationship": _question("Trees are around him.", "Water is around him.")}},
        "cap-2": {"caption": "A cat sleeps on a sofa.", "caption_type": "image", "statements": {
            "Action Recognition": _question("The cat sleeps.", "The cat jumps.")}},
    }), encoding="utf-8")
    return path




def test_partial_ted6k_runs_the_categories_it_has(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    data = _partial(tmp_path / "partial.json")
    monkeypatch.setenv("TED6K_PATH", str(data))
    out = tmp_path / "run"
    assert main([*FAKE, "run", *QUICK, "--tasks", "ted6k", "--output", str(out)]) == 0
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and "error" not in captured.err, captured.err
    notes = [line for line in captured.out.splitlines() if "has no instance of" in line]
    assert len(notes) == 1, captured.out
    assert notes[0] == (f"--tasks 'ted6k': $TED6K_PATH ({data}) has no instance of adjective, adverb, basic_event, "
                        "coreference, ocr, quantity, temporal; running the 2 categories it has (action, spatial)")
    result = json.loads((out / "results.json").read_text())
    tasks = result["provenance"]["tasks"]["ted6k"]
    assert sorted(tasks["tasks"]) == ["ted6k-action", "ted6k-spatial"] and tasks["n"] == 3, tasks
    cats = {s["category"] for s in result["scores"] if s["task"] == "ted6k"}
    assert {"action", "spatial"} <= cats and not cats & {"ocr", "temporal", "adjective"}, cats


def test_a_category_task_named_alone_still_stops(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str], no_model_load: None) -> None:
    data = _partial(tmp_path / "partial.json")
    monkeypatch.setenv("TED6K_PATH", str(data))
    err = refused(capsys, main([*FAKE, "run", *QUICK, "--tasks", "ted6k-ocr"]),
                   "Task 'ted6k-ocr' selects category 'ocr'", f"$TED6K_PATH ({data}) has no instance of it",
                   "Categories it has: action, spatial", "--tasks ted6k")
    assert "Fix 'category' in the task file" not in err, "a shipped task file is not the user's to fix"


def test_a_group_whose_data_has_none_of_its_categories_stops(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str],
                                                             no_model_load: None) -> None:
    data = tmp_path / "other.json"
    data.write_text(json.dumps({"cap-1": {"caption": "A red sign.", "statements": {
        "Made Up Question": _question("It is red.", "It is blue.")}}}), encoding="utf-8")
    monkeypatch.setenv("TED6K_PATH", str(data))
    refused(capsys, main([*FAKE, "run", *QUICK, "--tasks", "ted6k"]), "--tasks 'ted6k'",
             f"$TED6K_PATH ({data}) has no instance of action, adjective", "none of its tasks has data")


def test_validate_an_empty_path_is_refused_not_a_scan_of_the_current_folder(capsys: pytest.CaptureFixture[str]) -> None:
    """Found by tests/test_properties.py: ``harness validate ''`` read '.' as a dataset folder (36 s)."""
    refused(capsys, main(["validate", ""]), "the path '' is empty")


def test_check_with_an_empty_target_and_list_with_a_missing_include_path(capsys: pytest.CaptureFixture[str]) -> None:
    refused(capsys, main(["check", ""]), "harness check needs a plugin")
    refused(capsys, main(["list", "baselines", "--include-path", "/nonexistent-folder"]),
            "'/nonexistent-folder' is not a folder")
