"""harness correlate: the paper's own numbers, per-category correlations, scorers by name, one-line errors."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from harness import DownstreamMetric, ScoredRow, hookimpl
from harness.cli.main import main
from harness.evaluation.results import RunResult, ScoreRecord, write_results

REPO = Path(__file__).resolve().parent.parent
PAPER = str(REPO / "tasks" / "data" / "downstream_paper.csv")
SCORERS = ["-p", "harness_plugins.scorers"]


def _line(data: dict[str, Any], benchmark: str, category: str = "all") -> dict[str, Any]:
    found = [x for x in data["lines"] if x["benchmark"] == benchmark and x["category"] == category]
    assert len(found) == 1, f"{benchmark}/{category}: {len(found)} lines in correlate.json"
    return found[0]


@pytest.fixture(scope="module")
def paper(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str, Path]:
    out = tmp_path_factory.mktemp("paper")
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main([*SCORERS, "correlate", "--downstream", PAPER, "--out", str(out)]) == 0
    return json.loads((out / "correlate.json").read_text()), buf.getvalue(), out


def test_paper_table_4_t2v_gives_the_printed_r_and_p(paper: tuple[dict[str, Any], str, Path]) -> None:
    line = _line(paper[0], "GenAI-Bench T2V")
    c = line["correlation"]
    assert line["n"] == 4, "Table 4 has four rows with a T2V score"
    assert c["pearson_r"] == pytest.approx(0.9587, abs=5e-5), "T2V r drifted from the paper's 0.9587"
    assert c["pearson_p"] == pytest.approx(0.0413, abs=5e-5), "T2V p drifted from the paper's 0.0413"
    assert c["r_ci_low"] <= c["pearson_r"] <= c["r_ci_high"]


def test_paper_table_3_t2i_gives_what_its_numbers_give(paper: tuple[dict[str, Any], str, Path]) -> None:
    """The paper prints r = 0.9914, p = 1.09e-4; its own Table 3 gives r = 0.9974, p = 1.0e-5."""
    line = _line(paper[0], "GenAI-Bench T2I")
    c = line["correlation"]
    assert line["n"] == 6
    assert c["pearson_r"] == pytest.approx(0.9974, abs=5e-5)
    assert c["pearson_p"] == pytest.approx(1.0e-5, rel=0.03)
    printed = paper[1]
    assert "0.9974" in printed and "1.0e-05" in printed and "0.9587" in printed and "0.0413" in printed
    assert " 0 " not in printed.replace("│", " "), "a p-value printed as 0"
    assert "(its ted column)" in printed


def test_scatter_is_drawn(paper: tuple[dict[str, Any], str, Path]) -> None:
    pytest.importorskip("matplotlib")
    from PIL import Image  # matplotlib's own dependency

    img = np.asarray(Image.open(paper[2] / "correlate.png").convert("L"), dtype=float)
    assert img.std() > 5, "correlate.png is blank"


def _results(tmp: Path, rows: Mapping[str, Mapping[str, float]], *, name: str = "run") -> Path:
    """A results.json with one row per encoder (extractor 'last'), accuracy per category ('all' = overall)."""
    scores = [ScoreRecord(encoder=enc, extractor="last", aggregator="mean-pool", task="/data/sets/ted_small.jsonl",
                          category=cat, caption_type="all", seed=0, metric="accuracy", value=v, n=20)
              for enc, cats in rows.items() for cat, v in cats.items()]
    out = tmp / name
    write_results(RunResult(scores=scores), out)
    return out


TED = {  # overall, spatial (tracks the downstream number), ocr (does not)
    "enc-a": {"all": 0.40, "spatial": 0.30, "ocr": 0.70},
    "enc-b": {"all": 0.45, "spatial": 0.42, "ocr": 0.40},
    "enc-c": {"all": 0.50, "spatial": 0.55, "ocr": 0.65},
    "enc-d": {"all": 0.52, "spatial": 0.61, "ocr": 0.35},
    "enc-e": {"all": 0.58, "spatial": 0.80, "ocr": 0.60},
}
DOWN = {"enc-a": 50.0, "enc-b": 58.0, "enc-c": 66.0, "enc-d": 70.0, "enc-e": 85.0}


def _downstream(tmp: Path, values: Mapping[str, float], name: str = "down.csv") -> Path:
    path = tmp / name
    path.write_text("encoder,extractor,benchmark,metric,value,n\n"
                    + "".join(f"{e},last,Bench,score,{v},100\n" for e, v in values.items()))
    return path


def test_per_category_correlations_match_numpy(tmp_path: Path) -> None:
    res = _results(tmp_path, TED)
    down = _downstream(tmp_path, DOWN)
    assert main([*SCORERS, "correlate", str(res), "--downstream", str(down), "--out", str(tmp_path / "o")]) == 0
    data = json.loads((tmp_path / "o" / "correlate.json").read_text())
    assert [x["category"] for x in data["lines"]] == ["all", "spatial", "ocr"], "overall first, then CATEGORIES order"
    y = [DOWN[e] for e in TED]
    for cat in ("all", "spatial", "ocr"):
        want = float(np.corrcoef([100 * TED[e][cat] for e in TED], y)[0, 1])
        got = _line(data, "Bench", cat)["correlation"]["pearson_r"]
        assert got == pytest.approx(want, abs=1e-12), f"{cat}: r disagrees with numpy"
    assert _line(data, "Bench", "spatial")["correlation"]["pearson_r"] > 0.98
    assert abs(_line(data, "Bench", "ocr")["correlation"]["pearson_r"]) < 0.5, "ocr should not predict Bench"
    assert data["task"] == "ted_small", "task named by its short name, not its path"
    pts = _line(data, "Bench")["points"]
    assert pts[0] == {"encoder": "enc-a", "extractor": "last", "ted": pytest.approx(40.0), "value": 50.0, "n": 100}


def test_ted_csv_and_skipped_slices(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A TED CSV works like results; a slice with < 3 points says why instead of failing."""
    ted = tmp_path / "ted.csv"
    ted.write_text("encoder,extractor,ted,category\n" + "".join(
        f"{e},last,{100 * c['all']}\n{e},last,{100 * c['spatial']},spatial\n" for e, c in TED.items())
        + "enc-a,last,10,ocr\nenc-b,last,20,ocr\n")
    down = _downstream(tmp_path, DOWN)
    assert main([*SCORERS, "correlate", str(ted), "--downstream", str(down), "--out", str(tmp_path / "o")]) == 0
    data = json.loads((tmp_path / "o" / "correlate.json").read_text())
    ocr = _line(data, "Bench", "ocr")
    assert ocr["correlation"] is None and "at least 3 points" in ocr["skipped"] and ocr["n"] == 2
    assert "at least 3 points" in capsys.readouterr().out


