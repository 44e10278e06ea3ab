#!/usr/bin/env bash
# GPU scale check for issue 15 (about 4 minutes on one H200, at most 6; no hub access): harness feature pass
# / raw forward at --batch-size auto with bf16 features and fsync per shard group, on a Qwen3-style ~3.6B
# model built from a config (random weights); PASS/FAIL against <= 1.2.  Then aggregator steps/s on CUDA
# under bf16 autocast at widths 2560, 4096, 5120, and from the disk cache vs RAM.  See bench/gpu_scale_check.py.
#   bash bench/gpu_scale_check.sh [--shape 4b|1.7b|0.6b] [--n-texts 1500] [--repeat 2] [--with-shard]
#   bash bench/gpu_scale_check.sh --cpu-smoke      # a dry run of the same steps on a tiny config, on the CPU
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
if ! "$PY" -c "import harness_plugins.encoders.hf" 2>/dev/null; then
    # the plugins package is mapped from plugins/ by the install; no network needed
    "$PY" -m pip install -q --no-deps --no-build-isolation -e . >/dev/null
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || true
exec "$PY" bench/gpu_scale_check.py "$@"
