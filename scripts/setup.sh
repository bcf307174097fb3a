#!/usr/bin/env bash
# Creates (or reuses) a virtual environment, installs torch and the test / benchmark tools, and
# builds the extension in place. Settings (environment variables):
#   VENV            the environment's folder (default .venv)
#   TORCH_PACKAGE   what to install when the environment has no torch (default torch==2.13.0,
#                   the CPU build; torch==2.11.0 is a CUDA build, +cu130)
#   INVOLUTION_BUILD  auto | cpu | cuda (see setup.py)
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${VENV:-.venv}"
python="${PYTHON:-python3}"

[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
pip=("$venv/bin/python" -m pip install --quiet --disable-pip-version-check)
if ! "$venv/bin/python" -c "import torch" 2>/dev/null; then
  "${pip[@]}" "${TORCH_PACKAGE:-torch==2.13.0}"
fi
# setuptools >= 70.1 builds wheels itself (a fresh venv's setuptools needs the `wheel` package);
# torch named at its installed version, so that pip keeps to torch's own setuptools bound (read from
# its metadata: importing torch before numpy is installed prints a warning).
torch_version=$("$venv/bin/python" -c "from importlib.metadata import version; print(version('torch').split('+')[0])")
"${pip[@]}" "torch==$torch_version" "setuptools>=70.1" pytest hypothesis numpy tqdm matplotlib onnx onnxruntime onnxscript ninja
"${pip[@]}" --no-build-isolation --no-deps -e .
"$venv/bin/python" -c "import involution_cuda, torch; print('involution_cuda built against torch', torch.__version__, '| CUDA kernels:', involution_cuda.has_cuda_kernels())"
