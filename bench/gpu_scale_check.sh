#!/usr/bin/env bash
# GPU scale check for issues 15 and 23, one prepared run (estimated 5-6 minutes on one H200, at most 8; no
# hub access; ~15 GB of disk at a time): every figure of issue 23's tables with PASS/FAIL per target --
#   ceilings   disk write + fsync GB/s, bf16 matmul TFLOP/s
#   features   raw forward; harness with cache fsync group (harness / raw <= 1.15), fsync none, no cache
#              (<= the cache path), learned stack -- Qwen3-style 3.6B model from a config, 1,500 texts
#   training   official aggregator steps/s at widths 2560 and 4096, features GPU-resident vs RAM vs cache
#              (RAM and cache >= 85% of GPU-resident)
#   generator  toy-t2i gpu config: ms per step and the projected row (<= 10 minutes); needs diffusers
# Exit status 1 when a target fails or could not be checked.  See bench/gpu_scale_check.py.
#   bash bench/gpu_scale_check.sh [--only features,training] [--shape 4b|1.7b|0.6b] [--repeat 2]
#   bash bench/gpu_scale_check.sh --cpu-smoke      # the same steps on tiny sizes on the CPU (checks the script)
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
if ! "$PY" -c "import harness_plugins.encoders.hf" 2>/dev/null; then
    # the plugins package is mapped from plugins/ by the install; no network needed
    "$PY" -m pip install -q --no-deps --no-build-isolation -e . >/dev/null
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || true
# the generator section needs diffusers (the `gen` extra); without it that target is NOT CHECKED
"$PY" -c "import diffusers" 2>/dev/null || "$PY" -m pip install -q "diffusers>=0.30" >/dev/null 2>&1 \
    || echo "diffusers is not installed and could not be: the generator section will say NOT CHECKED"
exec "$PY" bench/gpu_scale_check.py "$@"
