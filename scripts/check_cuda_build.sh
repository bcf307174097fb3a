#!/usr/bin/env bash
# Proves the CUDA build on a machine without a GPU:
#  1. a full CUDA-enabled build against the lent GPU machines' torch, 2.11.0+cu130 (PyPI's
#     wheel, own venv .venv-cuda), links, imports, reports the CUDA kernels registered, and
#     passes the tests of the op's registration, dispatch, errors and torch integration
#     (compile, export, ONNX) on that torch (CUDA cases skip). The rest of the suite runs on
#     2.13 and 2.4.1 (scripts/test.sh, scripts/check_torch_versions.sh), and all of it on a
#     GPU machine (scripts/gpu_suite.sh all-tests);
#  2. scripts/check_cuda_kernels.sh: every .cu compiles for sm_80 and sm_90 with warnings as
#     errors, no kernel spills registers, the fast channels_last kernels use 128-bit loads, and
#     the static performance model (scripts/kernel_model.py) finds every fast kernel within its
#     budget or a listed exception.
set -euo pipefail
cd "$(dirname "$0")/.."
export CUDA_HOME="${CUDA_HOME:-/usr/local/cuda}"

VENV=.venv-cuda TORCH_PACKAGE=torch==2.11.0 INVOLUTION_BUILD=cuda bash scripts/setup.sh
# The disassembler for the machine-code checks (wheels, no GPU needed).
.venv-cuda/bin/python -m pip install --quiet --disable-pip-version-check \
  nvidia-cuda-cuobjdump nvidia-cuda-nvdisasm
PYTHON=.venv-cuda/bin/python bash scripts/check_cuda_kernels.sh
.venv-cuda/bin/python - <<'PY'
import torch, involution_cuda
assert torch.version.cuda, "expected a CUDA build of torch"
assert involution_cuda.has_cuda_kernels(), "the CUDA kernels are not registered"
print(f"CUDA kernels registered (torch {torch.__version__}, CUDA {torch.version.cuda})")
PY
.venv-cuda/bin/python -m pytest -q -p no:cacheprovider tests/test_ops.py tests/test_errors.py \
  tests/test_bad_input_catalogue.py tests/test_module.py tests/test_sequence.py \
  tests/test_integration.py tests/test_versions.py
