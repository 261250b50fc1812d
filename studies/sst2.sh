#!/usr/bin/env bash
# The SST-2 part of the study of docs/analyses.md: default-sst2 on 200 sentences of
# SST-2 dev (seed 0), run, compression/removal under the mean (train-split sentences of
# the same length) and baseline references, and the report with the norm-matched null.
# (Interchange is not measurable on a classifier.) See also studies/protocols.sh.
# Usage: studies/sst2.sh OUT   (each step resumable: rerun after an interruption)
set -euo pipefail
out=${1:-study}
n=${N:-200}
timed() { local t0=$SECONDS; "$@"; echo "[$(( SECONDS - t0 )) s] $*" >&2; }

timed influence-patterns models build default-sst2
timed influence-patterns run --quiet --model default-sst2 --task sa/sst2 --n "$n" --out "$out/sst2/sa_sst2"
[ -f "$out/sst2/sa_sst2/ablation.json" ] || timed influence-patterns ablate --quiet "$out/sst2/sa_sst2"
[ -f "$out/sst2/sa_sst2/ablation-baseline.json" ] || timed influence-patterns ablate --quiet "$out/sst2/sa_sst2" --reference baseline
timed influence-patterns report --quiet "$out/sst2/sa_sst2" --null norm-matched \
  --out "$out/sst2-report.md" --html "$out/sst2-report.html"
