#!/usr/bin/env bash
# End-to-end on a GPU machine with no hub access: encoder in bf16 on CUDA, features cached,
# aggregators trained on CUDA.  Uses a Qwen3-style model (8 layers, width 1024) built from a
# config with random weights, so accuracy is meaningless; timings and the CUDA path are the point.
#   bash bench/gpu_e2e.sh OUT_DIR
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-/tmp/gpu_e2e}
mkdir -p "$out"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
export HARNESS_CACHE_DIR=${HARNESS_CACHE_DIR:-/tmp/harness-gpu-cache}
PY=${PYTHON:-python3}
"$PY" -c "import harness_plugins.encoders.hf" 2>/dev/null || "$PY" -m pip install -q --no-deps --no-build-isolation -e . >/dev/null
folder=$("$PY" - <<'PY'
import sys, tempfile
from pathlib import Path
sys.path.insert(0, "bench")
from gpu_check import _minilm_folder, _qwen3_folder
root = Path(tempfile.mkdtemp())
print(_qwen3_folder(root, _minilm_folder(root)))
PY
)
folder=$(printf '%s\n' "$folder" | tail -n 1)  # the builders print notes before the path
run() { "$PY" -m harness.cli.main run --encoders "causal-lm:$folder" --tasks ted6k-sample --dtype ${DTYPE:-bfloat16} --device ${DEVICE:-cuda} ${EXTRA:-} \
          --batch-size auto "$@"; }
echo "== cold: encode + train last,norm-avg,learned on all shipped pairs (2 epochs)"
SECONDS=0; run --extract last,norm-avg,learned --max-pairs ${MAXP:-0} --output "$out/cold"; echo "cold seconds: $SECONDS"
echo "== warm: new seed, same features (expect 0 texts encoded)"
SECONDS=0; run --extract last,norm-avg,learned --max-pairs ${MAXP:-0} --seeds 1 --output "$out/warm"; echo "warm seconds: $SECONDS"
