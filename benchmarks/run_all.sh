#!/usr/bin/env bash
# Every benchmark, one command: bash benchmarks/run_all.sh
# (fast vs reference GPR on random weights and on default-mlm, run throughput with Ray,
# peak memory against length, quadrature points). The default-mlm steps need
# `influence-patterns models build default-mlm` first. On 2 CPU cores the longest
# steps are the reference at 10 tokens in default_mlm.py (about 4 minutes) and the
# Ray throughput runs; single_position.py times the default scorer against one plain
# IG and against fast-full, the earlier full-width scorer; decoders.py the same on random
# decoders of each layer form beside a BERT encoder; threads.py times explain with torch's
# default threads, 1 thread and the idle-core choice side by side; ablation.py times each
# method's node sets (old beside new) against the protocols' passes and estimates ablate
# on SST-2 x 200, on default-mlm and on the SST-2 stand-in (figures: docs/performance.md).
set -euo pipefail
cd "$(dirname "$0")/.."
python benchmarks/gpr.py --steps 10 --lengths 10 20 "$@"
python benchmarks/memory.py --lengths 10 50 --sources 8 --max-rows 512
python benchmarks/memory.py --lengths 10 50 --sources 8 --max-rows 512 --method fast-full
python benchmarks/decoders.py --threads 2   # GPR vs one IG, 48 tokens: BERT beside GPT-2, Llama, GPT-NeoX (random)
python benchmarks/decoders.py --threads 2 --tokens 16 --check-old   # fast == fast-full patterns on decoders
if python -c "import sys; from influence_patterns.models.defaults import is_built; sys.exit(0 if is_built('default-mlm') else 1)"; then
  python benchmarks/single_position.py --threads 2 --lengths 10 20 50 128
  python benchmarks/single_position.py --threads 2 --lengths 512 --memory-budget-gb 2
  python benchmarks/default_mlm.py
  python benchmarks/threads.py --rounds 3
  python benchmarks/internal_influence.py --lengths 10 20 50
  python benchmarks/ablation.py --lengths 10 20 40
  python benchmarks/ablation.py --model standin-sst2 --lengths 8 16 24 32 40 56 --old-up-to 24
  python benchmarks/ray_throughput.py
  python benchmarks/quadrature.py --model default-mlm
else
  echo "(default-mlm is not built: skipping default_mlm.py, ray_throughput.py and quadrature.py;"
  echo " run 'influence-patterns models build default-mlm', or QUADRATURE_MODEL=standin-mlm for the quadrature stand-in)"
  [ -n "${QUADRATURE_MODEL:-}" ] && python benchmarks/quadrature.py --model "$QUADRATURE_MODEL"
fi
