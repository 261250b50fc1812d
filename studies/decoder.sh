#!/usr/bin/env bash
# The decoder study (issue 25, item 3; docs/analyses.md, "On a causal decoder"): the
# protocols of studies/protocols.sh on default-clm: skip statistics with the
# norm-matched null, compression under the mean and baseline references, interchange
# interventions (prefix and IOI counterfactuals). Usage:
#   studies/decoder.sh OUT            # N instances per task (default 30), TASKS, STEPS
#   (the recorded study: N=30 STEPS=128 for the prefix tasks; IOI_STEPS=64 for ioi,
#   its longer prompts cost 4x as much a step: 32 points miss completeness by ~20% of
#   q(x) - q(b) on ioi, 128 keep it within 2% on the agreement prefixes)
# Every step is resumable (rerun the same command) and prints its wall time.
set -euo pipefail
source "$(dirname "$0")/common.sh"   # timed, template_tasks, interchange
model=${MODEL:-default-clm}
out=${1:-study}/$model
# every prefix task (the 16 templates in prefix form) and ioi, unless TASKS names some
tasks=${TASKS:-"$(template_tasks prefix/) ioi"}
n=${N:-30}; steps=${STEPS:-128}
timed influence-patterns models build "$model"
dirs=(); inter=()
for t in $tasks; do
  d=$out/${t//\//_}; dirs+=("$d"); inter+=("$(interchange "$t")")
  if [ "$t" = ioi ]; then tn=${IOI_N:-$n}; ts=${IOI_STEPS:-$steps}; else tn=$n; ts=$steps; fi
  timed influence-patterns run --quiet --model "$model" --task "$t" --n "$tn" --steps "$ts" --out "$d"
done
for k in "${!dirs[@]}"; do
  d=${dirs[$k]}
  [ -f "$d/mean.json" ] || timed influence-patterns ablate --quiet "$d" --reference mean ${inter[$k]} --json "$d/mean.json"
  [ -f "$d/baseline.json" ] || timed influence-patterns ablate --quiet "$d" --reference baseline --json "$d/baseline.json"
  # per task, the null's GPR cached in the run (the pooled analyze below reads it)
  timed influence-patterns analyze --quiet "$d" --null norm-matched --json "$d/analyze-norm-matched.json"
done
timed influence-patterns analyze --quiet "${dirs[@]}" --null norm-matched --json "$out/analyze-norm-matched.json"
