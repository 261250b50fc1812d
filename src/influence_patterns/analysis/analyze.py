"""``analyze_run``: accuracy, skip vs heads and consistency of one run directory;
``analyze_runs``: several runs plus the consistency–accuracy correlation."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from influence_patterns.analysis.consistency import consistency
from influence_patterns.analysis.correlation import consistency_accuracy_correlation
from influence_patterns.analysis.skip import iter_patterns, skip_statistics
from influence_patterns.errors import DataError


def row_correct(row: dict[str, Any]) -> bool:
    """The row's ``correct`` flag, or QoI > 0 when it has none."""
    if "correct" in row:
        return bool(row["correct"])
    return float(row["qoi"]["value"]) > 0


def analyze_rows(rows: list[dict[str, Any]], meta: dict[str, Any] | None = None, run: str = "") -> dict[str, Any]:
    """The analysis dict of already-loaded result rows (see :func:`analyze_run`)."""
    meta = meta or {}
    if not rows:
        raise DataError(f"{run or 'the run'} has no results yet")
    layers = {int(r["num_layers"]) for r in rows}
    if len(layers) != 1:
        raise DataError(f"{run}: rows come from models with different depths {sorted(layers)}")
    num_layers = layers.pop()
    skip = skip_statistics((p for _, p in iter_patterns(rows)), num_layers)
    tasks = sorted({r.get("task") or "" for r in rows})
    return {
        "run": run,
        "task": meta.get("task") or ",".join(t for t in tasks if t) or None,
        "model": meta.get("model") or rows[0].get("model"),
        "instances": len(rows),
        "num_layers": num_layers,
        "num_heads": int(rows[0]["num_heads"]),
        "accuracy": sum(row_correct(r) for r in rows) / len(rows),
        "mean_qoi": sum(float(r["qoi"]["value"]) for r in rows) / len(rows),
        **skip,
        "consistency": consistency(rows),
    }


def analyze_run(path: str | Path) -> dict[str, Any]:
    """Analyses of one run directory (DESIGN §6; definitions in docs/analyses.md).

    Keys: ``accuracy``, ``mean_qoi``; ``skip_share``, ``skip_share_weighted``, ``skip_to_head_ratio``,
    ``skip_to_head_ratio_weighted``, ``skip_steps``, ``head_steps``, ``per_layer``
    (see :mod:`influence_patterns.analysis.skip`); ``consistency``: role (and ``all``) →
    ``n``, ``distinct``, ``top_frequency``, ``entropy``, ``top_pattern``, ``skip_share``
    (see :mod:`influence_patterns.analysis.consistency`).
    """
    from influence_patterns.runs import read_run

    rows, meta = read_run(path)
    return analyze_rows(rows, meta, run=str(path))


def analyze_runs(paths: Sequence[str | Path], role: str | None = None) -> dict[str, Any]:
    """``{"runs": [analyze_run(p) ...], "correlation": ..., "pooled": ...}``.

    With two or more runs: ``correlation`` (Spearman, consistency of ``role`` — default
    ``subject`` if every run has it, else ``all`` — against accuracy over runs) and
    ``pooled`` (skip statistics over the patterns of all runs together)."""
    from influence_patterns.runs import read_run

    analyses, patterns, depths = [], [], set()
    for p in paths:
        rows, meta = read_run(p)
        analyses.append(analyze_rows(rows, meta, run=str(p)))
        patterns += [pat for _, pat in iter_patterns(rows)]
        depths.add(analyses[-1]["num_layers"])
    out: dict[str, Any] = {"runs": analyses}
    if len(analyses) >= 2:
        out["correlation"] = consistency_accuracy_correlation(analyses, role)
        if len(depths) == 1:
            out["pooled"] = skip_statistics(patterns, depths.pop())
    return out
