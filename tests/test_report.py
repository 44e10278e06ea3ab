"""harness report: sections, numbers, one self-contained HTML page, checked in headless Chromium."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("matplotlib")  # no figures without it

from harness.cli.main import main

TINY_PAIRS = "pkg:harness/testing_data/tiny_pairs.jsonl"
SECTIONS = ["leaderboard", "paper", "categories", "layer-sweep", "layer-weights", "seeds", "comparisons", "correlation",
            "provenance"]
FIGURES = ["leaderboard-tiny", "categories-tiny", "layer-sweep", "layer-weights", "seeds", "correlation"]
DATA_IMG = re.compile(r'<img alt="[^"]*" src="data:image/png;base64,([A-Za-z0-9+/=]+)">')


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two runs: mean-pool over last, norm-avg and an all-layers sweep on 2 seeds; context with learned weights."""
    root = tmp_path_factory.mktemp("runs")
    common = ["-p", "harness.testing", "-p", "harness_plugins.scorers", "run", "--encoders", "fake", "--tasks", "tiny",
              "--cache-dir", str(root / "feat"), "--ckpt-dir", str(root / "ckpt"), "--null-resamples", "20",
              "--bootstrap", "200"]
    assert main([*common, "--aggregator", "mean-pool", "--extract", "last,norm-avg,all-layers", "--seeds", "0,1",
                 "--output", str(root / "pool")]) == 0
    assert main([*common, "--aggregator", "context", "--extract", "last,learned", "--train-pairs", TINY_PAIRS,
                 "--preset", "baby", "--output", str(root / "ctx")]) == 0
    down = root / "down.csv"
    down.write_text("encoder,extractor,benchmark,metric,value\n" + "".join(
        f"fake,{ext},Gen,score,{v}\n" for ext, v in [("last", 40), ("norm-avg", 55), ("layer:0", 70), ("layer:1", 52),
                                                     ("layer:2", 50), ("layer:3", 41)]))
    out = root / "report"
    assert main(["-p", "harness_plugins.scorers", "report", str(root / "pool"), str(root / "ctx"), "--out", str(out),
                 "--downstream", str(down)]) == 0
    return {"pool": root / "pool", "ctx": root / "ctx", "report": out, "down": down}


def _pngs(page: str) -> list[bytes]:
    return [base64.b64decode(m) for m in DATA_IMG.findall(page)]


def _not_blank(png: bytes, what: str) -> None:
    from PIL import Image

    img = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=float)
    assert img.shape[0] > 50 and img.shape[1] > 50, f"{what}: {img.shape}"
    assert img.std() > 5, f"{what} is blank (one colour)"


def test_run_output_writes_the_report_too(runs: dict[str, Path]) -> None:
    for run in ("pool", "ctx"):
        page = (runs[run] / "report.html").read_text()
        assert "Leaderboard" in page and (runs[run] / "report.md").is_file(), f"harness run --output {run}: no report"


def test_every_section_and_figure_is_there(runs: dict[str, Path]) -> None:
    page = (runs["report"] / "report.html").read_text()
    md = (runs["report"] / "report.md").read_text()
    assert re.findall(r'<section id="([a-z-]+)"', page) == SECTIONS
    assert re.findall(r'data-figure="([a-z-]+)"', page) == FIGURES
    pngs = _pngs(page)
    assert len(pngs) == len(FIGURES) == page.count("<img"), "every figure embedded once, as a PNG data URI"
    for name, png in zip(FIGURES, pngs):
        _not_blank(png, name)
        assert (runs["report"] / f"report-{name}.png").read_bytes() == png, f"{name}: Markdown and HTML differ"
        assert f"](report-{name}.png)" in md
    for title in ("Leaderboard", "Per category vs baseline", "Layer sweep", "Learned layer weights", "Seed spread",
                  "TED vs downstream", "Provenance"):
        assert f"## {title}" in md


