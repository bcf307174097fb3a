#!/usr/bin/env bash
# Builds the extension and runs the test suite against other torch releases than the default
# one (scripts/test.sh covers that): by default 2.4.1, the oldest release the package declares
# (torch>=2.4 in pyproject.toml); or the versions given as arguments. The files that check the
# kernels' numbers alone (property tests, emulated CUDA launches, every ISA level, tolerances,
# the CUDA performance model: the same code whatever torch runs it) run in scripts/test.sh only.
# (2.11.0, the lent GPU machines' torch, is the CUDA build's: scripts/check_cuda_build.sh tests
# it.) Tests of features an older release lacks skip with the reason (tests/conftest.py,
# needs_torch). Each version gets its own environment (.venv-torch-<version>, reused when
# present) and its own copy of the sources (build/torch-<version>/), so the in-place builds
# never overwrite one another. CPU builds: PyPI's torch wheels for these versions are CUDA
# builds, which run their CPU path here.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
minimum=$(sed -n 's/.*"torch>=\([0-9.]*\)".*/\1/p' pyproject.toml)
[ "$minimum" = 2.4 ] || { echo "pyproject.toml declares torch>=$minimum: update the default versions here"; exit 1; }
versions=("$@")
[ ${#versions[@]} -gt 0 ] || versions=(2.4.1)
for version in "${versions[@]}"; do
  echo "== torch $version"
  copy="$root/build/torch-$version"
  rm -rf "$copy" && mkdir -p "$copy"
  # The sources as they are in this checkout: tracked and untracked, not ignored.
  git ls-files -z --cached --others --exclude-standard \
    | (while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done) \
    | tar --null -T - -cf - | tar -xf - -C "$copy"
  (
    cd "$copy"
    VENV="$root/.venv-torch-$version" TORCH_PACKAGE="torch==$version" INVOLUTION_BUILD=cpu \
      bash scripts/setup.sh
    "$root/.venv-torch-$version/bin/python" -c \
      "import torch; assert torch.__version__.startswith('$version'), torch.__version__"
    HYPOTHESIS_PROFILE=dev "$root/.venv-torch-$version/bin/python" -m pytest -q -p no:cacheprovider tests \
      --ignore tests/test_properties.py --ignore tests/test_cuda_kernels.py \
      --ignore tests/test_cpu_isa.py --ignore tests/test_tolerances.py \
      --ignore tests/test_kernel_model.py
  )
done
