#!/usr/bin/env bash
# Proves the CUDA build on a machine without a GPU:
#  1. every .cu compiles with nvcc for sm_80 and sm_90 with warnings as errors and no register
#     spills (torch's half-conversion flags, no torch headers needed);
#  2. a full CUDA-enabled build against the CUDA torch wheel (own venv, .venv-cuda) links,
#     imports, reports the CUDA kernels registered, and passes the tests (CUDA cases skip).
set -euo pipefail
cd "$(dirname "$0")/.."
export CUDA_HOME="${CUDA_HOME:-/usr/local/cuda}"
nvcc="$CUDA_HOME/bin/nvcc"
flags=(-std=c++17 -O3 -c
       -D__CUDA_NO_HALF_OPERATORS__ -D__CUDA_NO_HALF_CONVERSIONS__
       -D__CUDA_NO_BFLOAT16_CONVERSIONS__ -D__CUDA_NO_HALF2_OPERATORS__
       -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90
       -Werror all-warnings -Xcompiler -Wall,-Wextra,-Werror -Xptxas -v)
objects=$(mktemp -d)
trap 'rm -rf "$objects"' EXIT
for source in csrc/cuda/*.cu; do
  echo "nvcc (sm_80, sm_90, -Werror): $source"
  if ! report=$("$nvcc" "${flags[@]}" "$source" -o "$objects/$(basename "$source").o" 2>&1); then
    echo "$report"
    exit 1
  fi
  if grep -E "[1-9][0-9]* bytes spill (stores|loads)" <<<"$report"; then
    echo "register spills in $source"
    exit 1
  fi
done

VENV=.venv-cuda TORCH_PACKAGE=torch==2.14.1 INVOLUTION_BUILD=cuda bash scripts/setup.sh
.venv-cuda/bin/python - <<'PY'
import torch, involution_cuda
assert torch.version.cuda, "expected a CUDA build of torch"
assert involution_cuda.has_cuda_kernels(), "the CUDA kernels are not registered"
print(f"CUDA kernels registered (torch {torch.__version__}, CUDA {torch.version.cuda})")
PY
.venv-cuda/bin/python -m pytest -q tests
