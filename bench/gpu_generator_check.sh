#!/usr/bin/env bash
# GPU check of the toy-t2i `gpu` config alone (64 px UNet, bf16 autocast): the generator section of
# bench/gpu_scale_check.sh -- a short run of STEPS steps (default 200) through the scorer `harness score`
# uses (the fake test encoder, so no weights are needed), its full held-out set sampled and checked; prints
# ms per step, the config's steps at that rate and the whole row projected, PASS/FAIL against <= 10 minutes.
# diffusers must be importable there (pip install diffusers).
#   bash bench/gpu_generator_check.sh   (on a GPU machine; ~1-2 minutes)
#   bash bench/gpu_generator_check.sh --cpu-smoke   (the smoke config on the CPU: checks the script only)
#   bash bench/gpu_generator_check.sh --full   (the cpu and the gpu config's whole rows on the cpu config's
#       held-out prompts: measured minutes and checker accuracy of each; ~11 minutes at the target)
set -uo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
STEPS=${STEPS:-200}
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
"$PY" -c "import diffusers" 2>/dev/null || "$PY" -m pip install -q diffusers >/dev/null 2>&1 || echo "diffusers missing"
"$PY" -c "import harness_plugins.generator" 2>/dev/null \
    || "$PY" -m pip install -q --no-deps --no-build-isolation -e . >/dev/null 2>&1 || echo "editable install failed"
SECTION=generator
if [ "${1:-}" = "--full" ]; then SECTION=generator-full; shift; fi
exec "$PY" bench/gpu_scale_check.py --only "$SECTION" --gen-steps "$STEPS" "$@"
