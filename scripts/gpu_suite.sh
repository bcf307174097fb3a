#!/usr/bin/env bash
# The GPU check, in stages sized to the calls of a lent GPU machine (one call runs at most 10
# minutes; a session has 15 minutes of device time in all, each fresh machine's start included),
# for a machine with an NVIDIA GPU and torch already installed (no package registry needed):
#
#   OUT=gpu_results bash scripts/gpu_suite.sh [STAGE ...]      (default: tests bench)
#
#   tests      the tests with CUDA cases (every test of tests/test_cuda_kernels.py and every case
#              whose id names cuda: both kernel sets, both layouts, all dtypes)
#   bench      the quick op benchmark on the GPU (float32 and bfloat16, batch 64; with the paper's
#              CuPy op when a d-li14/involution checkout travels along, OFFICIAL_CHECKOUT, default
#              .official/involution)
#   sanitize   compute-sanitizer memcheck, racecheck and initcheck on a small forward + backward of
#              every dtype, kernel set and layout, at shapes that take the one-pixel, row and tile
#              kernels (scripts/sanitizer_target.py)
#   ncu        Nsight Compute metrics of every kernel at the stage-1 shape (scripts/profile_target.py)
#   all-tests  the whole test suite
#
# Every call builds first (a lent machine starts bare): in place, for sm_90, with every core. Each
# step runs under its own wall-clock limit, and the call under SUITE_BUDGET_S (default 480 s): a
# step gets at most the time left, and one with under a minute left is skipped and reported, so a
# slow step cannot take the rest of the call with it and the call ends inside the device limits.
# Logs and results go to $OUT (default gpu_results/): environment.txt, suite.log, summary.txt,
# op_cuda_quick.json and .png, ncu.csv (at most the 8 files a call brings back); the summary is
# printed last. Exits non-zero if a step failed or was cut off.
#
# DRY_RUN=1 rehearses a call on a machine without a GPU (PYTHON: an environment with a CUDA build
# of torch, such as the .venv-cuda of scripts/check_cuda_build.sh, builds the CUDA kernels too):
# the same build, steps, limits, files and summary, with the CUDA cases skipping, the benchmark on
# the CPU at stage 4 only, and the GPU tools' commands printed instead of run.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-gpu_results}"
python="${PYTHON:-python3}"
budget="${SUITE_BUDGET_S:-480}"
dry_run="${DRY_RUN:-0}"
stages=("$@")
[ ${#stages[@]} -eq 0 ] && stages=(tests bench)
mkdir -p "$out"
log="$out/suite.log"
: >"$log"
export TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-9.0}"
export MAX_JOBS="${MAX_JOBS:-$(nproc)}"
declare -a names results seconds

for stage in "${stages[@]}"; do
  case "$stage" in
    tests | bench | sanitize | ncu | all-tests) ;;
    *) echo "gpu_suite.sh: unknown stage '$stage' (tests, bench, sanitize, ncu, all-tests)" >&2; exit 2 ;;
  esac
done

# step NAME LIMIT_S COMMAND...: runs COMMAND (output in suite.log) for at most LIMIT_S seconds,
# or the time left in the budget if that is less; records pass, FAIL, cut off or skipped.
step() {
  local name=$1 limit=$2 left=$((budget - SECONDS))
  shift 2
  names+=("$name")
  if [ "$left" -lt 60 ]; then
    results+=("skipped (${left} s of the budget left)")
    seconds+=(0)
    return
  fi
  [ "$left" -lt "$limit" ] && limit=$left
  echo "== $name (limit ${limit} s)" | tee -a "$log"
  local start=$SECONDS
  # (through bash, so that COMMAND may be one of the functions below)
  timeout --kill-after=10 "$limit" bash -c '"$@"' step "$@" >>"$log" 2>&1
  local code=$?
  seconds+=($((SECONDS - start)))
  case $code in
    0) results+=("pass") ;;
    124 | 137) results+=("CUT OFF after ${limit} s") ;;
    *) results+=("FAIL ($code)") ;;
  esac
  tail -n 3 "$log"
}

