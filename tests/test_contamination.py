"""The contamination check: training pairs against the evaluated instances, by text and by image/video id.

Unit tests of the normaliser and the n-gram index (equality, containment at word boundaries, the
minimum length, groups), the shipped ted-open x open (no overlap), and the real CLI on a task and a
pair file that overlap on purpose: the counts printed and recorded, ``--strict-contamination`` exiting
2 before any model loads, and the no-overlap case."""

from __future__ import annotations

import gzip
import json
import os
import time
from pathlib import Path

import pytest

from cli_checks import FAKE, QUICK, refused
from harness._exceptions import ConfigError, DataError
from harness.cli.main import main
from harness.data.contamination import MIN_CONTAINED_WORDS, check_contamination, describe, normalize
from harness.data.loaders import load_jsonl_instances, load_pairs_file
from harness.registry import resolve_path
from harness.types import CaptionPair, Instance

REPO = Path(__file__).resolve().parents[1]
POSITIVE = "The photo shows the barista knitting a wool sock."  # 9 words


def _inst(iid: str = "i1", *, caption: str = "A busy market at dusk.\nA barista knits a sock by a food cart.",
          positive: str = POSITIVE, group: str | None = None) -> Instance:
    return Instance(id=iid, category="action", caption=caption, positive=positive,
                    negatives=("The photo shows the barista darning a wool sock.",), group=group)


def _pairs(*texts: str, group: str | None = None) -> list[CaptionPair]:
    return [CaptionPair(a=t, b=f"unrelated caption {i}", group=group) for i, t in enumerate(texts)]


@pytest.mark.parametrize(("text", "expected"), [
    ("A man's   guitar...", "a man s guitar"),
    ("Ｃａｆé — “Hello”,\tWORLD_x!\n2nd", "café hello world x 2nd"),  # NFKC folds full-width letters
    ("ﬁsh ①", "fish 1"),  # NFKC: ligature and circled digit
    ("  --  ", ""),
    ("\x00Tab\x7fbed", "tab bed"),  # control characters are not words either
], ids=["apostrophe", "fullwidth-quotes-underscore", "ligature", "only-punctuation", "control-chars"])
def test_normalize(text: str, expected: str) -> None:
    assert normalize(text) == expected


def test_equal_texts_count_at_any_length() -> None:
    inst = _inst(caption="Two dogs.\nA cat sleeps.", positive="Dogs run.")
    report = check_contamination(_pairs("DOGS, run!", "a cat sleeps", "Two dogs. A cat sleeps.", "dogs"), [inst])
    assert report.n_by_text == 3, "positive, one caption line and the whole caption are equal; 'dogs' is not"
    assert [(e.pair, e.how) for e in report.examples] == [(1, "equal"), (2, "equal"), (3, "equal")]
    assert report.examples[0].text == "DOGS, run!" and report.examples[0].instance == "i1"


def test_contained_at_word_boundaries_from_the_minimum_length() -> None:
    assert MIN_CONTAINED_WORDS == 8
    inst = _inst()
    texts = ["photo shows the barista knitting a wool sock",  # 8 words inside the positive
             "he photo shows the barista knitting a wool",  # 8 words, but 'he' is inside 'the'
             "shows the barista knitting a wool sock",  # 7 words: too short to count as contained
             "barista knits a sock, by a food cart",  # 8 words inside a caption line, punctuation differs
             "dusk. A barista knits a sock by a food"]  # across the caption's line break: the caption holds it
    report = check_contamination(_pairs(*texts), [inst])
    assert {e.pair: e.how for e in report.examples} == {1: "contained", 4: "contained", 5: "contained"}
    assert report.n_by_text == 3 and report.n_contaminated == 3
    assert check_contamination(_pairs(*texts), [inst], min_words=7).n_by_text == 4, "7 words count at min_words=7"


def test_group_matches_only_when_both_sides_name_one() -> None:
    insts = [_inst("i1", group="vid-1"), _inst("i2", group=None)]
    pairs = [CaptionPair("a ship at sea", "a boat", group="vid-1"), CaptionPair("a ship", "a boat", group=None),
             CaptionPair("a ship", "a boat", group="vid-2"),
             CaptionPair(POSITIVE, "a boat", group="vid-1")]  # by text and by group: one pair, counted once
    report = check_contamination(pairs, insts, max_examples=5)
    assert (report.n_pairs, report.n_by_text, report.n_by_group, report.n_contaminated) == (4, 1, 2, 2)
    assert (report.n_instances, report.n_instances_with_group, report.n_pairs_with_group) == (2, 1, 3)
    assert [(e.pair, e.how, e.text) for e in report.examples] == [(1, "group", "vid-1"), (4, "equal", POSITIVE)]


