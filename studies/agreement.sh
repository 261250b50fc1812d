#!/usr/bin/env bash
# The study of docs/analyses.md: the paper's three findings measured with CIs, nulls and
# controls on the two embedded masked LMs. Usage:
#   studies/agreement.sh transfer OUT   # default-mlm-transfer: every agreement task, n=100 (finding 2)
#   studies/agreement.sh default OUT    # default-mlm: three tasks, n=100, ablation (findings 1 and 3)
#   studies/agreement.sh report OUT     # analyze + report over what the two phases wrote
# Each step is resumable: rerun the same command after an interruption.
set -euo pipefail
phase=$1
out=${2:-study}
n=${N:-100}
tasks=$(python -c "from influence_patterns.tasks import TEMPLATE_TASKS; print(*TEMPLATE_TASKS)")
timed() { local t0=$SECONDS; "$@"; echo "[$(( SECONDS - t0 )) s] $*" >&2; }

case $phase in
  transfer)
    for t in $tasks; do
      case $t in sva/*|ra/*) ;; *) continue ;; esac
      timed influence-patterns run --quiet --model default-mlm-transfer --task "$t" --n "$n" --out "$out/transfer/${t/\//_}"
    done
    ;;
  default)
    for t in sva/simple sva/prep sva/obj_rel_across; do
      d="$out/default/${t/\//_}"
      timed influence-patterns run --quiet --model default-mlm --task "$t" --n "$n" --out "$d"
      timed influence-patterns ablate "$d"
    done
    ;;
  report)
    timed influence-patterns analyze "$out"/transfer/* --json "$out/transfer-analysis.json"
    timed influence-patterns report "$out"/transfer/* --out "$out/transfer-report.md"
    timed influence-patterns report "$out"/default/* --null random-init --out "$out/default-report.md" --html "$out/default-report.html"
    ;;
  *) echo "usage: $0 transfer|default|report OUT" >&2; exit 2 ;;
esac
