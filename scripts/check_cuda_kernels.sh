#!/usr/bin/env bash
# Proves properties of the CUDA kernels that need no GPU, from the compiler's own reports:
#  1. every .cu under csrc/cuda compiles with nvcc for sm_80 and sm_90 with warnings as errors
#     (torch's half-conversion flags, no torch headers needed);
#  2. no kernel spills registers (ptxas -v);
#  3. in the sm_90 machine code (cuobjdump --dump-sass), every fast channels_last kernel with
#     16-byte packs (run_items<fast::*ChannelsLast<T, N>>, N > 1; all 12 of them must be seen)
#     and every row kernel (fast::*RowsChannelsLast, all 42) loads with 128-bit global loads
#     (LDG.E.128), and those that store packs (forward, grad_input) store with plain STG.E.128;
#     the channels-first row kernels (fast::*RowsChannelsFirst, all 40) must be seen too, and
#     the channels-first tile kernels (run_tiles<fast::*TilesChannelsFirst>, all 22) read their
#     shared windows with 128-bit loads (LDS.128);
#  4. the static performance model (scripts/kernel_model.py --check, on the sm_90 code of the
#     launchers.cu object compiled here): every fast kernel's predicted instruction-issue time and
#     occupancy are within budget at the RedNet-50 shapes, or listed with a reason in
#     scripts/kernel_budget_exceptions.json, and every launched kernel is in the SASS.
# Prints a resource table per kernel and arch: registers, spill bytes, 128-bit global loads and
# stores, 128-bit shared loads;
# a kernel is named by the functor that run_items (or run_tiles) runs (baseline::Forward<float>,
# ...); then the
# model's tables.
# cuobjdump and nvdisasm come from the nvidia-cuda-cuobjdump and nvidia-cuda-nvdisasm wheels
# (PYTHON names the interpreter whose site-packages hold them; default .venv-cuda's).
set -euo pipefail
cd "$(dirname "$0")/.."
export CUDA_HOME="${CUDA_HOME:-/usr/local/cuda}"
nvcc="$CUDA_HOME/bin/nvcc"
python="${PYTHON:-.venv-cuda/bin/python}"
tools=$("$python" -c "import nvidia, pathlib; print(next(p for p in (pathlib.Path(d) / 'cu13' / 'bin' for d in nvidia.__path__) if (p / 'cuobjdump').exists()))")
export PATH="$tools:$PATH"
chmod +x "$tools/cuobjdump" "$tools/nvdisasm" 2>/dev/null || true

flags=(-std=c++17 -O3 -c
       -D__CUDA_NO_HALF_OPERATORS__ -D__CUDA_NO_HALF_CONVERSIONS__
       -D__CUDA_NO_BFLOAT16_CONVERSIONS__ -D__CUDA_NO_HALF2_OPERATORS__
       -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90
       -Werror all-warnings -Xcompiler -Wall,-Wextra,-Werror -Xptxas -v)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mapfile -t sources < <(find csrc/cuda -name '*.cu' | sort)
