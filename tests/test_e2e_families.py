"""Issue 4's 'done means': one run over tiny local checkpoints of every family, named FAMILY:PATH."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("transformers")

from encoder_fixtures import build_tiny_checkpoint  # noqa: E402

from harness.cli.main import main  # noqa: E402

FAMILIES = {"t5": "t5", "umt5": "t5", "causal-lm": "causal-lm", "mllm": "mllm", "clip": "clip", "altclip": "altclip",
            "bert": "bert"}


def test_every_family_runs_end_to_end(tmp_path: Path) -> None:
    names = [f"{family}:{build_tiny_checkpoint(build, tmp_path)}" for build, family in FAMILIES.items()]
    out = tmp_path / "out"
    rc = main(["run", "--encoders", ",".join(names), "--tasks", "ted6k-sample", "--limit", "2",
               "--extract", "last,norm-avg,learned", "--preset", "baby", "--max-pairs", "16", "--output", str(out)])
    assert rc == 0
    res = json.loads((out / "results.json").read_text())
    encoders = res["provenance"]["encoders"]
    assert sorted(e["family"] for e in encoders.values()) == sorted(FAMILIES.values())
    overall = [s for s in res["scores"] if s["category"] == "all" and s["caption_type"] == "all"]
    assert len(overall) == 3 * len(FAMILIES) and all(s["n"] == 18 for s in overall), "9 categories x --limit 2"
    for name, enc in encoders.items():
        views = {k: v["view"] for k, v in enc["extractors"].items()}
        first = views["norm-avg"].split(":")[2].split(",")[0]
        expect = "1" if enc["family"] in ("causal-lm", "mllm") else "0"
        assert first == expect, f"{name}: norm-avg must {'drop' if expect == '1' else 'keep'} the embedding layer"