def test_html_is_self_contained(runs: dict[str, Path]) -> None:
    page = (runs["report"] / "report.html").read_text()
    assert "<script" not in page and "<link" not in page and "@import" not in page and "url(" not in page
    refs = re.findall(r'(?:src|href)="([^"]*)"', page)
    assert refs and all(r.startswith(("data:image/png;base64,", "#")) for r in refs), "a resource outside the page"


def test_leaderboard_numbers_and_baseline_deltas(runs: dict[str, Path]) -> None:
    scores = json.loads((runs["ctx"] / "results.json").read_text())["scores"]
    learned = next(s for s in scores if s["extractor"] == "learned" and s["category"] == "all"
                   and s["caption_type"] == "all")
    md = (runs["report"] / "report.md").read_text()
    board = md.split("## Leaderboard")[1].split("## ")[0]
    row = next(line for line in board.splitlines() if "fake / learned / context" in line)
    assert f"| {100 * learned['value']:.1f}" in row and f"[{100 * learned['ci_low']:.1f}, " in row, row
    assert "| 36.7 |" in row, "chance shown"
    assert "layer:2" not in board, "sweep rows belong to the layer sweep, not the leaderboard"
    cats = md.split("## Per category vs baseline")[1].split("## ")[0]
    assert "baseline fake / last / mean-pool" in cats, "default baseline: the first row"
    base = [s["value"] for s in json.loads((runs["pool"] / "results.json").read_text())["scores"]
            if s["extractor"] == "last" and s["category"] == "all" and s["caption_type"] == "all"]
    delta = f"{100 * (learned['value'] - sum(base) / len(base)):+.1f}".replace("-0.0", "+0.0")
    assert f"fake / learned / context | {100 * learned['value']:.1f} ({delta})" in cats, cats


def _md_tables(body: str) -> list[list[dict[str, str]]]:
    """The Markdown tables of a section as rows of {header: cell} (repeated headers get a suffix)."""
    tables, lines = [], [line for line in body.splitlines()]
    for i, line in enumerate(lines):
        if line.startswith("| ") and i + 1 < len(lines) and lines[i + 1].startswith("|---"):
            heads: list[str] = []
            for h in (c.strip() for c in line.strip("|").split(" | ")):
                heads.append(h if h not in heads else f"{h} ({heads.count(h) + 1})")
            rows = []
            for row in lines[i + 2:]:
                if not row.startswith("| "):
                    break
                rows.append(dict(zip(heads, (c.strip() for c in row.strip("|").split(" | ")))))
            tables.append(rows)
    return tables


def test_p_values_never_print_as_zero(runs: dict[str, Path]) -> None:
    md = (runs["report"] / "report.md").read_text()
    checked = 0
    for section in ("## Paired comparisons", "## TED vs downstream"):
        for table in _md_tables(md.split(section)[1].split("\n## ")[0]):
            for row in table:
                for head, cell in row.items():
                    if head.startswith("p"):
                        checked += 1
                        assert cell and float(re.sub(r"[^0-9.e-]", "", cell) or "nan") != 0 and cell != "0", (
                            f"{section} {head}: {cell!r}")
    assert checked >= 20


def test_correlation_section(runs: dict[str, Path]) -> None:
    md = (runs["report"] / "report.md").read_text()
    cor = md.split("## TED vs downstream")[1].split("\n## ")[0]
    overall = next(r for t in _md_tables(cor) for r in t if r["TED slice"] == "overall")
    assert overall["n"] == "6", "the 6 mean-pool rows are joined (the first aggregator in the results)"
    ted = json.loads((runs["pool"] / "results.json").read_text())["scores"]
    acc = {s["extractor"]: 100 * s["value"] for s in ted if s["category"] == "all" and s["caption_type"] == "all"
           and s["seed"] == 0}
    down = {"last": 40, "norm-avg": 55, "layer:0": 70, "layer:1": 52, "layer:2": 50, "layer:3": 41}
    want = np.corrcoef([acc[k] for k in down], list(down.values()))[0, 1]
    assert float(overall["Pearson r"]) == pytest.approx(want, abs=1e-4)
    assert "TED aggregators mean-pool, context: using 'mean-pool'" in cor


