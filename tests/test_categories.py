"""A statement category is one YAML file: its tasks, groups, official names and selection come from it."""

from __future__ import annotations

import json
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import harness_tasks
import pytest
import yaml

from harness import ConfigError
from harness.data import categories
from harness.data.categories import CATEGORIES, category_slug
from harness.registry import task_origins
from harness.cli.main import main
from harness.plugins import get_plugin_manager
from harness.registry import Registry, load_plugin_registry, load_registry

SHIPPED = Path(harness_tasks.__file__).resolve().parent
OPEN = ("action", "spatial", "temporal", "coreference", "adverb")  # the categories ted-open's data has
RUN = ["-p", "harness.testing", "run", "--encoders", "fake", "--aggregator", "mean-pool", "--extract", "last",
       "--bootstrap", "0", "--null-resamples", "0", "--no-cache"]


def _category(folder: Path, slug: str, extra: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{slug}.yaml"
    path.write_text(textwrap.dedent(f"""\
        name: {slug.replace("_", " ").capitalize()}
        definition: The hand gesture a person makes.
        examples:
          - caption: A man waves goodbye with his left hand.
            positive: The man waves.
            negatives: [The man points., The man claps., The man salutes.]
        official_names: [hand gesture]
        """) + textwrap.dedent(extra), encoding="utf-8")
    return path


def _rows(path: Path, labels: dict[str, int]) -> Path:
    rows = [{"id": f"{label}-{i}", "category": label, "caption": f"A person number {i} makes a {label} sign.",
             "positive": f"Person {i} makes a {label} sign.", "negatives": [f"Person {i} sits still.",
                                                                            f"Person {i} runs away."]}
            for label, n in labels.items() for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def shipped() -> Registry:
    return load_registry([], [SHIPPED], [])


# --- the shipped nine -------------------------------------------------------------------------------------

def test_no_task_file_per_category_ships() -> None:
    files = sorted(p.name for p in SHIPPED.glob("*.y*ml") if not p.name.startswith("_"))
    assert files == [], f"the category YAMLs make these tasks; remove {files}"


@pytest.mark.parametrize(("group", "cats"), [("ted6k", CATEGORIES), ("ted6k-sample", CATEGORIES), ("ted-open", OPEN)],
                         ids=["ted6k", "ted6k-sample", "ted-open"])
def test_category_tasks_equal_the_old_task_files(shipped: Registry, tmp_path: Path, group: str,
                                                 cats: tuple[str, ...]) -> None:
    """`<group>-<slug>` is exactly what `include: _<group>.yaml` + `category: <slug>` gave: the same runs."""
    assert shipped.groups[group] == sorted(f"{group}-{c.replace('_', '-')}" for c in cats)
    for cat in cats:
        name = f"{group}-{cat.replace('_', '-')}"
        old = tmp_path / f"{name}.yaml"
        old.write_text(f"include: _{group}.yaml\ncategory: {cat}\n")
        (expected,) = shipped.resolve_tasks([str(old)])
        # only the provenance of the category file's own version tells them apart
        assert shipped.tasks[name].category_version == "1" and expected.category_version is None
        assert replace(shipped.tasks[name], category_version=None) == expected, f"{name} drifted from its old task file"
    default = {"ted6k": None, "ted6k-sample": "demo", "ted-open": "open"}[group]
    assert {shipped.tasks[t].train_pairs for t in shipped.groups[group]} == {default}, "the base's train_pairs"


def test_official_names_come_from_the_category_yamls() -> None:
    """The official TED-6K loader maps question types with the YAMLs' official_names: no second table."""
    expected: dict[str, str] = {}
    for path in sorted((SHIPPED / "categories").glob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        for name in data["official_names"]:
            expected[" ".join(name.lower().replace("_", " ").split())] = data["slug"]
            assert category_slug(name.title()) == data["slug"], f"{path.name}: {name!r}"
    assert dict(categories.OFFICIAL_TYPE_NAMES) == expected
    assert set(expected.values()) == set(CATEGORIES)
    assert category_slug("Hand Gesture") == "hand_gesture", "a name no shipped YAML lists becomes its own slug"


def test_list_tasks_and_categories_show_every_group(capsys: pytest.CaptureFixture[str],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "400")  # whole cells, whatever the terminal
    assert main(["list", "tasks"]) == 0
    out = capsys.readouterr().out
    for name in ("ted6k-action", "ted6k-sample-ocr", "ted-open-temporal", "ted6k-sample-basic-event"):
        assert name in out, f"{name} missing from harness list tasks"
    cells = [[c.strip() for c in line.split("│")[1:-1]] for line in out.splitlines() if "│" in line]
    groups = {row[0]: row[3] for row in cells if row[2] == "group"}  # name, version, source, categories, ...
    versions = {row[0]: row[1] for row in cells if row[2] != "group"}
    assert versions["ted-open-action"] == "1" and versions["ted6k-sample-ocr"] == "1"
    assert groups == {"ted6k": "9 tasks", "ted6k-sample": "9 tasks", "ted-open": "5 tasks"}, groups
    assert main(["list", "categories"]) == 0
    listed = capsys.readouterr().out
    assert [c for c in CATEGORIES if c not in listed] == [], "every shipped category is listed"


def test_origin_names_the_category_file_and_base() -> None:
    where = task_origins(get_plugin_manager([]))
    assert where["ted6k-sample-basic-event"].startswith("builtin-data: ")
    assert where["ted6k-sample-basic-event"].endswith("categories (basic_event.yaml + _ted6k-sample.yaml)")


# --- a user's category: one file --------------------------------------------------------------------------

def test_a_new_category_is_one_yaml_file_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mine = tmp_path / "mine"
    _category(mine, "hand_gesture", """\
        select: [gesture]           # instances labelled "gesture" count too
        groups: [my-suite]          # a group of the user's own: no base file, so its own task joins it
        data: {path: rows.jsonl}
        """)
    _rows(mine / "rows.jsonl", {"hand_gesture": 4, "gesture": 2, "weather": 3})
    assert main(["-p", "harness.testing", "list", "tasks", "--include-path", str(mine)]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if "hand-gesture" in x)
    assert "my-suite" in line and "--include-path" in line and "hand_gesture" in line, line
    for tasks in ("hand-gesture", "my-suite"):
        out = tmp_path / f"out-{tasks}"
        assert main([*RUN, "--tasks", tasks, "--include-path", str(mine), "--output", str(out)]) == 0, tasks
        res = json.loads((out / "results.json").read_text())
        n = {s["category"]: s["n"] for s in res["scores"] if s["caption_type"] == "all"}
        assert n == {"all": 6, "hand_gesture": 4, "gesture": 2}, f"--tasks {tasks}: weather must be left out: {n}"
    assert res["provenance"]["tasks"]["my-suite"]["tasks"]["hand-gesture"]["source"] == str(mine.resolve() / "rows.jsonl")
    capsys.readouterr()
    assert main([*RUN, "--tasks", str(mine / "hand_gesture.yaml")]) == 0, "the category file itself is a task path"
    assert "hand_gesture" in capsys.readouterr().out


def test_a_category_joins_a_group_through_its_base(tmp_path: Path) -> None:
    (tmp_path / "_my-suite.yaml").write_text("group: my-suite\ntrain_pairs: demo\ndata: {path: rows.jsonl}\n")
    _category(tmp_path, "hand_gesture", "groups: [my-suite, ted6k-sample]\n")
    reg = load_registry([], [SHIPPED], [], include_paths=[tmp_path])
    mine = reg.tasks["my-suite-hand-gesture"]
    assert (mine.categories, mine.groups, mine.train_pairs) == (("hand_gesture",), ("my-suite",), "demo")
    assert mine.source == str(tmp_path.resolve() / "rows.jsonl"), "relative to the base that sets data"
    assert reg.groups["my-suite"] == ["my-suite-hand-gesture"]
    assert "ted6k-sample-hand-gesture" in reg.groups["ted6k-sample"], "it asked to join the shipped group"
    assert len(reg.groups["ted6k"]) == 9, "the official nine stay the ted6k group"
    assert "hand-gesture" not in reg.tasks, "no data of its own, no task of its own"


def test_a_category_overrides_a_shipped_one_of_the_same_slug(tmp_path: Path) -> None:
    _category(tmp_path, "ocr", "groups: [ted6k-sample]\n")
    reg = load_registry([], [SHIPPED], [], include_paths=[tmp_path])
    assert reg.categories["ocr"].source == str(tmp_path / "ocr.yaml")
    assert "ted6k-ocr" not in reg.tasks and len(reg.groups["ted6k"]) == 8, "its file now says which groups"
    assert "ted6k-sample-ocr" in reg.tasks


@pytest.fixture
def gesture_plugin(tmp_path: Path) -> Iterator[str]:
    """A third-party plugin whose `harness_category_dirs` holds one category with its own data."""
    cats = tmp_path / "cats"
    _category(cats, "hand_gesture", "data: {path: rows.jsonl}\n")
    _rows(cats / "rows.jsonl", {"hand_gesture": 3, "weather": 2})
    (tmp_path / "gesture_plugin.py").write_text(textwrap.dedent(f"""\
        from pathlib import Path
        from harness import hookimpl

        @hookimpl
        def harness_category_dirs():
            return [Path({str(cats)!r})]
        """), encoding="utf-8")
    sys.path.insert(0, str(tmp_path))
    yield "gesture_plugin"
    sys.path.remove(str(tmp_path))
    sys.modules.pop("gesture_plugin", None)


def test_a_third_party_category_runs_the_same_way(gesture_plugin: str) -> None:
    pytest.importorskip("torch")
    from harness.features.extractors import parse_extractors
    from harness.evaluation.tasks import load_task_sets
    from harness.evaluation.runner import run

    pm = get_plugin_manager(["harness.testing", gesture_plugin])
    reg = load_plugin_registry(pm)
    assert reg.categories["hand_gesture"].plugin == gesture_plugin
    assert task_origins(pm)["hand-gesture"].startswith(f"{gesture_plugin}: ")
    res = run(pm, encoders=[reg.encoder("fake")], tasks=load_task_sets(pm, reg, ["hand-gesture"]),
              extractors=parse_extractors(pm, ["last"]), aggregator="mean-pool", bootstrap=0, null_resamples=0)
    n = {s.category: s.n for s in res.scores if s.caption_type == "all"}
    assert n == {"all": 3, "hand_gesture": 3}, n


# --- mistakes -----------------------------------------------------------------------------------------------

def test_a_group_without_base_or_data_is_named(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    _category(tmp_path, "hand_gesture", "groups: [my-suite]\n")
    with caplog.at_level("WARNING", logger="harness"):
        reg = load_registry([], [SHIPPED], [], include_paths=[tmp_path])
    assert "skipping task 'hand-gesture'" in caplog.text and len(reg.tasks) == 23, "the rest still loads"
    with pytest.raises(ConfigError, match=r"hand_gesture.yaml: field 'groups' names 'my-suite', but no base file "
                                          r"\(_my-suite.yaml\) was found and the category has no 'data'"):
        reg.resolve_tasks(["hand-gesture"])


def test_a_broken_category_file_is_skipped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "hand_gesture.yaml").write_text("definition: x\nexamples: 5\n")
    with caplog.at_level("WARNING", logger="harness"):
        reg = load_registry([], [SHIPPED], [], include_paths=[tmp_path])
    assert "field 'examples' must be a list" in caplog.text and len(reg.groups["ted6k-sample"]) == 9
    with pytest.raises(ConfigError, match="field 'examples' must be a list"):
        reg.resolve_tasks(["hand-gesture"])
    _category(tmp_path, "hand_gesture")
    with pytest.raises(ConfigError, match="category 'hand_gesture' makes no task: give it data"):
        reg.resolve_tasks([str(tmp_path / "hand_gesture.yaml")])
