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
    (``top_frequency`` of its most common pattern) and accuracy, one point per run.

    ρ and p are ``None`` with fewer than two runs or a constant variable.
    """
    from scipy.stats import spearmanr

    role = role or consistency_role(analyses)
    xs, ys, names = [], [], []
    for a in analyses:
        c = a["consistency"].get(role, {}).get("top_frequency")
        if c is None or a.get("accuracy") is None:
            continue
        xs.append(float(c))
        ys.append(float(a["accuracy"]))
        names.append(a.get("task") or a.get("run"))
    rho = p = None
    if len(xs) >= 2 and len(set(xs)) > 1 and len(set(ys)) > 1:
        res = spearmanr(xs, ys)
        rho, p = float(res.statistic), float(res.pvalue)
        rho = None if math.isnan(rho) else rho
        p = None if p is None or math.isnan(p) else p
    return {"role": role, "runs": names, "consistency": xs, "accuracy": ys, "spearman_rho": rho, "p_value": p}
