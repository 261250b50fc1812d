"""Does consistency track accuracy? (docs/method.md#analyses; definitions in docs/analyses.md)

- over tasks: Spearman's ρ between a role's consistency and accuracy, one point per
  run, with a two-sided permutation p-value (``scipy.stats.permutation_test``, the
  pairings permuted; exact when n! ≤ the number of resamples);
- per instance: instances whose role pattern is the task's most common one against the
  others, WITHIN each task (stratified: pooling tasks repeats the across-task test) —
  the Mantel–Haenszel-weighted difference in mean QoI and in accuracy with bootstrap CIs
  and a permutation p-value (labels permuted within tasks); the pooled Mann–Whitney U
  is kept for comparison.

Confounds of the across-task correlation (say them with it): tasks differ in sentence
length and in the number of roles (nouns that could agree), and the default models were
trained on some structures and not others, so consistency and accuracy can both follow
length, roles or training exposure rather than each other.
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


def _stratified_difference(values: np.ndarray, top: np.ndarray, strata: np.ndarray) -> np.ndarray:
    """Σ_s w_s (mean of top − mean of rest in stratum s) / Σ_s w_s, w_s = n_top n_rest / n
    (the Mantel–Haenszel weights), over strata with both groups; vectorised over the
    leading axes of ``values`` and ``top`` (..., n)."""
    num = 0.0
    den = 0.0
    for s in np.unique(strata):
        m = strata == s
        v, t = values[..., m], top[..., m]
        nt = t.sum(-1)
        nr = m.sum() - nt
        ok = (nt > 0) & (nr > 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            d = (v * t).sum(-1) / nt - (v * ~t).sum(-1) / nr
        w = np.where(ok, nt * nr / m.sum(), 0.0)
        num = num + np.where(ok, w * d, 0.0)
        den = den + w
    with np.errstate(divide="ignore", invalid="ignore"):
        return num / den


def instance_level(records: Sequence[RunRecord], is_top: Sequence[bool], resamples: int = bs.RESAMPLES,
                   seed: int = bs.SEED, strata: Sequence[Any] | None = None) -> dict[str, Any]:
    """Instances flagged ``is_top`` (their pattern is their task's most common one)
    against the others, WITHIN each stratum (task; ``strata``, default: one): the
    differences top − rest in mean QoI and in accuracy (QoI > 0), averaged over strata
    with Mantel–Haenszel weights, with bootstrap CIs (instances resampled within stratum
    and group) and a two-sided permutation p-value of the QoI difference (top/rest
    labels permuted within each stratum, :data:`PERMUTATIONS`). Pooling tasks instead
    repeats the across-task test (top instances come mostly from the easy tasks): the
    pooled Mann–Whitney U and its p are kept as ``pooled``."""
    from scipy.stats import mannwhitneyu

    empty = {"n_top": 0, "n_rest": 0, "u": None, "p_value": None, "qoi_difference": None,
             "accuracy_difference": None, "strata": 0, "test": "permutation within tasks"}
    if not records:
        return empty
    q = np.array([r.q for r in records], dtype=float)
    top = np.array(list(is_top), dtype=bool)
    st = np.array([str(s) for s in (strata if strata is not None else [""] * len(records))])
    out = {**empty, "n_top": int(top.sum()), "n_rest": int((~top).sum()), "strata": int(len(np.unique(st)))}
    informative = [s for s in np.unique(st) if 0 < top[st == s].sum() < (st == s).sum()]
    out["informative_strata"] = len(informative)
    if top.all() or (~top).all():
        return out
    res = mannwhitneyu(q[top], q[~top], alternative="two-sided")
    out["pooled"] = {"u": float(res.statistic), "p_value": float(res.pvalue),
                     "qoi_difference": float(q[top].mean() - q[~top].mean())}
    out["u"], out["mann_whitney_p_pooled"] = float(res.statistic), float(res.pvalue)
    if not informative:
        out["note"] = "no task has instances both on and off its most common pattern"
        return out
    acc = (q > 0).astype(float)
    d_q = float(_stratified_difference(q, top, st))
    d_a = float(_stratified_difference(acc, top, st))
    rng = np.random.default_rng(seed)
    # bootstrap: resample within each (stratum, group) cell
    idx = np.empty((resamples, len(q)), dtype=np.int64)
    for s in np.unique(st):
        for g in (True, False):
            cell = np.flatnonzero((st == s) & (top == g))
            if cell.size:
                idx[:, cell] = cell[rng.integers(0, cell.size, (resamples, cell.size))]
    boot_q = _stratified_difference(q[idx], top[idx], st)
    boot_a = _stratified_difference(acc[idx], top[idx], st)
    # permutation: top labels shuffled within each stratum
    perm = np.broadcast_to(top, (PERMUTATIONS, len(q))).copy()
    for s in informative:
        cell = np.flatnonzero(st == s)
        keys = rng.random((PERMUTATIONS, cell.size))
        perm[:, cell] = top[cell][np.argsort(keys, axis=1)]
    null = _stratified_difference(np.broadcast_to(q, perm.shape), perm, st)
    p = (1 + int((np.abs(null) >= abs(d_q) - 1e-12).sum())) / (PERMUTATIONS + 1)
    out.update({
        "p_value": float(p),
        "qoi_difference": {"value": d_q, "ci": bs.percentile_ci(boot_q)},
        "accuracy_difference": {"value": d_a, "ci": bs.percentile_ci(boot_a)},
    })
    return out
