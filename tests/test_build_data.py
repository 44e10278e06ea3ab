"""harness build-data: statements written by a scripted OpenAI-compatible server (the real ``openai`` client),
checked, re-asked, resumed, reviewed; categories as data files."""

from __future__ import annotations

import csv
import json
import re
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from harness import LLMOptions, make_llm_backend
from harness.data.build import (
    BuildOptions,
    CaptionItem,
    build_statements,
    check_negatives,
    check_positive,
    run_build_data,
    screen_captions,
)
from harness.data.categories import CATEGORIES
from harness.data.category_defs import category_dirs, load_categories, select_categories
from harness.cli.main import build_parser, main
from harness.plugins import get_plugin_manager

pytest.importorskip("openai")

from harness_plugins.llm.fake_server import FakeChatServer, Reply

POS = "The red cat sits on the mat."
NEGS = ["The blue cat sits on the mat.", "The red dog sits on the mat.", "The red cat sits under the mat."]


def scripted(body: dict[str, Any]) -> Reply:
    """The caption's marker word decides the answer.  NULLPOS: no statement; BADJSON: not JSON once;
    TWO / FOUR: that many negatives once; SAMEPOS: a negative equal to the positive once; ALWAYSBAD: two
    negatives every time (rejected after the re-asks).  A re-ask (history after the prompt) gets a good answer."""
    first = body["messages"][0]["content"]
    reask = len(body["messages"]) > 1
    caption = re.search(r"CAPTION \(\w+\): (.*)", first).group(1)  # type: ignore[union-attr]
    if "TRUE STATEMENT:" not in first:
        if "NULLPOS" in caption:
            return Reply(text=json.dumps({"statement": None}))
        if "BADJSON" in caption and not reask:
            return Reply(text="Sure! Here is the statement: the cat {")
        return Reply(text=json.dumps({"statement": POS}))
    negs = list(NEGS)
    if "ALWAYSBAD" in caption or ("TWO" in caption and not reask):
        negs = negs[:2]
    if "FOUR" in caption and not reask:
        negs.append("The green cat sits on the mat.")
    if "SAMEPOS" in caption and not reask:
        negs[0] = "the red  cat sits on the MAT"
    return Reply(text="```json\n" + json.dumps({"negatives": negs}) + "\n```")


def write_captions(path: Path, captions: list[tuple[str, str]], caption_type: str = "image") -> Path:
    path.write_text("".join(json.dumps({"id": i, "caption": c, "caption_type": caption_type}) + "\n"
                            for i, c in captions), encoding="utf-8")
    return path


def build_args(captions: Path, out: Path, url: str, *extra: str) -> list[str]:
    return ["build-data", str(captions), "--out", str(out), "--llm-base-url", url, "--llm-api-key", "x",
            "--model", "m", "--max-retries", "0", *extra]


@pytest.fixture
def pm() -> Any:
    return get_plugin_manager(["harness_plugins.llm"])


def test_builtin_categories_are_data(pm: Any) -> None:
    cats = load_categories(category_dirs(pm))
    assert tuple(cats) == CATEGORIES, "the nine built-ins ship as YAML files, in report order"
    for cat in cats.values():
        assert cat.definition and len(cat.examples) >= 2 and all(len(e.negatives) == 3 for e in cat.examples), cat.slug
        assert cat.plugin == "builtin-data" and cat.source.endswith(f"{cat.slug}.yaml")
    assert cats["basic_event"].official_name == "basic event"


def test_checks_name_the_problem() -> None:
    assert check_positive({"statement": None}) == (None, None)
    assert check_positive({"statement": "  A  cat. "}) == ("A cat.", None)
    assert check_positive("nope")[1] and check_positive({"statement": 3})[1]
    assert check_negatives({"negatives": NEGS}, POS) == (NEGS, None)
    for bad, why in [(NEGS[:2], "holds 2"), ([*NEGS, "x"], "holds 4"), ([POS.upper(), *NEGS[1:]], "repeats"),
                     ([NEGS[0], NEGS[0], NEGS[1]], "same"), (["", *NEGS[1:]], "non-empty"),
                     ([NEGS[0], NEGS[1], "Dogs bark loudly at night in the quiet town near the old river."], "words"),
                     ([NEGS[0], NEGS[1], "A huge dog ran away fast."], "rewrites")]:
        assert why in (check_negatives({"negatives": bad}, POS)[1] or ""), bad


