"""Loaders on good and broken files: JSONL, official GRAN-TED JSON, datasets folders, caption pairs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness import DataError, categories
from harness import data as data_module
from harness.categories import CATEGORIES, category_slug
from harness.cli import main
from harness.data import (
    load_granted_json,
    load_instances_file,
    load_jsonl_instances,
    load_pairs_file,
)

GOOD = {"id": "x1", "category": "spatial", "caption": "A cup left of a bowl.", "positive": "Cup left of bowl.",
        "negatives": ["Cup right of bowl."]}


def _write(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_jsonl_good_any_negatives_unknown_category(tmp_path: Path) -> None:
    rows = [GOOD, {**GOOD, "id": "x2", "category": "Colour Binding", "negatives": ["a", "b", "c", "d", "e"],
                   "caption_type": "video"}]
    insts = load_jsonl_instances(_write(tmp_path / "t.jsonl", rows))
    assert [i.category for i in insts] == ["spatial", "colour_binding"]
    assert len(insts[1].candidates) == 6 and insts[1].caption_type == "video"
    assert insts[0].source.endswith("t.jsonl:1")


@pytest.mark.parametrize(("row", "field", "line"), [
    ({**GOOD, "negatives": []}, "negatives", 2),
    ({k: v for k, v in GOOD.items() if k != "positive"}, "positive", 2),
    ({**GOOD, "negatives": ["ok", 3]}, "negatives[1]", 2),
    ({**GOOD, "caption": ""}, "caption", 2),
    ('{"id": "broken", ', None, 2),
], ids=["no-negatives", "missing-positive", "non-string-negative", "empty-caption", "bad-json"])
def test_jsonl_broken_names_line_and_field(tmp_path: Path, row, field, line) -> None:
    path = _write(tmp_path / "bad.jsonl", [GOOD, row])
    with pytest.raises(DataError) as err:
        load_jsonl_instances(path)
    assert err.value.line == line and err.value.field == field
    assert f"bad.jsonl:{line}" in str(err.value)


def test_duplicate_ids_rejected(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="duplicate id 'x1' \\(first on line 1\\)"):
        load_jsonl_instances(_write(tmp_path / "d.jsonl", [GOOD, GOOD]))


def _official() -> dict:
    ok = {"status": "success"}
    return {
        "cap-1": {"caption": "A long caption.", "caption_type": "video", "statements": {
            "Action Recognition": {"question": "q", "correct_statement": {**ok, "statement": "He runs."},
                                   "incorrect_statements": [{**ok, "statement": "He sits."},
                                                            {"status": "failed", "statement": "junk"}]},
            "Spatial Relationship": {"question": "q", "correct_statement": {"status": "failed", "statement": "x"},
                                     "incorrect_statements": [{**ok, "statement": "y"}]},
            "Basic Event": {"question": "q", "correct_statement": {**ok, "statement": "A race."},
                            "incorrect_statements": [{**ok, "statement": "A swim."}, {**ok, "statement": "A nap."}]},
        }},
    }


def test_official_json_counts_only_success(tmp_path: Path) -> None:
    path = tmp_path / "TED-6k.json"
    path.write_text(json.dumps(_official()))
    insts = load_instances_file(path)  # auto-detects the official format
    assert [(i.category, i.negatives) for i in insts] == [("action", ("He sits.",)), ("basic_event", ("A swim.", "A nap."))]
    assert insts[0].id == "cap-1/Action Recognition" and insts[0].caption_type == "video"


def test_official_json_broken(tmp_path: Path) -> None:
    data = _official()
    data["cap-2"] = {"caption_type": "image", "statements": {}}
    path = tmp_path / "TED-6k.json"
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match="cap-2.caption"):
        load_granted_json(path)


@pytest.mark.parametrize(("name", "slug"), [("Action Recognition", "action"), ("Spatial Relationship", "spatial"),
                                            ("Basic Event", "basic_event"), ("OCR", "ocr"), ("Weather", "weather")])
def test_category_slug(name: str, slug: str) -> None:
    assert category_slug(name) == slug


def test_official_names_map_onto_the_categories() -> None:
    assert set(categories.OFFICIAL_TYPE_NAMES.values()) == set(CATEGORIES)
    assert all(category_slug(c) == c for c in CATEGORIES), "a slug must map to itself"


def test_data_reexports_the_single_category_list() -> None:
    """Older code imported these from harness.data; they must be the same objects."""
    assert (data_module.CATEGORIES, data_module.OFFICIAL_TYPE_NAMES, data_module.category_slug) == (
        categories.CATEGORIES, categories.OFFICIAL_TYPE_NAMES, categories.category_slug)


def test_datasets_folder(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    ds = datasets.Dataset.from_list([GOOD, {**GOOD, "id": "x2", "category": "ocr"}])
    ds.save_to_disk(str(tmp_path / "ds"))
    insts = load_instances_file(tmp_path / "ds")
    assert [i.category for i in insts] == ["spatial", "ocr"]


def test_pairs_both_formats(tmp_path: Path) -> None:
    ours = load_pairs_file(_write(tmp_path / "p.jsonl", [{"a": "x", "b": "y", "group": 7}, {"a": "u", "b": "v"}]))
    assert [(p.a, p.group) for p in ours] == [("x", "7"), ("u", None)]
    official = tmp_path / "o.json"
    official.write_text(json.dumps([{"processed_caption1": "p", "processed_caption2": "q"}]))
    assert [(p.a, p.b) for p in load_pairs_file(official)] == [("p", "q")]
    with pytest.raises(DataError, match=r"p2.jsonl:2: field 'b'"):
        load_pairs_file(_write(tmp_path / "p2.jsonl", [{"a": "x", "b": "y"}, {"a": "x"}]))


def test_cli_validate_counts_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = _write(tmp_path / "g.jsonl", [GOOD, {**GOOD, "id": "x2", "category": "ocr"}])
    assert main(["validate", str(good)]) == 0
    out = capsys.readouterr().out
    assert "2 instances" in out and "ocr" in out
    bad = _write(tmp_path / "b.jsonl", [GOOD, {**GOOD, "id": "x3", "negatives": "nope"}])
    assert main(["validate", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "b.jsonl:2" in err and "'negatives'" in err
