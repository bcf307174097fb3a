#!/usr/bin/env bash
# RedNet in timm's registry (tests/test_timm.py) where timm can run: timm needs torchvision, and
# PyPI's torchvision imports only with the torch it pairs with, a CUDA build (a CPU torch cannot
# import it). Installs timm and torchvision 0.26.0 into the CUDA-torch environment of
# scripts/check_cuda_build.sh (.venv-cuda, torch 2.11.0; set up here if it is missing), checks
# that the registry imports (so the tests cannot skip), and runs the tests.
# Settings: VENV (default .venv-cuda), TORCHVISION_PACKAGE (default torchvision==0.26.0, the
# release paired with torch 2.11).
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${VENV:-.venv-cuda}"

if ! "$venv/bin/python" -c "import involution_cuda" 2>/dev/null; then
  VENV="$venv" TORCH_PACKAGE=torch==2.11.0 INVOLUTION_BUILD="${INVOLUTION_BUILD:-auto}" bash scripts/setup.sh
fi
torch_version=$("$venv/bin/python" -c "from importlib.metadata import version; print(version('torch').split('+')[0])")
# torch pinned to the installed one: pip must not swap it for another to satisfy torchvision.
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
  "torch==$torch_version" "${TORCHVISION_PACKAGE:-torchvision==0.26.0}" "timm>=1.0"
"$venv/bin/python" - <<'PY'
import timm, torch, torchvision
import involution_cuda.models.timm_registry  # noqa: F401  (registers the models)
assert "rednet50" in timm.list_models("rednet*")
print(f"timm {timm.__version__}, torchvision {torchvision.__version__}, torch {torch.__version__}:",
      ", ".join(timm.list_models("rednet*")))
PY
"$venv/bin/python" -m pytest -q -p no:cacheprovider tests/test_timm.py