class _Linear:
    """A scorer that computes its number from the row (no recorded file): 2 * TED + 1."""

    name = "linear"

    def rows(self) -> Sequence[ScoredRow]:
        return []

    def score(self, row: ScoredRow) -> list[DownstreamMetric]:
        assert row.ted is not None
        return [DownstreamMetric("Synthetic", "twice", 2 * row.ted + 1, n=7)]


class _Plugin:
    @hookimpl
    def harness_scorer_names(self) -> list[str]:
        return ["linear"]

    @hookimpl
    def harness_make_scorer(self, name: str, options: Mapping[str, Any]) -> Any:
        if name == "linear":
            return _Linear()
        if name == "recorded" and options.get("path", "").endswith("override.csv"):
            return _Linear()  # a third-party plugin overrides the built-in (trylast) for its files
        return None


def test_scorers_are_built_by_name_through_the_factory_hook(tmp_path: Path) -> None:
    from harness.downstream.correlate import correlate_downstream, make_scorer, read_ted
    from harness.plugins import get_plugin_manager

    pm = get_plugin_manager(["harness_plugins.scorers"])
    pm.register(_Plugin(), name="linear-scorer")
    names = {n for ns in pm.hook.harness_scorer_names() for n in ns}
    assert {"linear", "recorded"} <= names, names  # plus whatever other scorer plugins are installed
    ted = read_ted([str(_results(tmp_path, TED))])
    result = correlate_downstream(ted, make_scorer(pm, "linear"))
    line = next(x for x in result.lines if x.category == "all")
    assert line.correlation is not None and line.correlation.pearson_r == pytest.approx(1.0)
    assert (line.benchmark, line.metric, line.points[0].n) == ("Synthetic", "twice", 7)
    over = _downstream(tmp_path, DOWN, name="override.csv")
    assert make_scorer(pm, str(over)).name == "linear", "a plugin's harness_make_scorer must run before the built-in"
    assert make_scorer(pm, str(_downstream(tmp_path, DOWN))).name == "recorded"