def test_build_data_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    caps = write_captions(tmp_path / "caps.jsonl", [("c1", "A red cat sits on a mat."), ("c2", "A red cat NULLPOS.")])
    out = tmp_path / "out"
    with FakeChatServer(scripted) as server:
        assert main(build_args(caps, out, server.url, "--types", "quantity,spatial")) == 0
    printed = capsys.readouterr().out
    assert server.requests == 6, "2 captions x 2 types positives + 2 negatives (c2 answered null)"
    assert "2 answered, 2 null, 0 rejected by validation, 0 retried, 0 failed" in printed, printed
    assert "6 requests" in printed, printed
    rows = [json.loads(line) for line in (out / "ted.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == ["c1/quantity", "c1/spatial"]
    assert rows[0] == {"id": "c1/quantity", "category": "quantity", "caption": "A red cat sits on a mat.",
                       "positive": POS, "negatives": NEGS, "caption_type": "image"}
    official = json.loads((out / "ted6k.json").read_text())
    assert official["c1"]["statements"]["spatial relationship"]["correct_statement"]["statement"] == POS
    assert official["c2"]["statements"]["quantity"]["correct_statement"]["status"] == "null"
    report = json.loads((out / "build_report.json").read_text())
    assert (report["answered"], report["null"], report["usage"]["requests"]) == (2, 2, 6)
    with open(out / "review.csv", newline="") as fh:
        sheet = list(csv.DictReader(fh))
    assert [r["id"] for r in sheet] == ["c1/quantity", "c1/spatial"] and sheet[0]["verdict"] == ""
    # The outputs run unchanged through validate and an evaluation.
    for path in ("ted.jsonl", "ted6k.json"):
        assert main(["validate", str(out / path)]) == 0, path
        assert "2 instances" in capsys.readouterr().out
    assert main(["-p", "harness.testing", "run", "--encoders", "fake", "--tasks", str(out / "ted.jsonl"),
                 "--aggregator", "mean-pool", "--extract", "last", "--bootstrap", "0", "--null-resamples", "0",
                 "--no-cache"]) == 0
    assert "quantity" in capsys.readouterr().out


@pytest.mark.parametrize("marker,status,reasks,requests", [
    ("BADJSON", "ok", 1, 3), ("TWO", "ok", 1, 3), ("FOUR", "ok", 1, 3), ("SAMEPOS", "ok", 1, 3),
    ("ALWAYSBAD", "rejected", 2, 4),
], ids=["invalid-json", "two-negatives", "four-negatives", "negative-equals-positive", "always-invalid"])
def test_invalid_answers_are_reasked_then_reported(pm: Any, tmp_path: Path, marker: str, status: str, reasks: int,
                                                   requests: int) -> None:
    cats = select_categories(load_categories(category_dirs(pm)), ["quantity"])

    with FakeChatServer(scripted) as server:
        backend = make_llm_backend(pm, "openai", LLMOptions(model="m", base_url=server.url, api_key="x", max_retries=0,
                                                            cache_dir=str(tmp_path / "cache")))
        records, report = build_statements(backend, [CaptionItem("c1", f"A cat {marker}.")], cats,
                                           out_dir=tmp_path, options=BuildOptions(max_reasks=2))
    (rec,) = records
    assert (rec.status, rec.reasks, server.requests) == (status, reasks, requests), rec
    assert report.retried == 1 and report.problems[0]["id"] == "c1/quantity"
    assert (report.rejected, report.answered) == ((1, 0) if status == "rejected" else (0, 1))
    reask = server.bodies[1 if marker == "BADJSON" else 2]  # BADJSON fails in the positive stage
    reminder = reask["messages"][-1]["content"]
    assert ("JSON object" if marker == "BADJSON" else "negative") in reminder, "the reminder names the problem"
    assert reask["seed"] == 1, "a re-ask is a new request with a new seed"


def test_killed_run_resumes_without_reasking(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    caps = write_captions(tmp_path / "caps.jsonl", [(f"c{i}", f"A red cat number {i} sits.") for i in range(4)])
    out = tmp_path / "out"

    class Boom(Exception):
        pass

    class Killer:
        def __init__(self) -> None:
            self.seen = 0

        def __call__(self, desc: str, total: int) -> Killer:
            return self

        def advance(self, n: int) -> None:
            self.seen += n
            if self.seen == 6:  # all 4 positives and 2 negatives answered
                raise Boom

    @contextmanager
    def killing() -> Iterator[Killer]:
        yield Killer()

    with FakeChatServer(scripted) as server:
        args = build_args(caps, out, server.url, "--types", "quantity", "--concurrency", "1")
        with pytest.raises(Boom):  # as a crash midway: the bar raises after 6 answers
            run_build_data(build_parser().parse_args(args), get_plugin_manager(["harness_plugins.llm"]), Console(),
                           progress=killing)
    assert server.requests >= 6, "6 answers arrived (a 7th may have been in flight: lost with the kill)"
    with FakeChatServer(scripted) as server:  # a fresh count: the cache is keyed by request, not by server
        assert main(build_args(caps, out, server.url, "--types", "quantity")) == 0
    assert server.requests == 2, "the rerun asked only the 2 unanswered negatives"
    assert "4 answered" in capsys.readouterr().out
    with FakeChatServer(scripted) as server:
        assert main(build_args(caps, out, server.url, "--types", "quantity")) == 0
    assert server.requests == 0, "a finished run asks nothing"
    assert "(4 from an earlier run)" in capsys.readouterr().out


def test_review_round_trip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    caps = write_captions(tmp_path / "caps.jsonl", [("c1", "A red cat."), ("c2", "A red cat again."),
                                                    ("c3", "A red cat once more.")], caption_type="video")
    out = tmp_path / "out"
    with FakeChatServer(scripted) as server:
        assert main(build_args(caps, out, server.url, "--types", "ocr")) == 0
    with open(out / "review.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    rows[0]["verdict"] = "keep"
    rows[1]["verdict"], rows[1]["negative_1"] = "edit", "The red cat sits beside the mat."
    rows[2]["verdict"] = "drop"
    with open(tmp_path / "reviewed.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    for _ in range(2):  # applying the same sheet twice gives the same files
        assert main(["build-data", "--out", str(out), "--apply-review", str(tmp_path / "reviewed.csv")]) == 0
    assert "2 kept (1 edited), 1 dropped, 0 unreviewed" in capsys.readouterr().out
    ted = [json.loads(line) for line in (out / "ted.jsonl").read_text().splitlines()]
    assert [r["id"] for r in ted] == ["c1/ocr", "c2/ocr"]
    assert ted[1]["negatives"][0] == "The red cat sits beside the mat." and ted[1]["caption_type"] == "video"
    assert set(json.loads((out / "ted6k.json").read_text())) == {"c1", "c2"}
    assert json.loads((out / "build_report.json").read_text())["review"]["dropped"] == 1
    assert main(["validate", str(out / "ted6k.json")]) == 0
    (out / "review.csv").write_bytes((tmp_path / "reviewed.csv").read_bytes())
    with FakeChatServer(scripted) as server:
        assert main(build_args(caps, out, server.url, "--types", "ocr")) == 0
    assert server.requests == 0 and (out / "review-new.csv").exists(), "a rerun keeps a filled sheet"
    assert "drop" in (out / "review.csv").read_text()


def test_bad_captions_are_reported_and_skipped(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    kept, skipped = screen_captions([("a", "A cat.", "image"), ("b", "   ", "image"), ("c", "x" * 50, "image"),
                                     ("a", "Another cat.", "image"), ("d", "a  CAT.", "image"), (None, None, "image")],
                                    max_chars=40)
    assert [k.id for k in kept] == ["a"]
    reasons = {s["id"]: s["reason"] for s in skipped}
    assert "empty" in reasons["b"] and "50 characters" in reasons["c"] and "duplicate id" in reasons["a"]
    assert "same text as 'a'" in reasons["d"] and "empty" in reasons["caption-6"]
    caps = write_captions(tmp_path / "caps.jsonl", [("a", "A cat."), ("b", ""), ("c", "x" * 50), ("d", "A cat.")])
    with FakeChatServer(scripted) as server:
        assert main(build_args(caps, tmp_path / "out", server.url, "--types", "action",
                               "--max-caption-chars", "40")) == 0
    out = capsys.readouterr().out
    assert "skipped b: empty caption" in out and "skipped c:" in out and "skipped d: duplicate caption" in out, out
    assert server.requests == 2
    assert len(json.loads((tmp_path / "out" / "build_report.json").read_text())["skipped"]) == 3


def test_a_new_category_is_a_yaml_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "cats").mkdir()
    (tmp_path / "cats" / "color.yaml").write_text(textwrap.dedent("""\
        name: Color
        definition: The colors of objects in the scene.
        examples:
          - caption: A red ball on green grass.
            positive: The ball is red.
            negatives: [The ball is blue., The ball is green., The ball is yellow.]
        official_names: [color]
        """), encoding="utf-8")
    plugin = tmp_path / "color_plugin.py"
    plugin.write_text(textwrap.dedent(f"""\
        from pathlib import Path
        from harness import hookimpl

        @hookimpl
        def harness_category_dirs():
            return [Path({str(tmp_path / 'cats')!r})]
        """), encoding="utf-8")
    sys.path.insert(0, str(tmp_path))
    try:
        assert main(["-p", "color_plugin", "list", "categories"]) == 0
        assert "color_plugin" in capsys.readouterr().out
        caps = write_captions(tmp_path / "caps.jsonl", [("c1", "A red cat.")])
        with FakeChatServer(scripted) as server:
            assert main(["-p", "color_plugin", *build_args(caps, tmp_path / "out", server.url, "--types", "color")]) == 0
        assert "CATEGORY: Color" in server.bodies[0]["messages"][0]["content"]
        assert "The ball is red." in server.bodies[0]["messages"][0]["content"], "the examples reach the prompt"
        (row,) = [json.loads(line) for line in (tmp_path / "out" / "ted.jsonl").read_text().splitlines()]
        assert row["category"] == "color"
        assert main(["validate", str(tmp_path / "out" / "ted6k.json")]) == 0
        assert "color" in capsys.readouterr().out
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("color_plugin", None)


def test_list_tasks_says_where_each_came_from(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "mine.yaml").write_text("data: {path: x.jsonl}\n", encoding="utf-8")
    assert main(["list", "tasks", "--include-path", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    mine = next(line for line in out.splitlines() if "mine" in line)
    assert "--include-path" in mine, out
    assert "builtin-data" in next(line for line in out.splitlines() if "ted6k-sample-ocr" in line), out


def _review_sheet(out: Path, dest: Path, edit: dict[int, dict[str, str]]) -> Path:
    """``out``'s review.csv with the rows of ``edit`` (by index) changed, written to ``dest``."""
    with open(out / "review.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    for i, change in edit.items():
        rows[i].update(change)
    with open(dest, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return dest


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1 and err.startswith("error: "), err
    return err


def test_rerun_after_review_keeps_the_review(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 21 item 10: re-running build-data after --apply-review keeps the edits and drops (and the
    report's review section); a rerun with more captions adds the new items, reviewed ones untouched."""
    caps = write_captions(tmp_path / "caps.jsonl", [("c1", "A red cat."), ("c2", "A red cat again."),
                                                    ("c3", "A red cat once more.")])
    out = tmp_path / "out"
    with FakeChatServer(scripted) as server:
        assert main(build_args(caps, out, server.url, "--types", "ocr")) == 0
    sheet = _review_sheet(out, tmp_path / "reviewed.csv", {
        0: {"verdict": "keep"}, 1: {"verdict": "edit", "positive": "A cat is red."}, 2: {"verdict": "drop"}})
    assert main(["build-data", "--out", str(out), "--apply-review", str(sheet)]) == 0
    reviewed = {p: (out / p).read_bytes() for p in ("ted.jsonl", "ted6k.json")}
    capsys.readouterr()
    for _ in range(2):  # a rerun of the same command, twice: nothing asked, the review kept byte for byte
        with FakeChatServer(scripted) as server:
            assert main(build_args(caps, out, server.url, "--types", "ocr")) == 0
        assert server.requests == 0
        assert {p: (out / p).read_bytes() for p in reviewed} == reviewed, "the rerun undid the review"
        assert "kept the review applied earlier" in capsys.readouterr().out
    assert json.loads((out / "build_report.json").read_text())["review"]["dropped"] == 1
    # more captions: the new one is asked and added; the reviewed ones stay as reviewed
    write_captions(caps, [("c1", "A red cat."), ("c2", "A red cat again."), ("c3", "A red cat once more."),
                          ("c4", "A fourth red cat.")])
    with FakeChatServer(scripted) as server:
        assert main(build_args(caps, out, server.url, "--types", "ocr")) == 0
    assert server.requests == 2, "only the new caption's positive and negatives were asked"
    ted = {r["id"]: r for r in map(json.loads, (out / "ted.jsonl").read_text().splitlines())}
    assert sorted(ted) == ["c1/ocr", "c2/ocr", "c4/ocr"] and ted["c2/ocr"]["positive"] == "A cat is red."
    assert main(["validate", str(out / "ted.jsonl")]) == 0
    # a caption whose text changed is asked again: its old review no longer applies, and the rerun says so
    write_captions(caps, [("c1", "A red cat."), ("c2", "A red cat, changed."), ("c3", "A red cat once more."),
                          ("c4", "A fourth red cat.")])
    capsys.readouterr()
    with FakeChatServer(scripted) as server:
        assert main(build_args(caps, out, server.url, "--types", "ocr")) == 0
    assert "the review of 'c2/ocr' no longer applies" in capsys.readouterr().out
    ted = {r["id"]: r for r in map(json.loads, (out / "ted.jsonl").read_text().splitlines())}
    assert ted["c2/ocr"]["positive"] == POS and "c3/ocr" not in ted


def test_review_sheet_naming_an_id_twice_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    caps = write_captions(tmp_path / "caps.jsonl", [("c1", "A red cat."), ("c2", "A red cat again.")])
    out = tmp_path / "out"
    with FakeChatServer(scripted) as server:
        assert main(build_args(caps, out, server.url, "--types", "ocr")) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    sheet = _review_sheet(out, tmp_path / "twice.csv", {0: {"verdict": "keep"}, 1: {"id": "c1/ocr", "verdict": "drop"}})
    capsys.readouterr()
    assert main(["build-data", "--out", str(out), "--apply-review", str(sheet)]) == 2
    err = _one_error_line(capsys)
    assert f"{sheet}:3: field 'id' names 'c1/ocr' again (first on line 2)" in err, err
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before, "a refused sheet changed files"
    assert main(["build-data", "--out", str(out), "--apply-review", str(tmp_path / "nowhere.csv")]) == 2
    assert "does not exist" in _one_error_line(capsys)


@pytest.mark.parametrize(("ctype", "needle"), [("Video", "Did you mean: video?"), ("audio", "got 'audio'")])
def test_captions_with_a_caption_type_other_than_image_or_video(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                                ctype: str, needle: str) -> None:
    caps = write_captions(tmp_path / "caps.jsonl", [("c1", "A red cat."), ("c2", "A dog.")], caption_type=ctype)
    with FakeChatServer(scripted) as server:
        assert main(build_args(caps, tmp_path / "out", server.url, "--types", "ocr")) == 2
    assert server.requests == 0, "refused before any request"
    err = _one_error_line(capsys)
    assert f"{caps}:1: field 'caption_type' must be image or video" in err and needle in err, err
    with pytest.raises(SystemExit) as exc:  # argparse: exit 2 before anything is read
        main(build_args(caps, tmp_path / "out", "http://127.0.0.1:9", "--caption-type", "Video"))
    assert exc.value.code == 2 and "invalid choice: 'Video'" in _one_error_line(capsys)


# Issue 21 item 2: every input file through one reader (`harness.data.loaders.read_text_file`): gzip by content,
# a BOM dropped, a non-UTF-8 byte one line naming file and line.


def test_captions_in_gzip_are_read_and_latin1_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import gzip

    plain = tmp_path / "plain.jsonl"  # "é" as itself, not as a \u escape
    plain.write_text("".join(json.dumps({"id": i, "caption": c}, ensure_ascii=False) + "\n"
                             for i, c in [("c1", "A red café."), ("c2", "A red cat again.")]), encoding="utf-8")
    packed = tmp_path / "caps.jsonl"  # gzip whatever the name says
    packed.write_bytes(gzip.compress(b"\xef\xbb\xbf" + plain.read_bytes()))
    with FakeChatServer(scripted) as server:
        assert main(build_args(packed, tmp_path / "out", server.url, "--types", "ocr")) == 0
    ted = [json.loads(line) for line in (tmp_path / "out" / "ted.jsonl").read_text().splitlines()]
    assert [r["id"] for r in ted] == ["c1/ocr", "c2/ocr"] and ted[0]["caption"] == "A red café."
    latin = tmp_path / "latin.jsonl"
    latin.write_bytes(plain.read_text(encoding="utf-8").encode("latin-1"))
    capsys.readouterr()
    with FakeChatServer(scripted) as server:
        assert main(build_args(latin, tmp_path / "out2", server.url, "--types", "ocr")) == 2
    assert server.requests == 0, "refused before any request"
    err = _one_error_line(capsys)
    assert f"{latin}:1: not UTF-8 (byte 0xe9 at line 1)" in err and "iconv" in err, err


def test_review_sheets_in_gzip_or_latin1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import gzip

    caps = write_captions(tmp_path / "caps.jsonl", [("c1", "A red cat."), ("c2", "A red cat again.")])
    out = tmp_path / "out"
    with FakeChatServer(scripted) as server:
        assert main(build_args(caps, out, server.url, "--types", "ocr")) == 0
    sheet = _review_sheet(out, tmp_path / "sheet.csv", {0: {"verdict": "keep", "positive": "The red cat sits, olé."},
                                                        1: {"verdict": "drop"}})
    latin = tmp_path / "latin.csv"  # what a spreadsheet program may save
    latin.write_bytes(sheet.read_text(encoding="utf-8").replace("\n", "\r\n").encode("latin-1"))
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    capsys.readouterr()
    assert main(["build-data", "--out", str(out), "--apply-review", str(latin)]) == 2
    err = _one_error_line(capsys)
    assert f"{latin}:2: not UTF-8 (byte 0xe9 at line 2)" in err, err
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before, "a refused sheet changed files"
    packed = tmp_path / "sheet.csv.gz"
    packed.write_bytes(gzip.compress(sheet.read_bytes()))
    assert main(["build-data", "--out", str(out), "--apply-review", str(packed)]) == 0
    assert "1 kept (1 edited), 1 dropped" in capsys.readouterr().out
    ted = [json.loads(line) for line in (out / "ted.jsonl").read_text().splitlines()]
    assert [(r["id"], r["positive"]) for r in ted] == [("c1/ocr", "The red cat sits, olé.")]
    (out / "review.csv").write_bytes(latin.read_bytes())  # the sheet saved over in Latin-1, then a rerun
    with FakeChatServer(scripted) as server:
        assert main(build_args(caps, out, server.url, "--types", "ocr")) == 2
    assert f"{out / 'review.csv'}:2: not UTF-8" in _one_error_line(capsys)
