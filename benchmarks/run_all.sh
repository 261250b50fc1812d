#!/usr/bin/env bash
# Every benchmark, one command: bash benchmarks/run_all.sh
# (fast vs reference GPR, peak memory against length, quadrature points).
set -euo pipefail
cd "$(dirname "$0")/.."
python benchmarks/gpr.py --steps 10 --lengths 10 20 "$@"
python benchmarks/memory.py --lengths 10 50 --sources 8
python benchmarks/quadrature.py --model "${QUADRATURE_MODEL:-default-mlm}" || echo "(quadrature: build default-mlm first, or set QUADRATURE_MODEL=standin-mlm)"