def test_list_scorers(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*SCORERS, "list", "scorers"]) == 0
    assert "recorded" in capsys.readouterr().out


def _error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, f"not one line: {err!r}"
    return err


def test_missing_results_and_downstream_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = _error([*SCORERS, "correlate", str(tmp_path / "nope"), "--downstream", PAPER], capsys)
    assert "nope" in err and "does not exist" in err
    err = _error([*SCORERS, "correlate", "--downstream", str(tmp_path / "gone.csv")], capsys)
    assert "gone.csv" in err and "does not exist" in err
    err = _error([*SCORERS, "correlate", "--downstream", "recorde"], capsys)
    assert "Unknown scorer 'recorde'" in err and "Did you mean: recorded?" in err


def test_results_of_another_schema(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    other = tmp_path / "results.json"
    other.write_text(json.dumps({"schema": 1, "scores": []}))
    err = _error([*SCORERS, "correlate", str(other), "--downstream", PAPER], capsys)
    assert str(other) in err and "schema" in err
    plain = tmp_path / "plain.json"
    plain.write_text("[1, 2]")
    assert "not a ted-harness results file" in _error([*SCORERS, "correlate", str(plain), "--downstream", PAPER],
                                                        capsys)


def test_no_matching_rows_names_unmatched_and_closest(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    res = _results(tmp_path, TED)
    down = _downstream(tmp_path, {"enc-aa": 1.0, "enc-bb": 2.0, "zzz": 3.0})
    err = _error([*SCORERS, "correlate", str(res), "--downstream", str(down)], capsys)
    assert str(down) in err and "matches a TED row" in err
    assert "enc-aa/last (closest: enc-a/last)" in err and "enc-bb/last (closest: enc-b/last)" in err, err
    assert "zzz/last (nothing close)" in err


@pytest.mark.parametrize("body,where", [
    ("encoder,extractor,benchmark,metric,value\nenc-a,last,B,m,1\nenc-b,last,B,m,abc\n", ":3: field 'value'"),
    ("encoder,extractor,benchmark,metric,vlaue\nenc-a,last,B,m,1\n",
     "field 'vlaue' is not a known column; did you mean 'value'?"),
    ("encoder,extractor,benchmark,metric\nenc-a,last,B,m\n", "field 'value' is missing"),
    ("encoder,extractor,benchmark,metric,value,n\nenc-a,last,B,m,1,2.5\n", ":2: field 'n'"),
    ("encoder,extractor,benchmark,metric,value\nenc-a,last,B,m,1\nenc-a,last,B,m,2\n", ":3: repeats enc-a/last"),
    (('[{"encoder": "enc-a", "extractor": "last", "benchmark": "B", "metric": "m", "value": 1},\n'
      ' {"encoder": "enc-b", "extractor": "last", "benchmark": "B", "metric": "m", "value": "x"}]'), ":2: field 'value'"),
], ids=["bad-value", "unknown-column", "missing-column", "fractional-n", "duplicate", "json-line"])
def test_bad_downstream_records_name_file_line_and_field(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                          body: str, where: str) -> None:
    path = tmp_path / ("down.json" if body.startswith("[") else "down.csv")
    path.write_text(body)
    err = _error([*SCORERS, "correlate", str(_results(tmp_path, TED)), "--downstream", str(path)], capsys)
    assert str(path) in err and where in err, err
