"""Encoder facts decided once (EncoderInfo.max_length / train_max_length / template) and printed the same
by the terminal, results.json and the report: a CLIP asked for 512 tokens is cut at its 77 positions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("transformers")

from encoder_fixtures import build_tiny_checkpoint  # noqa: E402

from harness.cli.main import main  # noqa: E402

TINY_PAIRS = "pkg:harness/testing_data/tiny_pairs.jsonl"


def test_capped_length_is_the_same_everywhere(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clip = build_tiny_checkpoint("clip", tmp_path)
    out = tmp_path / "out"
    assert main(["-p", "harness.testing", "run", "--encoders", f"clip:{clip}", "--tasks", "tiny", "--max-length", "512",
                 "--train-pairs", TINY_PAIRS, "--preset", "baby", "--extract", "last", "--bootstrap", "0",
                 "--null-resamples", "0", "--no-cache", "--ckpt-dir", str(tmp_path / "ck"), "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    enc = next(iter(json.loads((out / "results.json").read_text())["provenance"]["encoders"].values()))
    assert enc["options"]["max_length"] == 512, "the asked length is recorded as asked"
    assert (enc["max_length"], enc["train_max_length"], enc["template"]) == (77, 77, "granted-caption")
    assert "evaluation texts truncated at 77 tokens" in printed and "training texts truncated at 77" in printed
    assert "512" not in printed.split("texts encoded")[-1], "the terminal must not print the asked 512"
    provenance = (out / "report.md").read_text().split("## Provenance")[1]
    row = next(line for line in provenance.splitlines() if line.startswith(f"| clip:{clip} | clip |"))
    assert "| 77 |" in row and "| 512 |" not in row, row
