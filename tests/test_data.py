"""Loaders on good and broken files: JSONL, official GRAN-TED JSON, datasets folders, caption pairs."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from harness import ConfigError, DataError, Instance, TaskSpec
from harness.data import categories
from harness.data import loaders as data_module
from harness.data.categories import CATEGORIES, category_slug
from harness.cli.main import main
from harness.data.loaders import (
    load_granted_json,
    load_hf_instances,
    load_instances_file,
    load_jsonl_instances,
    load_pairs_file,
    select_categories,
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
    """Older code imported these from harness.data.loaders; they must be the same objects."""
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


# --- bad inputs: every one is a one-line DataError/ConfigError, never a traceback ---------------

def _official_with(path: tuple[str, ...], value: object) -> dict:
    """`_official()` with the value at ``path`` (keys, or ints for list items) replaced."""
    data = _official()
    node = data["cap-1"]
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return data


_Q = ("statements", "Action Recognition")


@pytest.mark.parametrize(("path", "value", "field"), [
    ((*_Q, "correct_statement", "statement"), 42, "cap-1.statements.Action Recognition.correct_statement.statement"),
    (("caption_type",), ["image"], "cap-1.caption_type"),
    ((*_Q, "incorrect_statements"), 5, "cap-1.statements.Action Recognition.incorrect_statements"),
    ((*_Q, "incorrect_statements", 0), "He sits.", "cap-1.statements.Action Recognition.incorrect_statements[0]"),
    ((*_Q, "incorrect_statements", 0, "statement"), None,
     "cap-1.statements.Action Recognition.incorrect_statements[0].statement"),
    ((*_Q, "correct_statement", "status"), True, "cap-1.statements.Action Recognition.correct_statement.status"),
    ((*_Q, "correct_statement"), "He runs.", "cap-1.statements.Action Recognition.correct_statement"),
    (_Q, [1], "cap-1.statements.Action Recognition"),
    (("statements",), [], "cap-1.statements"),
    (("caption",), {"text": "x"}, "cap-1.caption"),
], ids=["statement-int", "caption-type-list", "incorrect-int", "incorrect-item-str", "statement-null",
        "status-bool", "correct-str", "question-list", "statements-list", "caption-dict"])
def test_official_json_rejects_bad_types(tmp_path: Path, path: tuple, value: object, field: str) -> None:
    file = tmp_path / "TED-6k.json"
    file.write_text(json.dumps(_official_with(path, value)))
    with pytest.raises(DataError) as err:
        load_granted_json(file)
    assert err.value.field == field, f"wrong field path in: {err.value}"
    assert str(err.value).startswith(f"{file}: field {field!r} must be"), str(err.value)


def test_official_json_failed_question_is_not_validated(tmp_path: Path) -> None:
    """A question whose correct statement failed is skipped whatever its negatives hold."""
    data = _official_with(("statements", "Spatial Relationship", "incorrect_statements"), None)
    data["cap-1"]["statements"]["Temporal"] = {"correct_statement": None, "incorrect_statements": 7}
    file = tmp_path / "TED-6k.json"
    file.write_text(json.dumps(data))
    assert len(load_granted_json(file)) == 2


def test_official_json_with_a_nonobject_entry(tmp_path: Path) -> None:
    file = tmp_path / "TED-6k.json"
    file.write_text(json.dumps({**_official(), "cap7": [1, 2]}))
    with pytest.raises(DataError, match=r"field 'cap7' must be an object with 'caption' and 'statements', got \[1, 2\]"):
        load_instances_file(file)


@pytest.mark.parametrize("name", ["t.jsonl.gz", "t.jsonl"], ids=["gz-suffix", "gz-named-jsonl"])
def test_gzip_files_are_read_transparently(tmp_path: Path, name: str) -> None:
    text = "".join(json.dumps(r) + "\n" for r in [GOOD, {**GOOD, "id": "x2"}])
    (tmp_path / name).write_bytes(gzip.compress(text.encode()))
    assert [i.id for i in load_instances_file(tmp_path / name)] == ["x1", "x2"]
    official = tmp_path / "TED-6k.json.gz"
    official.write_bytes(gzip.compress(json.dumps(_official()).encode()))
    assert len(load_instances_file(official)) == 2, "the .json under .gz picks the official format"
    pairs = tmp_path / f"p-{name}"
    pairs.write_bytes(gzip.compress(b'{"a": "x", "b": "y"}\n'))
    assert [(p.a, p.b) for p in load_pairs_file(pairs)] == [("x", "y")]


def test_truncated_gzip(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl.gz"
    path.write_bytes(gzip.compress((json.dumps(GOOD) + "\n").encode())[:20])
    with pytest.raises(DataError, match="is gzip-compressed but does not decompress"):
        load_instances_file(path)


def test_latin1_names_the_line_and_byte(tmp_path: Path) -> None:
    rows = [json.dumps(GOOD), json.dumps({**GOOD, "id": "x2"}),
            json.dumps({**GOOD, "id": "x3", "caption": "Un café."}, ensure_ascii=False)]
    path = tmp_path / "l.jsonl"
    path.write_bytes("\n".join(rows).encode("latin-1"))
    for load in (load_instances_file, load_pairs_file):
        with pytest.raises(DataError) as err:
            load(path)
        assert err.value.line == 3 and "not UTF-8 (byte 0xe9 at line 3)" in str(err.value), str(err.value)


@pytest.mark.parametrize(("text", "field"), [
    (json.dumps({**GOOD, "caption": "A cup\ud800."}), "caption"),
    (json.dumps({**GOOD, "negatives": ["ok", "bad \udfff"]}), "negatives[1]"),
], ids=["caption", "negative"])
def test_lone_surrogate_rejected_at_load(tmp_path: Path, text: str, field: str) -> None:
    path = tmp_path / "s.jsonl"
    path.write_text(json.dumps(GOOD) + "\n" + text + "\n")  # json.dumps writes the surrogate as \\udXXX
    with pytest.raises(DataError) as err:
        load_instances_file(path)
    assert (err.value.line, err.value.field) == (2, field) and "lone surrogate" in str(err.value)


def test_lone_surrogate_in_official_key_and_pairs(tmp_path: Path) -> None:
    official = tmp_path / "o.json"
    official.write_text(json.dumps({**_official(), "cap\ud800": _official()["cap-1"]}))
    with pytest.raises(DataError, match="lone surrogate"):
        load_instances_file(official)
    pairs = tmp_path / "p.json"
    pairs.write_text(json.dumps([{"a": "x", "b": "y"}, {"a": "x", "b": "\ud800"}]))
    with pytest.raises(DataError, match=r"field '\[1\].b' holds a lone surrogate"):
        load_pairs_file(pairs)


@pytest.mark.parametrize("name", ["x.jsonl", "x.json", "pairs.jsonl"])
def test_directory_named_like_a_data_file(tmp_path: Path, name: str) -> None:
    (tmp_path / name).mkdir()
    load = load_pairs_file if name.startswith("pairs") else load_instances_file
    with pytest.raises(DataError, match="is a directory"):
        load(tmp_path / name)


def test_directory_without_a_dataset(tmp_path: Path) -> None:
    pytest.importorskip("datasets")
    with pytest.raises(DataError, match="is a directory with no dataset"):
        load_instances_file(tmp_path)


def test_unreadable_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path / "locked.jsonl", [GOOD])
    real = Path.read_bytes

    def deny(self: Path) -> bytes:
        if self == path:
            raise PermissionError(13, "Permission denied", str(self))
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", deny)  # chmod 000 does not stop root, so fake it
    for load in (load_instances_file, load_pairs_file):
        with pytest.raises(DataError, match=r"locked.jsonl: cannot be read \(Permission denied\)"):
            load(path)


@pytest.mark.parametrize(("text", "match"), [
    ('[{"a": "x", "b": "y"}, 3]', r"p.json: field '\[1\]' expected an object, got 3"),
    ('[{"a": "x", "b": "y"}, {"a": "x"}]', r"p.json: field '\[1\].b' is missing"),
    ('[{"a": "x", "b": "y"}, {"a": "x", "b": "y", "group": [1]}]', r"field '\[1\].group' must be"),
    ('[{"a": "x", "b": "y"},', r"p.json:1: not valid JSON \(Expecting value at column 23\)"),
    ("[]", "holds no caption pairs"),
], ids=["non-object", "missing-b", "bad-group", "invalid-json", "empty"])
def test_pairs_json_list_broken(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "p.json"
    path.write_text(text)
    with pytest.raises(DataError, match=match):
        load_pairs_file(path)


def test_pairs_field_types(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"p.jsonl:1: field 'caption_type' must be a non-empty string, got \['x'\]"):
        load_pairs_file(_write(tmp_path / "p.jsonl", [{"a": "x", "b": "y", "caption_type": ["x"]}]))


@pytest.mark.parametrize(("row", "field"), [
    ({**GOOD, "id": {"x": 1}}, "id"),
    ({**GOOD, "id": True}, "id"),
    ({**GOOD, "caption_type": ""}, "caption_type"),
    ({**GOOD, "category": None}, "category"),
], ids=["id-dict", "id-bool", "empty-caption-type", "null-category"])
def test_jsonl_field_types(tmp_path: Path, row: dict, field: str) -> None:
    with pytest.raises(DataError) as err:
        load_jsonl_instances(_write(tmp_path / "t.jsonl", [row]))
    assert err.value.field == field


def test_jsonl_null_optional_fields_mean_absent(tmp_path: Path) -> None:
    (inst,) = load_jsonl_instances(_write(tmp_path / "t.jsonl", [{**GOOD, "id": None, "caption_type": None}]))
    assert (inst.id, inst.caption_type) == ("t-1", "image")


def test_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    bom = b"\xef\xbb\xbf"
    (tmp_path / "t.jsonl").write_bytes(bom + (json.dumps(GOOD) + "\n").encode())
    (tmp_path / "o.json").write_bytes(bom + json.dumps(_official()).encode())
    (tmp_path / "p.json").write_bytes(bom + b'[{"a": "x", "b": "y"}]')
    assert len(load_instances_file(tmp_path / "t.jsonl")) == 1
    assert len(load_instances_file(tmp_path / "o.json")) == 2
    assert len(load_pairs_file(tmp_path / "p.json")) == 1


@pytest.mark.parametrize(("text", "match"), [
    ('{"id": "x\n', r"t.jsonl:1: not valid JSON \(Unterminated string starting at column 8\)"),
    ('{"id": ' + "9" * 5000 + "}\n", r"t.jsonl:1: not valid JSON \(Exceeds the limit"),
    ("[" * 100_000 + "\n", r"t.jsonl:1: not valid JSON \(nested too deeply\)"),
    ("\n\n", r"t.jsonl: holds no instances"),
], ids=["unterminated", "huge-int", "deep", "blank"])
def test_jsonl_unparseable(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text(text)
    with pytest.raises(DataError, match=match) as err:
        load_instances_file(path)
    assert " at at " not in str(err.value)


def test_official_json_extra_data_hints_jsonl(tmp_path: Path) -> None:
    path = tmp_path / "o.json"
    path.write_text(json.dumps(_official()) + "\n" + json.dumps(_official()))
    with pytest.raises(DataError, match=r"o.json:2: not valid JSON \(Extra data at column 1\).*\.jsonl"):
        load_instances_file(path)


def test_hub_dataset_offline_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("datasets")
    from huggingface_hub import constants

    if not constants.HF_HUB_OFFLINE:
        pytest.skip("needs HF_HUB_OFFLINE=1 when datasets is first imported")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DataError, match=r"^no-org/no-such-set: needs the Hugging Face hub, but HF_HUB_OFFLINE is set"):
        load_hf_instances("no-org/no-such-set")


def _insts(*cats: str) -> list[Instance]:
    return [Instance(id=str(i), category=c, caption="c", positive="p", negatives=("n",)) for i, c in enumerate(cats)]


def test_select_categories() -> None:
    insts = _insts("ocr", "basic_event", "ocr")
    task = TaskSpec(name="t", source="d.jsonl", categories=("Basic Event", "ocr"))
    assert [i.id for i in select_categories(task, insts)] == ["0", "1", "2"], "names compare as slugs"
    assert select_categories(TaskSpec(name="t", source="d.jsonl"), insts) == insts
    with pytest.raises(ConfigError) as err:
        select_categories(TaskSpec(name="my-task", source="d.jsonl", categories=("ocr", "spatail")), insts)
    assert str(err.value) == ("Task 'my-task' selects category 'spatail', but d.jsonl has no instance of it. "
                              "Categories it has: basic_event, ocr. Fix 'category' in the task file")


def test_cli_validate_reads_dollar_paths_literally(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HOME_DIR", raising=False)
    _write(tmp_path / "a$HOME_DIR.jsonl", [GOOD])
    assert main(["validate", "a$HOME_DIR.jsonl"]) == 0, capsys.readouterr().err
    _write(tmp_path / "b.jsonl", [GOOD])
    monkeypatch.setenv("MY_DATA", str(tmp_path))
    assert main(["validate", "$MY_DATA/b.jsonl"]) == 0, "a path that does not exist as typed expands"
    assert main(["validate", "$HOME_DIR/b.jsonl"]) == 2
    assert "needs the environment variable HOME_DIR: export HOME_DIR=" in capsys.readouterr().err


def test_cli_validate_detects_pairs_in_any_form(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "p.json").write_text('[{"processed_caption1": "p", "processed_caption2": "q"}]')
    (tmp_path / "p.jsonl.gz").write_bytes(gzip.compress(b'{"a": "x", "b": "y", "group": "g"}\n'))
    for name in ("p.json", "p.jsonl.gz"):
        assert main(["validate", str(tmp_path / name)]) == 0
        assert "1 caption pairs" in capsys.readouterr().out


def test_cli_run_on_an_uncached_hub_dataset_offline(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("datasets")
    from huggingface_hub import constants

    if not constants.HF_HUB_OFFLINE:
        pytest.skip("needs HF_HUB_OFFLINE=1 when datasets is first imported")
    rc = main(["-p", "harness.testing", "run", "--encoders", "fake", "--tasks", "hf:no-org/no-such-set",
               "--aggregator", "mean-pool", "--bootstrap", "0"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1, err
    assert err.startswith("error: no-org/no-such-set: needs the Hugging Face hub") and "local copy" in err
