#!/usr/bin/env bash
# GPU check of the CUDA paths after the layout change: aggregators (context, trained mean-pool, learned
# weights with their own lr, the official preset's bf16 autocast and NT-Xent) train and embed on CUDA;
# the runner and CLI tests pass with the GPU visible; a fake-encoder run with --preset official.
#   bash bench/gpu_refactor_check.sh   (on a GPU machine; ~3 minutes)
set -uo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
"$PY" -c "import torch, transformers, pluggy, rich, scipy; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'transformers', transformers.__version__, 'scipy', scipy.__version__)"
"$PY" -m pip install -q --no-deps --no-build-isolation -e . >/dev/null 2>&1 || echo "editable install failed"
"$PY" -m pytest -q -x -p no:cacheprovider tests/test_aggregators.py tests/test_runner.py tests/test_results.py \
    tests/test_checkpoints.py tests/test_pairs.py tests/test_cli.py tests/test_testing.py 2>&1 | tail -15
out=${OUT:-/tmp}/gpu_official
"$PY" -m harness.cli.main -p harness.testing run --encoders fake --tasks tiny --train-pairs demo --max-pairs 512 \
    --preset official --extract last,learned --seeds 0,1 --bootstrap 200 --output "$out" 2>&1 | tail -12
"$PY" - "$out" <<'PY'
import json, sys
res = json.load(open(sys.argv[1] + "/results.json"))
for t in res["training"]:
    print(t["extractor"], t["seed"], "device", t["config"]["device"], "precision", t["config"]["precision"],
          "loss", t["first_loss"], "->", t["final_loss"], "alpha", t["layer_weights"] and [round(a, 3) for a in t["layer_weights"]])
PY
