"""Old home of task accuracy; it lives in :mod:`influence_patterns.tasks.accuracy` now."""

from influence_patterns.tasks.accuracy import (  # noqa: F401  (re-exported)
    TaskAccuracy,
    accuracy,
    mean_accuracy,
    qoi,
    scorable,
    score,
    subtask_of,
    summarize,
    target_ids,
    task_of,
)
