"""Data-set runs: the runner that writes a run directory and the one reader of it.

- :mod:`~influence_patterns.runs.options`: ``RunOptions`` (recorded in ``run.json``),
  ``BackendOptions``, the directory's file names;
- :mod:`~influence_patterns.runs.record`: ``RunRecord``, one typed ``results.jsonl`` line;
- :mod:`~influence_patterns.runs.reader`: ``Run.open(dir)``, THE reader (torn lines,
  run.json, duplicate / out-of-range indices, mixed settings); ``Run.from_rows`` applies
  the same checks to rows in memory; ``Run.to_dataframe()`` (pandas);
- :mod:`~influence_patterns.runs.runner`: ``run_dataset`` (resumable, one writer);
- :mod:`~influence_patterns.runs.lock`: the one-writer lock;
- :mod:`~influence_patterns.runs.backends`: local or Ray workers.
"""

from __future__ import annotations

from influence_patterns.runs.lock import RunLock, lock_owner
from influence_patterns.runs.options import (
    LOCK_FILE, RESULTS, RESUME_KEYS, ROW_SETTINGS, RUN_FILE, BackendOptions, RunOptions, versions,
)
from influence_patterns.runs.reader import Run, read_run_json
from influence_patterns.runs.record import RunRecord
from influence_patterns.runs.roles import role_token_indices
from influence_patterns.runs.runner import load_run_instances, repair_results, resolve_options, run_dataset

__all__ = [
    "LOCK_FILE", "RESULTS", "RESUME_KEYS", "ROW_SETTINGS", "RUN_FILE", "BackendOptions", "Run", "RunLock",
    "RunOptions", "RunRecord", "load_run_instances", "lock_owner", "read_run_json",
    "repair_results", "resolve_options", "role_token_indices", "run_dataset", "versions",
]
