#!/usr/bin/env bash
# GPU check of the toy-t2i `gpu` config (64 px, 26 M-parameter UNet, bf16 autocast): trains a short
# run of it per row through `harness score` (the fake test encoder, so no weights are needed), prints
# seconds per step and the time 12,000 steps (the config) would take, and that the conditioned model's
# scores come back.  diffusers must be importable there (pip install diffusers).
#   bash bench/gpu_generator_check.sh   (on a GPU machine; ~3 minutes)
set -uo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
STEPS=${STEPS:-300}
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
"$PY" -c "import diffusers" 2>/dev/null || "$PY" -m pip install -q diffusers >/dev/null 2>&1 || echo "diffusers missing"
"$PY" -m pip install -q --no-deps --no-build-isolation -e . >/dev/null 2>&1 || echo "editable install failed"
"$PY" - "$STEPS" <<'PY'
import sys, time
import torch
from harness import ScoredRow
from harness.api import ScoreContext
from harness.testing import FakeEncoder
from harness_plugins.generator import make_config
from harness_plugins.generator._scorer import ToyT2IScorer

steps = int(sys.argv[1])
cfg = make_config("gpu", steps=steps, n_train=4096, n_heldout=128)
print("device", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu", "steps", steps)
t0 = time.perf_counter()
done = []
scorer = ToyT2IScorer(cfg, encoders={"fake": FakeEncoder()}, cache_dir="none",
                      progress=lambda d, n: type("B", (), {"advance": lambda self, k: done.append(time.perf_counter())})())
scorer.bind(ScoreContext.create(encoders={"fake": FakeEncoder()}))
metrics = scorer.score(ScoredRow("fake", "learned"))
total = time.perf_counter() - t0
train = done[-1] - done[min(10, len(done) - 1)]
per_step = train / max(1, len(done) - 1 - min(10, len(done) - 1))
print(f"train: {per_step * 1000:.1f} ms/step (batch {cfg.batch}, 64 px) -> 12,000 steps ~{per_step * 12000 / 60:.1f} min")
print(f"whole row incl. sampling {cfg.n_heldout} prompts x {cfg.sample_steps} steps with CFG: {total:.0f} s")
for m in metrics:
    print(m.benchmark, m.metric, round(m.value, 4))
PY
