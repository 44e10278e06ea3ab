"""torchrun with 2 CPU ranks (gloo) gives the single-process numbers: scores, loss curve and weights."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
if not torch.distributed.is_available():
    pytest.skip("torch built without torch.distributed", allow_module_level=True)

from harness.cli import main as cli  # noqa: E402

pytestmark = pytest.mark.slow


def _pairs(path: Path, n: int = 37) -> Path:
    """``n`` caption pairs: with batch 8, the last batch of 5 splits unevenly over 2 ranks (3 + 2, padded)."""
    rng = random.Random(0)
    colors, things = ["red", "blue", "green", "black", "white", "yellow"], ["cup", "dog", "car", "lamp", "boat", "kite"]
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(n):
            c1, c2 = rng.sample(colors, 2)
            t1, t2 = rng.sample(things, 2)
            rec = {"a": f"a {c1} {t1} next to a {c2} {t2}", "b": f"the {t2} is {c2} and the {t1} is {c1}",
                   "group": f"g{i % 30}"}  # some groups repeat: same-group masking must see the global batch
            fh.write(json.dumps(rec) + "\n")
    return path


def _args(tmp: Path, pairs: Path, name: str) -> list[str]:
    return ["-p", "harness.testing", "-p", "no:hf", "run", "--encoders", "fake", "--tasks", "tiny",
            "--train-pairs", str(pairs), "--preset", "baby", "--epochs", "2", "--bootstrap", "0",
            "--extract", "last,learned", "--cache-dir", str(tmp / name / "feat"), "--ckpt-dir", str(tmp / name / "ck"),
            "--output", str(tmp / name / "out")]


def test_two_ranks_match_single_process(tmp_path: Path) -> None:
    pairs = _pairs(tmp_path / "pairs.jsonl")
    assert cli.main(_args(tmp_path, pairs, "single")) == 0
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1", "GLOO_SOCKET_IFNAME": "lo"}
    env.pop("WORLD_SIZE", None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone",
           "-m", "harness.cli.main", *_args(tmp_path, pairs, "ddp")]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"torchrun failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert "fake: 91 texts encoded" in proc.stdout and proc.stdout.count("texts encoded") == 1, \
        "rank 0 alone prints, counting the texts of both ranks"

    one, two = (json.loads((tmp_path / n / "out" / "results.json").read_text()) for n in ("single", "ddp"))
    assert [(r["extractor"], r["category"], r["value"]) for r in one["scores"]] == \
           [(r["extractor"], r["category"], r["value"]) for r in two["scores"]], "accuracies differ"
    for a, b in zip(one["training"], two["training"], strict=True):
        assert a["steps"] == b["steps"] == 10
        assert a["losses"] == pytest.approx(b["losses"], abs=1e-5), f"{a['extractor']}: loss curves differ"
        wa, wb = torch.load(a["checkpoint"]), torch.load(b["checkpoint"])
        for k in wa:
            torch.testing.assert_close(wa[k], wb[k], atol=1e-5, rtol=0, msg=f"{a['extractor']}: weight {k} differs")

    shards = list((tmp_path / "ddp" / "feat").glob("*/*.tedf"))
    writers = {p.name.split("-")[1] for p in shards}
    assert len(writers) == 2, f"expected shards from 2 ranks (data-parallel encoding), got pids {writers}"
    assert len(list((tmp_path / "ddp" / "ck" / "aggregators").glob("*.pt"))) == 2, "only rank 0 writes checkpoints"
