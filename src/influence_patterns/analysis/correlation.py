"""Does consistency track accuracy? (docs/method.md#analyses; definitions in docs/analyses.md)

- over tasks: Spearman's ρ between a role's consistency and accuracy, one point per
  run, with a two-sided permutation p-value (``scipy.stats.permutation_test``, the
  pairings permuted; exact when n! ≤ the number of resamples);
- per instance: instances whose role pattern is the task's most common one against the
  others — Mann–Whitney U on the QoI (two-sided) and bootstrap CIs of the difference in
  mean QoI and in accuracy (groups resampled separately, seeded).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from influence_patterns.analysis import bootstrap as bs
from influence_patterns.runs import RunRecord


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

    p is the permutation p-value (module doc). ρ and p are ``None`` with fewer than three
    runs or a constant variable.
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


PERMUTATIONS = 10000


def _spearman(xs: Sequence[float], ys: Sequence[float], seed: int = 0) -> tuple[float | None, float | None]:
    """ρ and its two-sided permutation p-value; ``None`` below 3 points or for a constant variable."""
    from scipy.stats import permutation_test, spearmanr

    if len(xs) < 3 or len(set(xs)) < 2 or len(set(ys)) < 2:
        return None, None
    rho = float(spearmanr(xs, ys).statistic)
    if math.isnan(rho):
        return None, None
    x = np.asarray(xs, float)
    # one sample permuted against fixed x: exact over all k! orders when k! <= PERMUTATIONS
    res = permutation_test((np.asarray(ys, float),), lambda y: spearmanr(x, y).statistic, permutation_type="pairings",
                           n_resamples=PERMUTATIONS, alternative="two-sided", random_state=np.random.default_rng(seed))
    return rho, float(res.pvalue)


def instance_level(records: Sequence[RunRecord], is_top: Sequence[bool], resamples: int = bs.RESAMPLES,
                   seed: int = bs.SEED) -> dict[str, Any]:
    """Instances flagged ``is_top`` (their pattern is the task's most common one) against
    the others: group sizes, Mann–Whitney U and its p on the QoI, and bootstrap CIs of
    the differences top − rest in mean QoI and in accuracy (QoI > 0)."""
    from scipy.stats import mannwhitneyu

    empty = {"n_top": 0, "n_rest": 0, "u": None, "p_value": None, "qoi_difference": None,
             "accuracy_difference": None}
    if not records:
        return empty
    q_top = np.array([r.q for r, t in zip(records, is_top) if t])
    q_rest = np.array([r.q for r, t in zip(records, is_top) if not t])
    out = {**empty, "n_top": int(q_top.size), "n_rest": int(q_rest.size)}
    if q_top.size == 0 or q_rest.size == 0:
        return out
    res = mannwhitneyu(q_top, q_rest, alternative="two-sided")
    rng = np.random.default_rng(seed)
    it = rng.integers(0, q_top.size, (resamples, q_top.size))
    ir = rng.integers(0, q_rest.size, (resamples, q_rest.size))
    boot_q = q_top[it].mean(-1) - q_rest[ir].mean(-1)
    boot_a = (q_top[it] > 0).mean(-1) - (q_rest[ir] > 0).mean(-1)
    out.update({
        "u": float(res.statistic), "p_value": float(res.pvalue),
        "qoi_difference": {"value": float(q_top.mean() - q_rest.mean()), "ci": bs.percentile_ci(boot_q)},
        "accuracy_difference": {"value": float((q_top > 0).mean() - (q_rest > 0).mean()),
                                "ci": bs.percentile_ci(boot_a)},
    })
    return out