def test_describe_names_the_counts_the_first_pair_and_what_was_not_checked() -> None:
    pairs = _pairs("photo shows the barista knitting a wool sock", group="vid-1")
    line = describe(check_contamination(pairs, [_inst(group="vid-1")]), lambda i: f"task/{i}")
    assert line == ("1 of 1 train pairs overlap the evaluated instances (1 by text, 1 by image/video id), e.g. "
                    "pair 1 'photo shows the barista knitting a wool sock' (text, contained) in task/i1")
    clean = describe(check_contamination(_pairs("a ship at sea"), [_inst()]))
    assert clean == ("no overlap: none of 1 train pairs matches the 1 evaluated instances by text; image/video ids "
                     "not checked: the evaluated instances name none (JSONL field 'group')")


def test_instance_group_is_read_from_jsonl(tmp_path: Path) -> None:
    rec = {"id": "x", "category": "spatial", "caption": "c", "positive": "p", "negatives": ["n"]}
    path = tmp_path / "t.jsonl"
    path.write_text("".join(json.dumps({**rec, "id": f"x{i}", **g}) + "\n"
                            for i, g in enumerate([{"group": "img-1"}, {"group": 42}, {}])))
    assert [i.group for i in load_jsonl_instances(path)] == ["img-1", "42", None]
    path.write_text(json.dumps({**rec, "group": ["a"]}) + "\n")
    with pytest.raises(DataError, match=r"t\.jsonl:1: field 'group' must be a non-empty string or an integer"):
        load_jsonl_instances(path)


def test_shipped_ted_open_and_open_pairs_do_not_overlap() -> None:
    """The build keeps instance videos and texts out of the pairs; the check agrees, in well under a few seconds."""
    with gzip.open(REPO / "tasks" / "data" / "open" / "ted_open.jsonl.gz", "rt", encoding="utf-8") as fh:
        raw = [json.loads(line) for line in fh]
    assert all(r["group"] == f"vatex-{r['origin']['video']}" for r in raw), "instance group = the pairs' convention"
    insts = load_jsonl_instances(resolve_path("pkg:harness_tasks/data/open/ted_open.jsonl.gz"))
    pairs = load_pairs_file(resolve_path("pkg:harness_tasks/data/open/pairs_open.jsonl.gz"))
    t0 = time.perf_counter()
    report = check_contamination(pairs, insts)
    seconds = time.perf_counter() - t0
    assert (report.n_pairs, report.n_instances, report.n_instances_with_group) == (54569, 2431, 2431)
    assert (report.n_contaminated, report.n_by_text, report.n_by_group) == (0, 0, 0)
    assert seconds < 15, f"{seconds:.1f}s: the n-gram index should take well under a second here"
    one_video = next(p for p in pairs if p.group and p.group.startswith("vatex-"))
    hit = check_contamination([one_video, *pairs[:3]], [_inst(group=one_video.group)])
    assert hit.n_by_group == 1, "the same video id in an instance would be caught"


# --- the real CLI ---------------------------------------------------------------------------------

def _overlap_files(tmp_path: Path) -> tuple[Path, Path, Path]:
    """Six ted6k-sample instances with groups scene-0..5, a pair file overlapping them on purpose and a clean one."""
    lines = (REPO / "tasks" / "data" / "ted6k_sample.jsonl").read_text().splitlines()[:6]
    recs = [{**json.loads(line), "group": f"scene-{k}"} for k, line in enumerate(lines)]
    task = tmp_path / "overlap.jsonl"
    task.write_text("".join(json.dumps(r) + "\n" for r in recs))
    clean = [{"a": f"A clean caption number {i} about boats.", "b": f"Boats, caption {i}.", "group": f"c{i}"}
             for i in range(4)]
    overlap = [
        {"a": "THE PHOTO SHOWS THE BARISTA KNITTING A WOOL SOCK!!", "b": "A barista knits.", "group": "x1"},  # equal
        {"a": "A short elderly woman, wearing an olive jacket, waits in the corner", "b": "A woman waits.",
         "group": "x2"},  # contained in sample-action-001's caption (12 words)
        {"a": "a cosy living room", "b": "A room.", "group": "x3"},  # inside a caption, but 4 words: not counted
        {"a": "A red kite flies over the beach.", "b": "A kite over sand.", "group": "scene-2"},  # group
        {"a": "The rabbit can be seen eating a carrot in the photo", "b": "A rabbit eats.", "group": "scene-3"},  # both
        {"a": "he photo shows the barista knitting a wool sock", "b": "Someone knits.", "group": "x6"},  # mid-word
        *clean,
    ]
    paths = []
    for name, rows in (("overlap_pairs.jsonl", overlap), ("clean_pairs.jsonl", clean)):
        paths.append(tmp_path / name)
        paths[-1].write_text("".join(json.dumps(r) + "\n" for r in rows))
    return task, paths[0], paths[1]


