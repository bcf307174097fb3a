#!/usr/bin/env bash
# Builds the CPU extension with AddressSanitizer + UndefinedBehaviorSanitizer into a scratch
# copy of the package and runs a focused test subset against it (any report fails the run); the
# tests' emulated CUDA launches are built sanitized too (INVOLUTION_SANITIZE=1, tests/emulation.py).
# Property tests run their 100-example profile here (scripts/test.sh runs 500 unsanitized).
# Uses the environment scripts/setup.sh made (VENV, default .venv).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
python="$root/${VENV:-.venv}/bin/python"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

echo "building the CPU extension with -fsanitize=address,undefined"
INVOLUTION_BUILD=cpu INVOLUTION_SANITIZE=1 "$python" setup.py -q build_ext \
  --build-lib "$scratch/lib" --build-temp "$scratch/temp" >"$scratch/build.log" 2>&1 \
  || { cat "$scratch/build.log"; exit 1; }
# The scratch package: the sources' Python files next to the sanitized extension.
mkdir -p "$scratch/run"
cp -r involution_cuda "$scratch/run/"
find "$scratch/run/involution_cuda" -name "*.so" -delete
cp "$scratch"/lib/involution_cuda/_C*.so "$scratch/run/involution_cuda/"
symbols=$(nm -D "$scratch"/run/involution_cuda/_C*.so)
for runtime in __asan_report_load __ubsan_handle; do  # the build really is instrumented
  grep -q "$runtime" <<<"$symbols" || { echo "the extension has no $runtime* calls: not sanitized"; exit 1; }
done

# The interpreter is not instrumented: preload the runtime. Leak checking is off (the
# interpreter's own allocations would drown it); every other report aborts the run.
export LD_PRELOAD="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libubsan.so)"
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:halt_on_error=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
export INVOLUTION_SANITIZE=1
export HYPOTHESIS_PROFILE=dev
cd "$scratch/run"  # so that `import involution_cuda` finds the sanitized copy first
"$python" - <<'PY'
import involution_cuda, pathlib
so = next(pathlib.Path(involution_cuda.__file__).parent.glob("_C*.so"))
assert "run/involution_cuda" in str(so), so
print("testing", so)
PY
"$python" -m pytest -q -p no:cacheprovider \
  "$root/tests/test_ops.py" "$root/tests/test_sequence.py" "$root/tests/test_reliability.py" \
  "$root/tests/test_properties.py" "$root/tests/test_errors.py" "$root/tests/test_cuda_kernels.py" \
  -k "not compile and not memory_stays_flat and not index_math"
