"""The analyses' results as pandas DataFrames (long format: one row per number) and CSV.

- :func:`analysis_frame`: one row per (run, metric[, role][, layer]) of
  :func:`~influence_patterns.analysis.analyze.analyze_runs` (``run`` is ``pooled`` for
  the patterns of every run together and ``all`` for the correlation);
- :func:`ablation_frame`: one row per (method, metric) of
  :func:`~influence_patterns.analysis.ablation.ablate_run` (``kind`` ``method``; the
  floor as method ``(no node kept)``) and per comparison ``pattern − method`` (``kind``
  ``comparison``, with its verdict), for the pooled result and for every task;
- :func:`write_csv`: a frame to a CSV file, atomically (``fileio``).

``value`` is the point estimate, ``ci_low``/``ci_high`` its 95% bootstrap CI (empty
where there is none). pandas is imported on use.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from influence_patterns.analysis.ablation import IIA_METRICS, METRICS
from influence_patterns.fileio import write_text

ANALYSIS_COLUMNS = ("run", "task", "metric", "role", "layer", "value", "ci_low", "ci_high", "n")
ABLATION_COLUMNS = ("task", "kind", "method", "group", "metric", "value", "ci_low", "ci_high", "nodes", "n",
                    "verdict")


def _ci(est: Any) -> tuple[Any, Any, Any]:
    """``(value, low, high)`` of an estimate ``{"value", "ci"}`` or a plain number."""
    if isinstance(est, dict):
        lo, hi = (list(est.get("ci") or [None, None]) + [None, None])[:2]
        return est.get("value"), lo, hi
    return est, None, None


def _analysis_rows(name: str, task: Any, a: dict[str, Any], n: Any) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []

    def add(metric: str, est: Any, role: str | None = None, layer: int | None = None, count: Any = n) -> None:
        value, lo, hi = _ci(est)
        rows.append({"run": name, "task": task, "metric": metric, "role": role, "layer": layer, "value": value,
                     "ci_low": lo, "ci_high": hi, "n": count})

    for key in ("accuracy", "mean_qoi"):
        if key in a:
            add(key, a[key])
    for key in ("skip_share", "skip_share_weighted"):
        if key in a:
            add(key, a[key])
    for key in ("skip_to_head_ratio", "skip_to_head_ratio_weighted"):
        if f"{key}_ci" in a:
            add(key, a[f"{key}_ci"])
        elif key in a:
            add(key, a[key])
    for key in ("skip_steps", "head_steps", "ceiling"):
        if key in a:
            add(key, a[key])
    if a.get("heads_per_pattern"):
        add("heads_per_pattern", a["heads_per_pattern"])
    if a.get("skip_when_staying"):
        add("skip_when_staying", a["skip_when_staying"])
        add("skip_when_staying_weighted", a["skip_when_staying"].get("weighted"))
        add("skip_when_staying_uniform", a["skip_when_staying"].get("uniform"))
    for layer in a.get("per_layer", []):
        add("skip_share", layer["skip_share"], layer=layer["layer"])
        add("skip_share_weighted", layer["skip_share_weighted"], layer=layer["layer"])
    for role, c in (a.get("consistency") or {}).items():
        for key in ("top_frequency", "entropy", "distinct", "skip_share"):
            add(f"consistency_{key}", c.get(key), role=role, count=c.get("n"))
    null = a.get("null")
    if null:
        add("null_skip_to_head_ratio", null.get("skip_to_head_ratio_ci"))
        add("skip_to_head_ratio_minus_null", null.get("difference"))
        if null.get("skip_when_staying"):
            add("null_skip_when_staying", null["skip_when_staying"])
            add("skip_when_staying_minus_null", null.get("skip_when_staying_difference"))
        for who in ("model", "null"):
            norm = (null.get("head_norm") or {}).get(who)
            if norm:
                add(f"head_to_skip_norm_{who}", norm.get("mean"))
    stay = a.get("stay_skip_share")
    if stay:
        for role in [k for k in stay if not k.startswith("steps_")]:
            add("stay_skip_share", stay[role], role=role, count=stay.get(f"steps_{role}"))
    return rows


def analysis_frame(result: dict[str, Any]) -> Any:
    """:func:`analyze_runs`' result, long format (module doc)."""
    import pandas as pd

    rows: list[dict[str, Any]] = []
    for a in result.get("runs", []):
        rows += _analysis_rows(a.get("run", ""), a.get("task"), a, a.get("instances"))
    pooled = result.get("pooled")
    if pooled:
        rows += _analysis_rows("pooled", None, pooled, pooled.get("instances"))
    corr = result.get("correlation")
    if corr:
        for key in ("spearman_rho", "p_value", "spearman_rho_qoi", "p_value_qoi"):
            rows.append({"run": "all", "task": None, "metric": key, "role": corr.get("role"), "layer": None,
                         "value": corr.get(key), "ci_low": None, "ci_high": None, "n": len(corr.get("runs", []))})
    inst = result.get("instance_level") or {}
    for key in ("qoi_difference", "accuracy_difference", "p_value"):
        if inst.get(key) is not None:
            value, lo, hi = _ci(inst[key])
            rows.append({"run": "pooled", "task": None, "metric": f"top_pattern_{key}", "role": inst.get("role"),
                         "layer": None, "value": value, "ci_low": lo, "ci_high": hi,
                         "n": inst.get("n_top", 0) + inst.get("n_rest", 0)})
    return pd.DataFrame(rows, columns=list(ANALYSIS_COLUMNS))


def _ablation_rows(task: Any, summary: dict[str, Any]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    n = summary.get("instances")
    for m in summary.get("methods", []):
        for metric in [*METRICS, *(k for k in IIA_METRICS if k in m)]:
            value, lo, hi = _ci(m.get(metric))
            rows.append({"task": task, "kind": "method", "method": m["name"], "group": m.get("group"),
                         "metric": metric, "value": value, "ci_low": lo, "ci_high": hi, "nodes": m.get("nodes"),
                         "n": n, "verdict": None})
    floor = summary.get("floor")
    if floor:
        for metric in ("accuracy_retained", "qoi_retained"):
            value, lo, hi = _ci(floor.get(metric))
            rows.append({"task": task, "kind": "method", "method": "(no node kept)", "group": "floor",
                         "metric": metric, "value": value, "ci_low": lo, "ci_high": hi, "nodes": 0.0, "n": n,
                         "verdict": None})
    for c in summary.get("comparisons", []):
        value, lo, hi = _ci(c.get("difference"))
        rows.append({"task": task, "kind": "comparison", "method": c["b"], "group": c.get("group"),
                     "metric": c["metric"], "value": value, "ci_low": lo, "ci_high": hi,
                     "nodes": (c.get("nodes") or [None, None])[1], "n": n, "verdict": c.get("verdict")})
    return rows


def ablation_frame(result: dict[str, Any]) -> Any:
    """:func:`ablate_run`'s result (or a pooled summary), long format (module doc)."""
    import pandas as pd

    rows = _ablation_rows(result.get("task") or "all", result)
    for task, summary in (result.get("per_task") or {}).items():
        rows += _ablation_rows(task, summary)
    return pd.DataFrame(rows, columns=list(ABLATION_COLUMNS))


def write_csv(path: str | Path, frame: Any) -> Path:
    """Write ``frame`` as CSV (no index column) to ``path`` atomically."""
    return write_text(path, frame.to_csv(index=False))