def _argv(task: Path, pairs: Path, tmp_path: Path, *extra: str) -> list[str]:
    return [*FAKE, "run", "--encoders", "fake", "--tasks", str(task), "--train-pairs", str(pairs), "--preset", "baby",
            "--epochs", "1", "--extract", "last", "--bootstrap", "0", "--null-resamples", "0",
            "--cache-dir", str(tmp_path / "cache"), "--ckpt-dir", str(tmp_path / "ckpt"), *extra]


OVERLAP_LINE = ("contamination: 4 of 10 train pairs overlap the evaluated instances (3 by text, 2 by image/video id), "
                "e.g. pair 1 'THE PHOTO SHOWS THE BARISTA KNITTING A WOOL SOC…' (text, equal) in "
                "overlap/sample-action-000")


def test_overlapping_pairs_are_counted_printed_and_recorded(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("torch")
    from harness.evaluation.results import read_results

    task, overlap, _ = _overlap_files(tmp_path)
    out = tmp_path / "out"
    assert main(_argv(task, overlap, tmp_path, "--output", str(out))) == 0
    printed = capsys.readouterr().out
    assert OVERLAP_LINE in printed.splitlines(), printed
    assert printed.index("contamination:") < printed.index("encoding"), "the check runs before any encoding"
    report = read_results(out).provenance.contamination
    assert report is not None
    assert (report.n_pairs, report.n_contaminated, report.n_by_text, report.n_by_group) == (10, 4, 3, 2)
    assert (report.n_instances, report.n_instances_with_group, report.min_words) == (6, 6, 8)
    assert [(e.pair, e.how, e.instance) for e in report.examples] == [
        (1, "equal", "sample-action-000"), (2, "contained", "sample-action-001"), (4, "group", "sample-action-002")]
    data = json.loads((out / "results.json").read_text())
    assert data["training"] and data["provenance"]["options"]["training"]["strict_contamination"] is False
    del data["provenance"]["contamination"]  # a results file written before the check still reads
    (out / "results.json").write_text(json.dumps(data))
    assert read_results(out).provenance.contamination is None


def test_strict_contamination_stops_before_any_model_loads(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                           no_model_load: None) -> None:
    task, overlap, _ = _overlap_files(tmp_path)
    out = tmp_path / "out"
    rc = main(_argv(task, overlap, tmp_path, "--strict-contamination", "--output", str(out)))
    err = refused(capsys, rc, "--strict-contamination: 4 of 10 train pairs overlap", "(3 by text, 2 by image/video id)",
                  "overlap/sample-action-000", "drop --strict-contamination")
    assert str(overlap) in err
    assert not (out / "results.json").exists() and not list((tmp_path / "ckpt").rglob("*.pt")), "something trained"


def test_no_overlap_passes_strict_and_records_zero(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("torch")
    task, _, clean = _overlap_files(tmp_path)
    out = tmp_path / "out"
    assert main(_argv(task, clean, tmp_path, "--strict-contamination", "--output", str(out))) == 0
    assert ("contamination: no overlap: none of 4 train pairs matches the 6 evaluated instances by text or "
            "image/video id") in capsys.readouterr().out.splitlines()
    rec = json.loads((out / "results.json").read_text())["provenance"]["contamination"]
    assert (rec["n_pairs"], rec["n_contaminated"], rec["examples"]) == (4, 0, [])


def test_python_api_takes_strict_contamination(tmp_path: Path, no_model_load: None) -> None:
    import harness

    task, overlap, _ = _overlap_files(tmp_path)
    with pytest.raises(ConfigError, match=r"^--strict-contamination: 4 of 10 train pairs overlap"):
        harness.evaluate(["fake"], [str(task)], plugins=["harness.testing"], extract=["last"], preset="baby",
                         train_pairs=str(overlap), bootstrap=0, null_resamples=0, cache_dir=str(tmp_path / "c"),
                         ckpt_dir=str(tmp_path / "k"), strict_contamination=True)


def test_strict_contamination_without_training_is_a_note(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("torch")
    assert main([*FAKE, "run", *QUICK, "--tasks", "tiny", "--strict-contamination",
                 "--cache-dir", str(tmp_path / "cache")]) == 0
    out = capsys.readouterr().out
    assert "note: --strict-contamination is unused: no caption pairs are read, so none can overlap" in out
    assert "contamination:" not in out
    assert os.environ.get("HF_HUB_OFFLINE") == "1"
