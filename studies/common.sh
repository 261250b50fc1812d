# Shared by the study scripts (sourced, not run).
# timed CMD...: run CMD and print its wall time to stderr.
timed() { local t0=$SECONDS; "$@"; echo "[$(( SECONDS - t0 )) s] $*" >&2; }
# template_tasks [PREFIX]: the 16 agreement and reflexive template tasks, each with PREFIX.
template_tasks() { python -c "import sys; from influence_patterns.tasks import TEMPLATE_TASKS
print(*(sys.argv[1] + t for t in TEMPLATE_TASKS))" "${1:-}"; }
# interchange TASK: prints --interchange where TASK makes counterfactuals (sva/conjoined
# does not: its two conjoined subjects are always plural), nothing otherwise.
interchange() { python -c "import sys; from influence_patterns.tasks import get_task
sys.exit(0 if get_task(sys.argv[1]).load(n=1, seed=0)[0].counterfactual else 1)" "$1" && echo --interchange || true; }
