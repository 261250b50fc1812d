#!/usr/bin/env bash
# One command for every benchmark: bash benchmarks/run_all.sh
set -euo pipefail
cd "$(dirname "$0")/.."
python benchmarks/gpr.py "$@"
