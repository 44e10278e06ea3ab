"""registry.yaml / tasks/*.yaml parsing and name resolution."""

from __future__ import annotations

import json
from pathlib import Path

import harness_tasks
import pytest

from harness import ConfigError
from harness.data.categories import CATEGORIES
from harness.registry import Registry, load_registry, resolve_path

SHIPPED = Path(harness_tasks.__file__).resolve().parent


@pytest.fixture
def shipped() -> Registry:
    """The shipped tasks alone, loaded without the plugin manager."""
    return load_registry([], [SHIPPED], [])


def _task(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path


def test_shipped_tasks_and_groups(registry) -> None:
    groups = registry.groups
    assert len(groups["ted6k"]) == 9 and len(groups["ted6k-sample"]) == 9
    cats = {registry.tasks[t].categories for t in groups["ted6k-sample"]}
    assert cats == {(c,) for c in CATEGORIES}
    assert registry.tasks["ted6k-sample-basic-event"].source.endswith("ted6k_sample.jsonl")


def test_unknown_encoder_did_you_mean(registry) -> None:
    with pytest.raises(ConfigError, match=r"Unknown encoder 'minlm'\. Did you mean: minilm\?"):
        registry.encoder("minlm")


def test_adhoc_encoder_family_path(registry, tmp_path: Path) -> None:
    spec = registry.encoder(f"fake:{tmp_path}")
    assert (spec.family, spec.checkpoint) == ("fake", str(tmp_path))
    with pytest.raises(ConfigError, match="Unknown encoder family 'fak'. Did you mean: fake"):
        registry.encoder("fak:/x")


def test_task_resolution_file_group_and_unknown(registry, tmp_path: Path) -> None:
    f = tmp_path / "mine.jsonl"
    f.write_text("")
    assert [t.name for t in registry.resolve_tasks([str(f)])] == ["mine"]
    assert len(registry.resolve_tasks(["ted6k-sample", "ted6k-sample-ocr"])) == 9, "duplicates must collapse"
    with pytest.raises(ConfigError, match="Did you mean: ted6k-sample"):
        registry.resolve_tasks(["ted6k-sampel"])


def test_env_var_source_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TED6K_PATH", raising=False)
    with pytest.raises(ConfigError, match="TED6K_PATH"):
        resolve_path("$TED6K_PATH")


def test_include_and_bad_entries(tmp_path: Path) -> None:
    (tmp_path / "_base.yaml").write_text("group: g\ndata: {path: x.jsonl}\n")
    (tmp_path / "t1.yaml").write_text("include: _base.yaml\ncategory: ocr\n")
    reg = load_registry([], [tmp_path], [])
    assert reg.tasks["t1"].categories == ("ocr",) and reg.groups == {"g": ["t1"]}
    bad = tmp_path / "reg.yaml"
    bad.write_text("encoders:\n  e1: {family: bert, checkpoint: x, options: {dtpye: float32}}\n")
    with pytest.raises(ConfigError, match=r"unknown option\(s\) \['dtpye'\]"):
        load_registry([bad], [], [])
    bad.write_text("encoders:\n  e1: {family: bert\n")
    with pytest.raises(ConfigError, match=r"reg.yaml:\d+: not valid YAML"):
        load_registry([bad], [], [])


def test_aliases_resolve_to_the_same_checkpoint(tmp_path: Path) -> None:
    reg_file = tmp_path / "reg.yaml"
    reg_file.write_text("encoders:\n  qwen3-vl-8b-instruct:\n    family: mllm\n    checkpoint: Qwen/Qwen3-VL-8B-Instruct\n"
                        "    aliases: [qwen3-vl-8b]\n")
    reg = load_registry([reg_file], [], ["mllm"])
    assert reg.encoder("qwen3-vl-8b").checkpoint == "Qwen/Qwen3-VL-8B-Instruct"
    assert reg.encoder("qwen3-vl-8b").name == "qwen3-vl-8b"


def test_main_command_names_resolve(registry) -> None:
    """`harness run --encoders umt5,qwen3-vl-8b` is the documented main command."""
    assert registry.encoder("umt5").family == "t5"
    vl = registry.encoder("qwen3-vl-8b")
    assert (vl.family, vl.checkpoint, vl.options.template) == ("mllm", "Qwen/Qwen3-VL-8B-Instruct", "granted-caption")


@pytest.mark.parametrize("group", ["ted6k-sample", "ted6k"])
def test_shipped_groups_cover_exactly_the_categories(shipped: Registry, group: str) -> None:
    tasks = [shipped.tasks[t] for t in shipped.groups[group]]
    cats = [c for t in tasks for c in t.categories or ()]
    assert sorted(cats) == sorted(CATEGORIES), f"group {group!r} covers {sorted(cats)}, not CATEGORIES"
    for task in tasks:
        assert task.name == f"{group}-{task.categories[0].replace('_', '-')}", "the task name follows the category"


def test_include_finds_a_shipped_base_from_anywhere(tmp_path: Path) -> None:
    mine = _task(tmp_path / "elsewhere", "my-ocr.yaml", "include: _ted6k-sample.yaml\ncategory: ocr\n")
    reg = load_registry([], [SHIPPED], [])
    (spec,) = reg.resolve_tasks([str(mine)])
    assert (spec.name, spec.categories, spec.groups) == ("my-ocr", ("ocr",), ("ted6k-sample",))
    assert spec.source == "pkg:harness_tasks/data/ted6k_sample.jsonl" and spec.format == "jsonl"


def test_include_prefers_the_including_files_folder(tmp_path: Path) -> None:
    _task(tmp_path, "_ted6k-sample.yaml", "group: local\ndata: {path: local.jsonl}\n")
    mine = _task(tmp_path, "t.yaml", "include: _ted6k-sample.yaml\n")
    (spec,) = load_registry([], [SHIPPED], []).resolve_tasks([str(mine)])
    assert spec.groups == ("local",) and spec.source == str(tmp_path.resolve() / "local.jsonl")


def test_nested_include_resolves_from_the_base_file(tmp_path: Path) -> None:
    base_dir = tmp_path / "bases"
    _task(base_dir, "_root.yaml", "group: nested\ndata: {path: data/x.jsonl}\n")
    _task(base_dir, "_mid.yaml", "include: _root.yaml\ncategory: ocr\n")
    mine = _task(tmp_path / "user", "deep.yaml", "include: _mid.yaml\n")
    (spec,) = load_registry([], [SHIPPED], [], include_paths=[base_dir]).resolve_tasks([str(mine)])
    assert (spec.groups, spec.categories) == (("nested",), ("ocr",))
    assert spec.source == str(base_dir.resolve() / "data" / "x.jsonl"), "relative to the file that sets data"


def test_missing_include_says_where_it_looked(tmp_path: Path) -> None:
    mine = _task(tmp_path, "t.yaml", "include: _nope.yaml\n")
    with pytest.raises(ConfigError) as err:
        load_registry([], [SHIPPED], []).resolve_tasks([str(mine)])
    msg = str(err.value)
    assert str(mine) in msg and "field 'include'" in msg and "'_nope.yaml'" in msg
    assert f"looked in: {tmp_path}, {SHIPPED}" in msg, msg
    assert "--include-path" in msg


def test_circular_include_is_reported(tmp_path: Path) -> None:
    _task(tmp_path, "_a.yaml", "include: _b.yaml\n")
    _task(tmp_path, "_b.yaml", "include: _a.yaml\n")
    _task(tmp_path, "t.yaml", "include: _a.yaml\n")
    with pytest.raises(ConfigError, match=r"circular: t\.yaml -> _a\.yaml -> _b\.yaml -> _a\.yaml"):
        load_registry([], [tmp_path], []).resolve_tasks(["t"])
    _task(tmp_path, "_a.yaml", "include: [x]\n")
    with pytest.raises(ConfigError, match=r"field 'include' must be a file name, got \['x'\]"):
        load_registry([], [tmp_path], []).resolve_tasks(["t"])


def test_task_yaml_path_is_a_task(tmp_path: Path, shipped: Registry) -> None:
    (tmp_path / "rows.jsonl").write_text("")
    mine = _task(tmp_path, "my-task.yml", "category: [ocr, spatial]\ndata: {path: rows.jsonl, format: jsonl}\n")
    (spec,) = shipped.resolve_tasks([str(mine)])
    assert (spec.name, spec.format, spec.categories) == ("my-task", "jsonl", ("ocr", "spatial"))
    assert spec.source == str(tmp_path.resolve() / "rows.jsonl"), "data.path is relative to the YAML"


@pytest.mark.parametrize(
    ("path", "fmt", "expected"),
    [
        pytest.param("org/ted6k", "hf", "org/ted6k", id="hub-id"),
        pytest.param("$TED6K_PATH", "granted-json", "$TED6K_PATH", id="env-var"),
        pytest.param("pkg:harness_tasks/data/x.jsonl", "jsonl", "pkg:harness_tasks/data/x.jsonl", id="pkg"),
        pytest.param("/abs/x.jsonl", "auto", "/abs/x.jsonl", id="absolute"),
    ],
)
def test_data_paths_that_are_not_relative_files_stay(tmp_path: Path, path: str, fmt: str, expected: str) -> None:
    mine = _task(tmp_path, "t.yaml", f"data: {{path: '{path}', format: {fmt}}}\n")
    (spec,) = load_registry([], [], []).resolve_tasks([str(mine)])
    assert spec.source == expected


def test_folder_of_task_yamls(tmp_path: Path, shipped: Registry) -> None:
    folder = tmp_path / "suite"
    _task(folder, "_base.yaml", "group: suite\ndata: {path: rows.jsonl}\n")
    for cat in ("quantity", "adverb"):
        _task(folder, f"s-{cat}.yaml", f"include: _base.yaml\ncategory: {cat}\n")
    (folder / "notes.txt").write_text("not a task")
    specs = shipped.resolve_tasks([str(folder), "ted6k-sample-ocr"])
    assert [t.name for t in specs] == ["s-adverb", "s-quantity", "ted6k-sample-ocr"]
    assert {t.source for t in specs[:2]} == {str(folder.resolve() / "rows.jsonl")}


@pytest.mark.parametrize("marker", ["dataset_info.json", "state.json"])
def test_datasets_folder_stays_a_datasets_task(tmp_path: Path, shipped: Registry, marker: str) -> None:
    folder = tmp_path / "my-ds"
    _task(folder, marker, json.dumps({}))
    _task(folder, "card.yaml", "data: {path: x}\n")  # a stray YAML does not make it a task folder
    (spec,) = shipped.resolve_tasks([str(folder)])
    assert (spec.name, spec.source, spec.format) == ("my-ds", str(folder), "hf")


def test_include_paths_override_shipped_tasks(tmp_path: Path) -> None:
    extra = tmp_path / "extra"
    _task(extra, "ted6k-sample-ocr.yaml", "include: _ted6k-sample.yaml\ncategory: [ocr, quantity]\n")
    _task(extra, "brand-new.yaml", "data: {path: new.jsonl}\n")
    reg = load_registry([], [SHIPPED], [], include_paths=[extra])
    assert reg.tasks["ted6k-sample-ocr"].categories == ("ocr", "quantity"), "include path must win"
    assert reg.tasks["ted6k-sample-ocr"].groups == ("ted6k-sample",), "shipped base found by name"
    assert reg.resolve_tasks(["brand-new"])[0].source == str(extra.resolve() / "new.jsonl")
    assert len(reg.groups["ted6k-sample"]) == 9
    assert reg.task_dirs == [extra, SHIPPED]


def test_include_path_base_overrides_by_name(tmp_path: Path) -> None:
    extra = _task(tmp_path / "extra", "_shared.yaml", "group: from-extra\ndata: {path: e.jsonl}\n").parent
    mine = _task(tmp_path / "user", "u.yaml", "include: _shared.yaml\n")
    _task(tmp_path / "shipped", "_shared.yaml", "group: from-shipped\ndata: {path: s.jsonl}\n")
    reg = load_registry([], [tmp_path / "shipped"], [], include_paths=[extra])
    assert reg.resolve_tasks([str(mine)])[0].groups == ("from-extra",), "include paths are searched first"


def test_include_path_must_be_a_folder(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"Include path '.*nowhere' is not a folder"):
        load_registry([], [SHIPPED], [], include_paths=[tmp_path / "nowhere"])


def test_unknown_task_still_suggests(shipped: Registry, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"Unknown task 'ted6k-sampel'\. Did you mean: ted6k-sample"):
        shipped.resolve_tasks(["ted6k-sampel"])
    with pytest.raises(ConfigError, match="a task .yaml, a folder of them"):
        shipped.resolve_tasks([str(tmp_path / "missing.yaml")])


# --- bad task YAMLs, registry files and user paths ----------------------------------------------

@pytest.mark.parametrize(("text", "problem"), [
    ("data: {path: [x\n", "not valid YAML"),
    ("category: ocr\n", "field 'data' needs a 'path'"),
    ("include: _nope.yaml\n", "field 'include' names '_nope.yaml'"),
    ("category: 5\ndata: {path: x.jsonl}\n", "field 'category' must be a name or a non-empty list of names, got 5"),
    ("group: [[a]]\ndata: {path: x.jsonl}\n", "field 'group' must be a name"),
    ("- a list\n", "expected a mapping at the top level"),
], ids=["yaml", "no-data", "include", "category-int", "group-nested", "list"])
def test_one_broken_task_file_is_skipped(tmp_path: Path, caplog: pytest.LogCaptureFixture, text: str,
                                         problem: str) -> None:
    broken = _task(tmp_path, "broken.yaml", text)
    _task(tmp_path, "fine.yaml", "data: {path: x.jsonl}\n")
    with caplog.at_level("WARNING", logger="harness"):
        reg = load_registry([], [SHIPPED, tmp_path], [])
    assert "fine" in reg.tasks and "broken" not in reg.tasks and len(reg.groups["ted6k-sample"]) == 9
    (record,) = [r for r in caplog.records if r.name == "harness"]
    assert str(broken) in record.getMessage() and problem in record.getMessage()
    with pytest.raises(ConfigError, match=problem) as err:
        reg.resolve_tasks(["broken"])
    assert err.value is reg.skipped["broken"], "asking for the task raises the stored error"
    assert [t.name for t in reg.resolve_tasks(["fine"])] == ["fine"]


def test_broken_task_file_is_listed_in_unknown_name_errors(tmp_path: Path) -> None:
    _task(tmp_path, "_base.yaml", "group: [\n")  # every task including it breaks, so the group is gone
    _task(tmp_path, "t1.yaml", "include: _base.yaml\n")
    with pytest.raises(ConfigError, match=r"Unknown task 'mygroup'.*skipped because of errors: t1\."):
        load_registry([], [tmp_path], []).resolve_tasks(["mygroup"])


def test_include_path_override_that_breaks_replaces_the_shipped_task(tmp_path: Path) -> None:
    _task(tmp_path, "ted6k-sample-ocr.yaml", "category: ocr\n")
    reg = load_registry([], [SHIPPED], [], include_paths=[tmp_path])
    with pytest.raises(ConfigError, match="needs a 'path'"):
        reg.resolve_tasks(["ted6k-sample-ocr"])


def test_list_tasks_survives_a_broken_task_file(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                caplog: pytest.LogCaptureFixture) -> None:
    from harness.cli.main import main

    _task(tmp_path, "broken.yaml", "data: {path: [x\n")
    _task(tmp_path, "fine.yaml", "data: {path: x.jsonl}\n")
    with caplog.at_level("WARNING", logger="harness"):
        assert main(["-p", "harness.testing", "list", "tasks", "--include-path", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "fine" in out and "ted6k-sample-ocr" in out and "broken" not in out
    assert "skipping task 'broken'" in caplog.text and "broken.yaml:2: not valid YAML" in caplog.text
    assert main(["-p", "harness.testing", "run", "--encoders", "fake", "--tasks", "broken",
                 "--include-path", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1].startswith(f"error: {tmp_path / 'broken.yaml'}:2: not valid YAML"), err


def test_missing_registry_file_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from harness.cli.main import main

    with pytest.raises(ConfigError, match=r"Registry file '.*nope.yaml' does not exist; --registry takes"):
        load_registry([tmp_path / "nope.yaml"], [], [])
    with pytest.raises(ConfigError, match=r"Registry file '.*' is a directory"):
        load_registry([tmp_path], [], [])
    assert main(["--registry", str(tmp_path / "nope.yaml"), "list", "encoders"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "nope.yaml" in err


def test_registry_file_bad_bytes_and_options(tmp_path: Path) -> None:
    reg = tmp_path / "reg.yaml"
    reg.write_bytes(b"encoders:\n  e1: {family: bert, checkpoint: caf\xe9}\n")
    with pytest.raises(ConfigError, match=r"reg.yaml:2: not UTF-8 \(byte 0xe9 at line 2\)"):
        load_registry([reg], [], [])
    reg.write_text("encoders:\n  e1: {family: bert, checkpoint: x, options: 5}\n")
    with pytest.raises(ConfigError, match="field 'options' must be a mapping"):
        load_registry([reg], [], [])


def test_yaml_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    reg = tmp_path / "reg.yaml"
    reg.write_bytes(b"\xef\xbb\xbfencoders:\n  e1: {family: bert, checkpoint: x, aliases: e2}\n")
    _task(tmp_path / "tasks", "t.yaml", "x")
    (tmp_path / "tasks" / "t.yaml").write_bytes(b"\xef\xbb\xbfcategory: ocr\ndata: {path: x.jsonl}\n")
    loaded = load_registry([reg], [tmp_path / "tasks"], [])
    assert set(loaded.encoders) == {"e1", "e2"}, "a single alias string is one alias, not its letters"
    assert loaded.tasks["t"].categories == ("ocr",)


def test_user_path_with_dollar_is_literal(tmp_path: Path, shipped: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RUN", raising=False)
    data = tmp_path / "my$RUN.jsonl"
    data.write_text("")
    assert resolve_path(str(data)) == str(data)
    (spec,) = shipped.resolve_tasks([str(data)])
    assert (spec.name, spec.source) == ("my$RUN", str(data))
    monkeypatch.setenv("TED6K_PATH", str(data))
    assert resolve_path("$TED6K_PATH") == str(data), "a path that does not exist as typed still expands"
