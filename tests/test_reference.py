"""The paper's Tables 1, 2, 3 and 7 as reference rows: shipped values, matching, terminal and report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.cli.main import main
from harness.evaluation.reference import load_reference, reference_for
from harness.evaluation.results import read_results
from harness.registry import resolve_path


def test_shipped_paper_values() -> None:
    ref = {(r.table, r.encoder, r.extractor, r.aggregator, r.category): r.value for r in load_reference()}
    assert ref[("1", "qwen3-vl-8b-instruct", "norm-avg", "context", "all")] == 56.81
    assert ref[("1", "umt5", "last", "context", "all")] == 44.60
    assert ref[("7", "umt5", "last", "mean-pool", "all")] == 50.64
    assert ref[("7", "qwen3-vl-8b-instruct", "-", "qa", "all")] == 97.94
    assert ref[("2", "qwen3-vl-8b-instruct", "norm-avg", "context", "temporal")] == 63.32
    assert ref[("3", "internvl3.5-8b-mpo", "last", "context", "all")] == 55.31
    assert sum(1 for k in ref if k[0] == "1") == 14 * 3 + 1, "Table 1: 14 encoders x 3 extractors + GRAN-TED"
    assert sum(1 for k in ref if k[0] == "2") == 18, "Table 2: 9 categories x 2 models"
    # Table 2's categories weighted by the paper's Figure 2 counts give Table 1's overall (56.81).
    counts = {"action": 755, "temporal": 608, "spatial": 828, "coreference": 762, "adjective": 1021, "ocr": 214,
              "adverb": 680, "basic_event": 1025, "quantity": 748}
    weighted = sum(ref[("2", "qwen3-vl-8b-instruct", "norm-avg", "context", c)] * n for c, n in counts.items())
    assert weighted / sum(counts.values()) == pytest.approx(56.81, abs=0.02)


@pytest.fixture(scope="module")
def ted6k_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The fake encoder registered as 'umt5' and the tiny task served as 'ted6k-action' (so the setting matches
    the paper's Table 1/7 rows), plus a 'fake' row that has no paper value."""
    root = tmp_path_factory.mktemp("ref")
    (root / "reg.yaml").write_text("encoders:\n  umt5:\n    family: fake\n    checkpoint: seed-0\n"
                                   "    options: {max_length: 64, template: plain}\n")
    tasks = root / "tasks"
    tasks.mkdir()
    from harness.data.categories import CATEGORIES

    tiny = [json.loads(line) for line in open(resolve_path("pkg:harness/testing_data/tiny.jsonl"))]
    rows = [{**tiny[i % len(tiny)], "id": f"x{i}", "category": c} for i, c in enumerate(CATEGORIES)]
    (root / "all9.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    # one file served as the whole ted6k group (every category present), as a TED-6K run would be
    (tasks / "ted6k.yaml").write_text(f"group: ted6k\ndata: {{path: {root / 'all9.jsonl'}, format: jsonl}}\n")
    out = root / "out"
    argv = ["-p", "harness.testing", "--registry", str(root / "reg.yaml"), "run", "--encoders", "umt5,fake",
            "--tasks", "ted6k", "--include-path", str(tasks), "--aggregator", "mean-pool",
            "--extract", "last,norm-avg", "--bootstrap", "0", "--null-resamples", "0", "--cache-dir",
            str(root / "feat"), "--output", str(out)]
    return out, " ".join(argv) if main(argv) == 0 else ""


def test_matching_row_gets_its_paper_value(ted6k_run: tuple[Path, str]) -> None:
    out, ok = ted6k_run
    assert ok, "the run failed"
    refs = reference_for(read_results(out))
    umt5 = refs[("ted6k", "umt5", "last", "mean-pool", "all")]
    assert (umt5.table, umt5.value) == ("7", 50.64), "umt5 / last / mean-pool is Table 7's mean-pooling column"
    assert ("ted6k", "umt5", "norm-avg", "mean-pool", "all") not in refs, "the paper has no such setting"
    assert not any(k[1] == "fake" for k in refs)


def test_partial_or_limited_runs_get_no_overall_paper_value(ted6k_run: tuple[Path, str]) -> None:
    import dataclasses

    res = read_results(ted6k_run[0])
    partial = dataclasses.replace(res, scores=[s for s in res.scores if s.category != "ocr"])
    assert ("ted6k", "umt5", "last", "mean-pool", "all") not in reference_for(partial), "8 of 9 categories"
    limited = dataclasses.replace(res, provenance=dataclasses.replace(
        res.provenance, options={**res.provenance.options, "limit": 3}))
    assert reference_for(limited) == {}, "--limit: a subset the paper never scored"


def test_report_shows_paper_value_delta_and_rows_without(ted6k_run: tuple[Path, str],
                                                         tmp_path: Path) -> None:
    out, _ = ted6k_run
    scores = json.loads((out / "results.json").read_text())["scores"]
    ours = next(s["value"] for s in scores if (s["encoder"], s["extractor"], s["category"], s["caption_type"])
                == ("umt5", "last", "all", "all"))
    assert main(["report", str(out), "--out", str(tmp_path)]) == 0
    md = (tmp_path / "report.md").read_text()
    sec = md.split("## Against the paper")[1].split("\n## ")[0]
    line = next(x for x in sec.splitlines() if x.startswith("| umt5 / last / mean-pool"))
    assert f"| {100 * ours:.2f} | 50.64 | {100 * ours - 50.64:+.1f} | Table 7 (UMT5-XXL)" in line, line
    assert "No paper value for: umt5 / norm-avg / mean-pool" in sec and "fake / last / mean-pool" in sec


def test_terminal_table_shows_paper_column(ted6k_run: tuple[Path, str]) -> None:
    from rich.console import Console

    from harness.report.tables import result_tables

    out, _ = ted6k_run
    console = Console(width=250, record=True)
    for table in result_tables(read_results(out)):
        console.print(table)
    text = console.export_text()
    assert "paper" in text and "50.64 (T7)" in text
    assert "no paper value for: umt5 / norm-avg / mean-pool" in text


def test_other_tasks_get_no_paper_column(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-p", "harness.testing", "run", "--encoders", "fake", "--tasks", "tiny", "--aggregator", "mean-pool",
                 "--bootstrap", "0", "--null-resamples", "0", "--no-cache"]) == 0
    assert "paper" not in capsys.readouterr().out