for source in "${sources[@]}"; do
  name=${source#csrc/cuda/}
  name=${name%.cu}
  name=${name//\//_}
  echo "nvcc (sm_80, sm_90, -Werror): $source"
  if ! "$nvcc" "${flags[@]}" "$source" -o "$work/$name.o" >"$work/$name.ptxas" 2>&1; then
    cat "$work/$name.ptxas"
    exit 1
  fi
  cuobjdump --dump-sass "$work/$name.o" >"$work/$name.sass"
done

# One row per (arch, kernel): ptxas's registers and spills, the SASS's 128-bit accesses.
"$python" - "$work" <<'PY'
import pathlib, re, subprocess, sys

work = pathlib.Path(sys.argv[1])


def readable(mangled):
    # -p: without the parameter list (template arguments may hold parentheses themselves)
    name = subprocess.run(["c++filt", "-p", mangled], capture_output=True, text=True).stdout.strip()
    name = name.replace("(anonymous namespace)::", "").replace("involution::", "")
    name = re.sub(r"^void ", "", name)
    name = re.sub(r"^cuda::run_(?:items|tiles)<(.*?) ?>$", r"\1", name)  # the functor it runs
    return name.replace("cuda::", "")


rows, failures, wide_pack_kernels, row_kernels, cf_row_kernels, tile_kernels = [], [], 0, 0, 0, 0
for report in sorted(work.glob("*.ptxas")):
    text = report.read_text()
    kernels = re.findall(r"Compiling entry function '(\S+)' for '(sm_\d+)'(.*?)(?=ptxas info    : Compiling entry|\Z)",
                         text, re.S)
    sass = report.with_suffix(".sass").read_text()
    sass_by_kernel, arch = {}, None
    for line in sass.splitlines():
        if "code for sm_" in line:
            arch = line.split()[-1]
        elif "Function :" in line:
            current = (arch, line.split(":", 1)[1].strip())
            sass_by_kernel[current] = []
        elif "LDG" in line or "STG" in line or "LDS" in line:
            sass_by_kernel[current].append(line)
    for mangled, arch, body in kernels:
        registers = int(re.search(r"Used (\d+) registers", body).group(1))
        spills = sum(int(n) for n in re.findall(r"(\d+) bytes spill (?:stores|loads)", body))
        lines = sass_by_kernel.get((arch, mangled), [])
        wide_loads = sum("LDG.E.128" in line for line in lines)
        wide_shared_loads = sum("LDS.128" in line for line in lines)
        # A plain 128-bit store (not STG.E.128.STRONG.*, which orders memory it need not).
        wide_stores = sum(bool(re.search(r"STG\.E\.128 ", line)) for line in lines)
        name = readable(mangled)
        rows.append((report.stem, arch, name, registers, spills, wide_loads, wide_stores,
                     wide_shared_loads))
        if spills:
            failures.append(f"{arch} {name}: {spills} bytes of register spills")
        wide_pack = re.search(r"^fast::\w+ChannelsLast<[^,]+, (\d+)>$", name)
        row_kernel = re.search(r"^fast::\w+RowsChannelsLast<", name)  # always 16-byte packs
        cf_row_kernels += arch == "sm_90" and bool(re.search(r"^fast::\w+RowsChannelsFirst<", name))
        if arch == "sm_90" and re.search(r"^fast::\w+TilesChannelsFirst<", name):
            tile_kernels += 1
            if not wide_shared_loads:
                failures.append(f"{arch} {name}: no 128-bit shared loads")
        if arch == "sm_90" and (row_kernel or wide_pack and int(wide_pack.group(1)) > 1):
            wide_pack_kernels += not row_kernel
            row_kernels += bool(row_kernel)
            if not wide_loads:
                failures.append(f"{arch} {name}: no 128-bit global loads")
            if "GradWeight" not in name and not wide_stores:
                failures.append(f"{arch} {name}: no 128-bit global stores")

width = max([len("file")] + [len(row[0]) for row in rows])
print(f"{'file':<{width}} {'arch':<6} {'kernel':<48} {'regs':>4} {'spill B':>7} {'LDG.128':>7} "
      f"{'STG.128':>7} {'LDS.128':>7}")
for file, arch, name, registers, spills, loads, stores, shared_loads in rows:
    print(f"{file:<{width}} {arch:<6} {name:<48} {registers:>4} {spills:>7} {loads:>7} {stores:>7} "
          f"{shared_loads:>7}")
if wide_pack_kernels != 12:  # 3 ops x 4 dtypes: the check must see every one
    failures.append(f"expected 12 sm_90 kernels with 16-byte packs, found {wide_pack_kernels}")
# forward, grad_input: 4 dtypes x 2 kernel widths x 2 weight orders each, and the bfloat16
# forward's weight pairs x 2 widths; grad_weight: 4 x 2
if row_kernels != 42:
    failures.append(f"expected 42 sm_90 row kernels, found {row_kernels}")
if cf_row_kernels != 40:  # 2 ops x 4 dtypes x 2 widths x 2 weight orders + grad_weight x 4 x 2
    failures.append(f"expected 40 sm_90 channels-first row kernels, found {cf_row_kernels}")
# forward: 2 half types x 2 widths x 2 weight orders, and bfloat16's weight pairs x 2 widths;
# grad_input: 2 x 2 x 2; grad_weight: 2 x 2
if tile_kernels != 22:
    failures.append(f"expected 22 sm_90 channels-first tile kernels, found {tile_kernels}")
if failures:
    print("\n".join(["FAILED:"] + failures))
    sys.exit(1)
print(f"{len(rows)} kernels: no register spills; every 16-byte-pack kernel uses 128-bit accesses")
PY

# The static performance model, from the launchers object and ptxas report compiled above.
"$python" scripts/kernel_model.py --check --object "$work/launchers.o" \
  --ptxas-log "$work/launchers.ptxas"
