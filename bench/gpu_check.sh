#!/usr/bin/env bash
# Short GPU check (< 5 minutes on one H100): bf16, SDPA, --batch-size auto, throughput and peak GPU memory
# for MiniLM and a tiny Qwen3-style model built from a config.  No hub access needed.
#   bash bench/gpu_check.sh [--n-texts 4000] [--oom-headroom-gib 1.0]
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
if ! "$PY" -c "import harness_plugins.encoders.hf" 2>/dev/null; then
    # the plugins package is mapped from plugins/ by the install; no network needed
    "$PY" -m pip install -q --no-deps --no-build-isolation -e . >/dev/null
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
exec "$PY" bench/gpu_check.py "$@"
