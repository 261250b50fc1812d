#!/usr/bin/env bash
# The study of issue 20 (docs/analyses.md, "The study again"): the three ablation
# protocols side by side (mean / baseline / interchange) and the reframed skip
# statistics with the norm-matched null, on one model. Usage:
#   studies/protocols.sh default-mlm OUT            # agreement tasks (TASKS, N per task)
#   studies/protocols.sh default-mlm-transfer OUT
#   studies/protocols.sh default-sst2 OUT           # SST-2 dev (N sentences)
# Every step is resumable (rerun the same command) and prints its wall time.
# Protocols: mean (+ interchange), baseline, mean with --replace as+h; subject only.
# N: instances per task; TASKS: the tasks (default: every agreement task); NULL_TASKS: the tasks whose norm-matched null
# is computed (its GPR costs as much as the run; default: every task).
set -euo pipefail
source "$(dirname "$0")/common.sh"   # timed, template_tasks, interchange
model=$1
out=${2:-study}/$model
if [ "$model" = default-sst2 ]; then
  tasks=${TASKS:-sa/sst2}; n=${N:-200}
  timed influence-patterns models build default-sst2
else
  # every agreement task (the 16 templates), unless TASKS names some
  tasks=${TASKS:-$(template_tasks)}; n=${N:-100}
fi
dirs=(); inter=()
for t in $tasks; do
  d=$out/${t/\//_}; dirs+=("$d"); inter+=("$(interchange "$t")")
  timed influence-patterns run --quiet --model "$model" --task "$t" --n "$n" --out "$d"
done
for k in "${!dirs[@]}"; do
  d=${dirs[$k]}
  # the node sets are computed here once and cached in $d/nodes-*.json for the others
  if [ "$model" = default-sst2 ]; then
    [ -f "$d/mean.json" ] || timed influence-patterns ablate --quiet "$d" --reference mean --json "$d/mean.json"
  else
    [ -f "$d/mean.json" ] || timed influence-patterns ablate --quiet "$d" --reference mean ${inter[$k]} --json "$d/mean.json"
  fi
  [ -f "$d/baseline.json" ] || timed influence-patterns ablate --quiet "$d" --reference baseline --json "$d/baseline.json"
  # the authors' layout: the layer outputs h^l at positions no kept path uses are replaced too
  [ -f "$d/mean-ash.json" ] || timed influence-patterns ablate --quiet "$d" --reference mean --replace as+h --json "$d/mean-ash.json"
  if [ "$model" != default-sst2 ]; then
    [ -f "$d/subject.json" ] || timed influence-patterns ablate --quiet "$d" --reference mean --sources subject \
      ${inter[$k]} --json "$d/subject.json"
  fi
done
timed influence-patterns analyze --quiet "${dirs[@]}" --json "$out/analyze.json"
null_dirs=()
for t in ${NULL_TASKS:-$tasks}; do null_dirs+=("$out/${t/\//_}"); done
timed influence-patterns analyze --quiet "${null_dirs[@]}" --null norm-matched --json "$out/analyze-norm-matched.json"