def test_short_task_names_and_baseline_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from harness.downstream.correlate import short_task
    from harness.evaluation.results import RunResult, ScoreRecord, write_results

    assert short_task("/data/ted6k/ted6k_sample.jsonl") == "ted6k_sample" and short_task("tiny") == "tiny"
    assert short_task("pkg:harness_tasks/data/ted6k_sample.jsonl.gz") == "ted6k_sample"
    scores = [ScoreRecord(encoder=e, extractor="last", aggregator="mean-pool", task="/data/sets/my_set.jsonl",
                          category=c, caption_type="all", seed=0, metric="accuracy", value=v, n=10)
              for e, c, v in [("a", "all", 0.5), ("a", "ocr", 0.4), ("b", "all", 0.6), ("b", "ocr", 0.7)]]
    write_results(RunResult(scores=scores), tmp_path / "r")
    assert main(["report", str(tmp_path / "r"), "--out", str(tmp_path / "o"), "--baseline", "b/last/mean-pool"]) == 0
    md = (tmp_path / "o" / "report.md").read_text()
    assert "task my_set" in md and "/data/sets" not in md, "tasks named by short name"
    assert "a / last / mean-pool | 50.0 (-10.0) | 40.0 (-30.0)" in md, "deltas against --baseline"
    assert main(["report", str(tmp_path / "r"), "--out", str(tmp_path / "o"), "--baseline", "b/lst/mean-pool"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Did you mean: b/last/mean-pool" in err, err
    assert main(["report", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
    assert "does not exist" in capsys.readouterr().err


CHROME_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", "--enable-logging=stderr", "--v=0"]
# Test-side instrumentation only (the report has no script): after load, log how many images decoded.
PROBE = ("<script>addEventListener('load',()=>{const i=[...document.images];console.log('PROBE images='+i.length+"
         "' broken='+i.filter(x=>!(x.complete&&x.naturalWidth>0)).length+' sections='+"
         "document.querySelectorAll('section').length)})</script>")


def _chromium(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    assert exe is not None
    return subprocess.run([exe, *CHROME_FLAGS, f"--user-data-dir={tmp / 'profile'}", *args], check=False,
                          capture_output=True, text=True, timeout=120)


def _console_errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ("CONSOLE" in line and "PROBE" not in line) or "Uncaught" in line]


def test_report_renders_in_headless_chromium(runs: dict[str, Path], tmp_path: Path) -> None:
    if not (shutil.which("chromium") or shutil.which("chromium-browser")):
        if os.environ.get("HARNESS_REQUIRE_CHROMIUM"):  # CI sets it: a missing browser must fail, not skip
            pytest.fail("HARNESS_REQUIRE_CHROMIUM is set but chromium is not on PATH (apt-get install chromium)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    page = runs["report"] / "report.html"
    shot = tmp_path / "shot.png"
    done = _chromium(tmp_path, f"--screenshot={shot}", "--window-size=1200,3000", page.as_uri())
    assert shot.is_file(), f"no screenshot: {done.stderr[-2000:]}"
    assert not _console_errors(done.stderr), _console_errors(done.stderr)
    _not_blank(shot.read_bytes(), "the screenshot")
    probe = tmp_path / "probe.html"
    probe.write_text(page.read_text().replace("</body>", PROBE + "</body>"))
    done = _chromium(tmp_path, "--dump-dom", probe.as_uri())
    assert not _console_errors(done.stderr), _console_errors(done.stderr)
    found = re.search(r"PROBE images=(\d+) broken=(\d+) sections=(\d+)", done.stderr)
    assert found, f"the page did not load: {done.stderr[-2000:]}"
    assert found.groups() == (str(len(FIGURES)), "0", str(len(SECTIONS))), found.group(0)
    assert all(f'id="{s}"' in done.stdout for s in SECTIONS), "a section is missing from the rendered DOM"
