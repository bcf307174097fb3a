#!/usr/bin/env bash
# The whole GPU check in one call, for a machine with an NVIDIA GPU and torch already installed
# (no package registry needed): build in place for sm_90, run every test (the CUDA tests cover
# both kernel sets), compute-sanitizer memcheck / racecheck / initcheck on a small forward +
# backward per dtype, kernel set and layout, the quick op benchmark, and Nsight Compute metrics
# of every kernel at the stage-1 shape. Logs and JSON go to $OUT (default gpu_results/; at most 8
# files); a summary table is printed last. Exits non-zero if any step failed.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-gpu_results}"
python="${PYTHON:-python3}"
mkdir -p "$out"
export TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-9.0}"
declare -a names results

step() {  # step NAME LOG COMMAND...: runs COMMAND with its output in $out/LOG, records the result
  local name=$1 log=$2
  shift 2
  echo "== $name" | tee -a "$out/$log"
  "$@" >>"$out/$log" 2>&1
  local code=$?
  names+=("$name")
  results+=("$([ $code -eq 0 ] && echo pass || echo "FAIL ($code)")")
  tail -n 3 "$out/$log"
}

sanitizer=$(command -v compute-sanitizer || echo "${CUDA_HOME:-/usr/local/cuda}/bin/compute-sanitizer")
nvidia-smi >"$out/environment.txt" 2>&1
"$python" -c "import torch; print('torch', torch.__version__, 'CUDA', torch.version.cuda, '|',
    torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU visible')" >>"$out/environment.txt" 2>&1
step "build (sm_$TORCH_CUDA_ARCH_LIST)" checks.log env INVOLUTION_BUILD=cuda "$python" setup.py build_ext --inplace
step "tests" pytest.log "$python" -m pytest -q -rs tests
for tool in memcheck racecheck initcheck; do
  step "compute-sanitizer $tool" checks.log \
    "$sanitizer" --tool "$tool" --error-exitcode 1 "$python" scripts/sanitizer_target.py
done
# The paper's CuPy op joins the benchmark when a checkout of d-li14/involution travels along
# (OFFICIAL_CHECKOUT, default .official/involution; never part of the project).
official="${OFFICIAL_CHECKOUT:-.official/involution}"
official_args=()
[ -d "$official" ] && official_args=(--official-checkout "$official")
step "benchmark" bench.log "$python" benchmarks/bench_op.py "${official_args[@]}" \
  --output "$out/op_cuda_quick.json"

# Nsight Compute on the stage-1 shape: every involution kernel of one forward + backward per
# variant and dtype (scripts/profile_target.py prints the order), key metrics as CSV.
ncu=$(command -v ncu || echo "${CUDA_HOME:-/usr/local/cuda}/bin/ncu")
metrics=gpu__time_duration.sum,dram__bytes_read.sum,dram__bytes_write.sum
metrics+=,gpu__compute_memory_throughput.avg.pct_of_peak_sustained_elapsed
metrics+=,sm__warps_active.avg.pct_of_peak_sustained_active,launch__registers_per_thread
metrics+=,l1tex__t_sector_hit_rate.pct,lts__t_sector_hit_rate.pct
metrics+=,l1tex__t_requests_pipe_lsu_mem_global_op_ld.sum,l1tex__t_sectors_pipe_lsu_mem_global_op_ld.sum
profile() {
  "$ncu" --clock-control none --csv --page raw --metrics "$metrics" \
    --kernel-name regex:"run_items" \
    "$python" scripts/profile_target.py >"$out/ncu.csv"
}
step "nsight compute (stage 1)" checks.log profile

{
  echo
  echo "GPU suite summary ($(head -c 200 <(grep -h '^torch' "$out/environment.txt")))"
  grep -E "passed|failed" "$out/pytest.log" | tail -n 2
  printf '%-32s %s\n' "step" "result"
  for k in "${!names[@]}"; do printf '%-32s %s\n' "${names[$k]}" "${results[$k]}"; done
} | tee "$out/summary.txt"
! grep -q FAIL "$out/summary.txt"
