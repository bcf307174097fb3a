#!/usr/bin/env bash
# Proves the packaging in fresh environments, following the README's install lines (CPU builds):
#  1. `pip install --no-build-isolation .` as written, in a fresh venv;
#  2. the source distribution holds every source the build needs: made with `setup.py sdist`
#     and built into a wheel with `pip wheel --no-build-isolation <sdist>` (the build that
#     `pip install <sdist>` runs);
#  3. that wheel installs and loads in another fresh venv (torch installed, no compiler step).
# Each install ends with a smoke test run outside the checkout: the op against the reference.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
torch_package="${TORCH_PACKAGE:-torch==2.13.0}"

fresh() {  # fresh NAME: a new venv with torch and the README's build requirement
  python3 -m venv "$work/$1"
  "$work/$1/bin/python" -m pip install --quiet --disable-pip-version-check "$torch_package" "setuptools>=70.1"
}

smoke() {  # smoke NAME: the installed package, imported away from the checkout
  (cd "$work" && "$work/$1/bin/python" - <<'PY'
import torch, involution_cuda
from involution_cuda import reference
assert "site-packages" in involution_cuda.__file__, involution_cuda.__file__
x, w = torch.randn(2, 8, 9, 7), torch.randn(2, 2, 3, 5, 9, 7)
torch.testing.assert_close(involution_cuda.involution(x, w), reference.involution(x, w))
print("installed and working:", involution_cuda.__file__)
PY
  )
}

export INVOLUTION_BUILD=cpu
echo "== pip install --no-build-isolation ."
fresh checkout
"$work/checkout/bin/python" -m pip install --quiet --disable-pip-version-check --no-build-isolation .
smoke checkout

echo "== sdist, and a wheel built from it"
"$work/checkout/bin/python" setup.py -q sdist -d "$work/dist" >"$work/sdist.log" 2>&1 || { cat "$work/sdist.log"; exit 1; }
(cd "$work" && "$work/checkout/bin/python" -m pip wheel --quiet --disable-pip-version-check \
  --no-build-isolation --no-deps "$work"/dist/involution_cuda-*.tar.gz -w "$work/dist")

echo "== the wheel, installed"
fresh wheel
"$work/wheel/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps "$work"/dist/involution_cuda-*.whl
smoke wheel
rm -rf build/lib* build/temp* build/bdist* involution_cuda.egg-info  # this script's build leftovers
