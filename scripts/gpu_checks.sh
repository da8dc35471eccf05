#!/usr/bin/env bash
# The checks only a CUDA machine can make, in one go, meant to be run once on a lent GPU from the repository root:
#   bash scripts/gpu_checks.sh [OUT_DIR]        (OUT_DIR: where the benchmark's JSON goes; default outputs/bench)
# 1. the tests marked `gpu` (tests/test_gpu.py: the trainer's bf16 autocast + channels_last in use, IR-50 at 112 px
#    and POSTER v1 forward/backward, two-GPU data-parallel training when there are two, an SD-shaped 512-px UNet
#    sampled at fp16) - they skip, counted as skipped, where CUDA is missing;
# 2. benchmarks/bench_models.py --device cuda (training throughput, bf16 + channels_last vs the fp32 reference).
# Each step prints its wall time; the exit status is 1 when either failed. Card, counts and times belong in
# benchmarks/README.md (docs/real-data.md, "The paper's scale: presets").
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
OUT=${1:-outputs/bench}
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 OMP_WAIT_POLICY=PASSIVE

"$PY" - <<'PY' || exit 1
import torch
if not torch.cuda.is_available():
    raise SystemExit("scripts/gpu_checks.sh: no CUDA device: these checks need one")
names = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
print(f"device: {torch.cuda.device_count()} x [{names}] | torch {torch.__version__} | CUDA {torch.version.cuda}")
PY

status=0
step() {  # step NAME COMMAND...: run it, print its wall time and exit status
    local name=$1; shift
    local t0; t0=$(date +%s.%N)
    echo "== $name: $*"
    "$@"; local rc=$?
    echo "== $name: exit $rc, $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s"
    [ "$rc" -eq 0 ] || status=1
}
step "gpu tests" "$PY" -m pytest -m gpu -q -rs -p no:cacheprovider tests/test_gpu.py
step "bench_models (cuda)" "$PY" benchmarks/bench_models.py --device cuda --out "$OUT/bench_models_cuda.json"
exit $status