# A GPU tool, or in a dry run the command it would run.
gpu_tool() {
  if [ "$dry_run" = 1 ]; then
    echo "dry run: $*"
  else
    "$@"
  fi
}

{
  [ "$dry_run" = 1 ] && echo "DRY RUN: no GPU; the GPU tools' commands are printed, not run"
  if command -v nvidia-smi >/dev/null; then nvidia-smi 2>&1; else echo "nvidia-smi: not found"; fi
  "$python" -c "import torch; print('torch', torch.__version__, 'CUDA', torch.version.cuda, '|',
      torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU visible')" 2>&1
} >"$out/environment.txt"

build_mode=cuda
[ "$dry_run" = 1 ] && build_mode=auto  # a CPU torch builds the CPU kernels alone
step "build (sm_$TORCH_CUDA_ARCH_LIST, $MAX_JOBS jobs)" 300 \
  env INVOLUTION_BUILD=$build_mode "$python" setup.py build_ext --inplace

sanitizer=$(command -v compute-sanitizer || echo "${CUDA_HOME:-/usr/local/cuda}/bin/compute-sanitizer")
ncu=$(command -v ncu || echo "${CUDA_HOME:-/usr/local/cuda}/bin/ncu")
metrics=gpu__time_duration.sum,dram__bytes_read.sum,dram__bytes_write.sum
metrics+=,gpu__compute_memory_throughput.avg.pct_of_peak_sustained_elapsed
metrics+=,sm__warps_active.avg.pct_of_peak_sustained_active,launch__registers_per_thread
metrics+=,l1tex__t_sector_hit_rate.pct,lts__t_sector_hit_rate.pct
metrics+=,l1tex__t_requests_pipe_lsu_mem_global_op_ld.sum,l1tex__t_sectors_pipe_lsu_mem_global_op_ld.sum
profile() {  # every involution kernel of scripts/profile_target.py, key metrics as CSV
  gpu_tool "$ncu" --clock-control none --csv --page raw --metrics "$metrics" \
    --kernel-name regex:"run_items|run_tiles" "$python" scripts/profile_target.py >"$out/ncu.csv"
}
export -f gpu_tool profile
export dry_run ncu metrics python out
official="${OFFICIAL_CHECKOUT:-.official/involution}"
bench_args=(--output "$out/op_cuda_quick.json")
[ -d "$official" ] && bench_args+=(--official-checkout "$official")
[ "$dry_run" = 1 ] && bench_args+=(--device cpu --shapes stage4 --dtypes float32 --rounds 1 --allow-unstable)

for stage in "${stages[@]}"; do
  case "$stage" in
    tests)
      step "tests with CUDA cases" 360 "$python" -m pytest -q -rs -p no:cacheprovider tests -k cuda ;;
    all-tests)
      step "all tests" 540 "$python" -m pytest -q -rs -p no:cacheprovider tests ;;
    bench)
      # the benchmark starts no shape past its own deadline, 90 s before the step's limit
      limit=$((budget - SECONDS < 420 ? budget - SECONDS : 420))
      step "benchmark" 420 "$python" benchmarks/bench_op.py "${bench_args[@]}" \
        --deadline-s $((limit > 150 ? limit - 90 : 60)) ;;
    sanitize)
      for tool in memcheck racecheck initcheck; do
        step "compute-sanitizer $tool" 150 \
          gpu_tool "$sanitizer" --tool "$tool" --error-exitcode 1 "$python" scripts/sanitizer_target.py
      done ;;
    ncu)
      step "nsight compute (stage 1)" 240 profile ;;
  esac
done

{
  echo
  echo "GPU suite summary ($(grep -h '^torch' "$out/environment.txt" | head -c 200))"
  grep -hE "^[0-9]+ (passed|failed)|[0-9]+ passed" "$log" | tail -n 2
  printf '%-40s %-34s %s\n' "step" "result" "seconds"
  for k in "${!names[@]}"; do printf '%-40s %-34s %s\n' "${names[$k]}" "${results[$k]}" "${seconds[$k]}"; done
  echo "call: ${SECONDS} s of a ${budget} s budget"
} | tee "$out/summary.txt"
! grep -qE "FAIL|CUT OFF" "$out/summary.txt"
