#!/usr/bin/env bash
# Proves the packaging in fresh environments, following the README's install lines (CPU builds),
# with one compile of the extension:
#  1. the source distribution, made with `setup.py sdist` and unpacked, holds every source the
#     build needs: the README's `pip install --no-build-isolation .` runs in the unpacked tree;
#  2. `pip wheel --no-build-isolation .` in the same tree makes a wheel (pip builds in the tree,
#     so this reuses step 1's compiled objects);
#  3. that wheel installs and loads in another fresh venv (torch installed, no compiler step).
# Each install ends with a smoke test run outside the checkout: the op against the reference.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
torch_package="${TORCH_PACKAGE:-torch==2.13.0}"
pip_flags=(--quiet --disable-pip-version-check)

fresh() {  # fresh NAME: a new venv with torch and the README's build requirement
  python3 -m venv "$work/$1"
  "$work/$1/bin/python" -m pip install "${pip_flags[@]}" "$torch_package" "setuptools>=70.1"
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
echo "== the source distribution"
fresh build
"$work/build/bin/python" setup.py -q sdist -d "$work/dist" >"$work/sdist.log" 2>&1 || { cat "$work/sdist.log"; exit 1; }
rm -rf involution_cuda.egg-info  # the sdist's leftover in the checkout
mkdir "$work/unpacked"
tar -xzf "$work"/dist/involution_cuda-*.tar.gz -C "$work/unpacked"
tree=$(echo "$work"/unpacked/involution_cuda-*)

echo "== pip install --no-build-isolation ., in the unpacked source distribution"
(cd "$tree" && "$work/build/bin/python" -m pip install "${pip_flags[@]}" --no-build-isolation .)
smoke build

echo "== pip wheel --no-build-isolation ., in the same tree"
(cd "$tree" && "$work/build/bin/python" -m pip wheel "${pip_flags[@]}" --no-build-isolation --no-deps . -w "$work/dist")

echo "== the wheel, installed"
fresh wheel
"$work/wheel/bin/python" -m pip install "${pip_flags[@]}" --no-deps "$work"/dist/involution_cuda-*.whl
smoke wheel
