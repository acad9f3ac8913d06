#!/usr/bin/env bash
# The GPU check, on a host with an NVIDIA GPU: installs what it needs, then prints one table.
#
#   benchmarks/gpu_check.sh                 # pytest -m gpu, GEMM 4096^3 beside cuBLAS, models beside ORT CUDA
#   benchmarks/gpu_check.sh --dry-run       # any machine: installs nothing, prints the plan
#   GPU_CHECK_BUDGET=480 PYTHON=.venv/bin/python benchmarks/gpu_check.sh --trials 32 --records gpu.db
#
# Everything after the script's name goes to benchmarks/gpu_check.py (see its --help). The
# whole check stays within GPU_CHECK_BUDGET seconds (default 480: 8 minutes), installs included.
set -euo pipefail

cd "$(dirname "$0")/.."
start=$(date +%s)
budget=${GPU_CHECK_BUDGET:-480}
if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi

dry=0
for arg in "$@"; do [[ "$arg" == "--dry-run" ]] && dry=1; done

if [[ $dry == 0 ]]; then
    command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
    # tecomp with its test extras, pycuda for the runtime; the peers only if missing (torch is large)
    "$PYTHON" -m pip install -q -e '.[test,cuda]'
    "$PYTHON" -c 'import onnxruntime as o, sys; sys.exit("CUDAExecutionProvider" not in o.get_available_providers())' \
        || "$PYTHON" -m pip install -q onnxruntime-gpu \
        || echo "gpu_check: onnxruntime-gpu did not install; models are compared with ORT's CPU provider" >&2
    "$PYTHON" -c 'import torch' 2>/dev/null || "$PYTHON" -c 'import cupy' 2>/dev/null \
        || "$PYTHON" -m pip install -q cupy-cuda12x \
        || echo "gpu_check: neither torch nor cupy: GEMM is shown without cuBLAS" >&2
    "$PYTHON" -c 'import tecomp, sys; sys.exit(not tecomp.cuda(0).exist)' \
        || { echo "gpu_check: pycuda cannot reach a GPU here (driver? CUDA toolkit?)" >&2; exit 2; }
fi

left=$(( budget - ($(date +%s) - start) ))
(( left > 60 )) || { echo "gpu_check: installing took the whole budget" >&2; exit 3; }
exec timeout --signal=INT "$left" "$PYTHON" benchmarks/gpu_check.py --budget "$(( left - 10 ))" "$@"
