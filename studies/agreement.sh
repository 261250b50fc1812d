#!/usr/bin/env bash
# The earlier (issue 15) study of docs/analyses.md on every agreement task, now with the
# default mean reference and the norm-matched null; studies/protocols.sh runs issue 20's
# three protocols side by side. Usage:
#   studies/agreement.sh transfer OUT   # default-mlm-transfer: every agreement task, n=100 (finding 2)
#   studies/agreement.sh default OUT    # default-mlm: every agreement task, n=100, run and ablated (findings 1 and 3)
#   studies/agreement.sh ablate-transfer OUT  # default-mlm-transfer: ablation of every task (finding 3 on the second model)
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
    for t in $tasks; do
      case $t in sva/*|ra/*) ;; *) continue ;; esac
      timed influence-patterns run --quiet --model default-mlm --task "$t" --n "$n" --out "$out/default/${t/\//_}"
    done
    for d in "$out"/default/*; do  # an ablation already written is kept
      [ -f "$d/ablation.json" ] || timed influence-patterns ablate --quiet "$d"
    done
    ;;
  ablate-transfer)
    for d in "$out"/transfer/*; do
      [ -f "$d/ablation.json" ] || timed influence-patterns ablate --quiet "$d"
    done
    ;;
  report)
    timed influence-patterns report --quiet "$out"/transfer/* --out "$out/transfer-report.md"
    timed influence-patterns analyze --quiet "$out"/transfer/sva_{simple,prep,obj_rel_across} --null norm-matched --json "$out/transfer-null.json"
    timed influence-patterns report --quiet "$out"/default/sva_{simple,prep,obj_rel_across} --null norm-matched \
      --out "$out/default-report.md" --html "$out/default-report.html"
    timed influence-patterns report --quiet "$out"/default/* --out "$out/default-all-report.md"
    ;;
  *) echo "usage: $0 transfer|default|ablate-transfer|report OUT" >&2; exit 2 ;;
esac
