#!/usr/bin/env bash
# Sets up the environment (scripts/setup.sh) and runs the op benchmark against the unfold
# baseline (quick preset; on the GPU when there is one). Extra arguments go to the benchmark.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
"${VENV:-.venv}/bin/python" benchmarks/bench_op.py "$@"
