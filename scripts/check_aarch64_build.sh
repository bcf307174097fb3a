#!/usr/bin/env bash
# Proves that the CPU sources build for aarch64: compiles every C++ source of the CPU build with
# Debian's g++-aarch64-linux-gnu against torch's headers (from the environment scripts/setup.sh
# made) into aarch64 objects. Nothing is linked or run: there is no aarch64 torch or machine
# here. The x86 ISA entry points (csrc/cpu/dispatch.h) are guarded to x86-64, so aarch64 builds
# the portable kernels.
set -euo pipefail
cd "$(dirname "$0")/.."
python="${VENV:-.venv}/bin/python"
compiler="${AARCH64_CXX:-aarch64-linux-gnu-g++}"
if ! command -v "$compiler" >/dev/null; then
  apt-get update -qq && apt-get install -y -qq g++-aarch64-linux-gnu >/dev/null
fi
read -r -a torch_includes < <("$python" -c "from torch.utils.cpp_extension import include_paths; print(' '.join(include_paths()))")
python_include=$("$python" -c "import sysconfig; print(sysconfig.get_paths()['include'])")
abi=$("$python" -c "import torch; print(int(torch._C._GLIBCXX_USE_CXX11_ABI))")
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
flags=(-std=c++17 -O2 -fopenmp -fPIC -Wall -Werror -Wno-unused-function -DTORCH_EXTENSION_NAME=_C
       -DTORCH_API_INCLUDE_EXTENSION_H "-D_GLIBCXX_USE_CXX11_ABI=$abi" -Icsrc)
for include in "${torch_includes[@]}"; do flags+=(-isystem "$include"); done
flags+=(-isystem "$python_include")
compile() {  # compile SOURCE: one aarch64 object, checked to be one
  local object="$out/$(echo "$1" | tr / _).o"
  "$compiler" "${flags[@]}" -c "$1" -o "$object"
  file "$object" | grep -q "ARM aarch64" || { echo "$1: not an aarch64 object"; return 1; }
}
# One compiler per core; a failing source fails the script (wait returns its status).
sources=(csrc/ops.cpp csrc/checks.cpp csrc/python_module.cpp csrc/cpu/*.cpp csrc/autocast/*.cpp
         csrc/autograd/*.cpp)
running=()
for source in "${sources[@]}"; do
  compile "$source" &
  running+=($!)
  if [ ${#running[@]} -ge "$(nproc)" ]; then
    wait "${running[0]}"
    running=("${running[@]:1}")
  fi
done
for job in "${running[@]}"; do wait "$job"; done
echo "aarch64: ${#sources[@]} CPU sources compiled with $("$compiler" --version | head -n 1)"
