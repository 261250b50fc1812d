"""Does consistency track accuracy? Spearman rank correlation over tasks (DESIGN §6)."""

from __future__ import annotations

import math
from typing import Any, Sequence


def consistency_role(analyses: Sequence[dict[str, Any]], preferred: str = "subject") -> str:
    """``preferred`` when every run has patterns for that role, else ``all``."""
    if analyses and all(preferred in a["consistency"] for a in analyses):
        return preferred
    return "all"


def consistency_accuracy_correlation(analyses: Sequence[dict[str, Any]], role: str | None = None) -> dict[str, Any]:
    """Spearman's ρ (``scipy.stats.spearmanr``) between the ``role``'s consistency
    (``top_frequency`` of its most common pattern) and accuracy, one point per run;
    also against the mean QoI (``spearman_rho_qoi``), a graded stand-in for accuracy
    when a model gets every task (nearly) right.

    ρ and p are ``None`` with fewer than two runs or a constant variable.
    """
    role = role or consistency_role(analyses)
    xs, ys, qs, names = [], [], [], []
    for a in analyses:
        c = a["consistency"].get(role, {}).get("top_frequency")
        if c is None or a.get("accuracy") is None:
            continue
        xs.append(float(c))
        ys.append(float(a["accuracy"]))
        qs.append(a.get("mean_qoi"))
        names.append(a.get("task") or a.get("run"))
    rho, p = _spearman(xs, ys)
    rho_q, p_q = _spearman(xs, qs) if all(q is not None for q in qs) else (None, None)
    return {"role": role, "runs": names, "consistency": xs, "accuracy": ys, "spearman_rho": rho, "p_value": p,
            "mean_qoi": qs, "spearman_rho_qoi": rho_q, "p_value_qoi": p_q}


def _spearman(xs: Sequence[float], ys: Sequence[float]) -> tuple[float | None, float | None]:
    from scipy.stats import spearmanr

    if len(xs) < 2 or len(set(xs)) < 2 or len(set(ys)) < 2:
        return None, None
    res = spearmanr(xs, ys)
    rho, p = float(res.statistic), float(res.pvalue)
    return (None if math.isnan(rho) else rho), (None if math.isnan(p) else p)
