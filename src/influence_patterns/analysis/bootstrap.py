"""Paired bootstrap over instances (docs/method.md#analyses): a 95% percentile CI for a statistic of
per-instance arrays, and for the difference of two statistics on the SAME resamples.

Resampling: ``numpy.random.default_rng(seed).integers(0, n, (resamples, n))`` — each
row is one resample of the instance indices, shared by every array (paired). The CI
is the (2.5, 97.5) percentile of the statistic over resamples (resamples where the
statistic is undefined, e.g. a ratio with a zero denominator, are left out). Checked
against ``scipy.stats.bootstrap(..., paired=True, method="percentile")`` in the tests.

Verdicts compare the CI of a difference with 0 (docs/analyses.md):
"holds" when it excludes 0 in the direction the finding claims, "does not hold" when
it excludes 0 the other way, else "inconclusive"; below :data:`MIN_INSTANCES`
instances, "too few instances".
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np

RESAMPLES = 1000
#: More resamples than this would allocate gigabytes (resamples × instances indices) for
#: no visible gain in a 95% CI; refused with one line.
MAX_RESAMPLES = 100_000
SEED = 0
LEVEL = 0.95
MIN_INSTANCES = 30



def check_resamples(resamples: object, name: str = "resamples") -> int:
    """``resamples`` as an int in 1..:data:`MAX_RESAMPLES`; ``InputError`` naming ``name`` otherwise."""
    from influence_patterns.errors import InputError

    if isinstance(resamples, bool) or not isinstance(resamples, (int, np.integer)):
        raise InputError(f"{name} must be a whole number, got {resamples!r}")
    if not 1 <= resamples <= MAX_RESAMPLES:
        raise InputError(f"{name} must be between 1 and {MAX_RESAMPLES:,}, got {resamples:,}")
    return int(resamples)


HOLDS = "holds"
DOES_NOT_HOLD = "does not hold"
INCONCLUSIVE = "inconclusive"
TOO_FEW = "too few instances"

#: a statistic of per-instance arrays, vectorised over a leading resample axis:
#: each array is (..., n) and the result is (...,)
Statistic = Callable[..., np.ndarray]


def resample_indices(n: int, resamples: int = RESAMPLES, seed: int = SEED) -> np.ndarray:
    """(resamples, n) instance indices drawn with replacement (seeded)."""
    if n < 1:
        raise ValueError("n must be at least 1")
    if resamples < 1:
        raise ValueError("resamples must be at least 1")
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def resample_indices_stratified(strata: Sequence[object], resamples: int = RESAMPLES, seed: int = SEED) -> np.ndarray:
    """(resamples, n) indices where the instances of each stratum (e.g. task) are drawn
    with replacement from that stratum only, so every resample keeps each stratum's
    size. One stratum: exactly :func:`resample_indices`."""
    n = len(strata)
    groups: dict[object, list[int]] = {}
    for i, s in enumerate(strata):
        groups.setdefault(s, []).append(i)
    if len(groups) <= 1:
        return resample_indices(n, resamples, seed)
    rng = np.random.default_rng(seed)
    out = np.empty((resamples, n), dtype=np.int64)
    for members in groups.values():
        m = np.asarray(members)
        out[:, m] = m[rng.integers(0, m.size, size=(resamples, m.size))]
    return out


def _value(x: np.ndarray | float) -> float | None:
    v = float(x)
    return v if math.isfinite(v) else None


def percentile_ci(samples: np.ndarray, level: float = LEVEL) -> list[float | None]:
    """``[lo, hi]``: the percentile interval of the finite ``samples``."""
    s = np.asarray(samples, dtype=float)
    s = s[np.isfinite(s)]
    if s.size == 0:
        return [None, None]
    alpha = (1 - level) / 2
    lo, hi = np.percentile(s, [100 * alpha, 100 * (1 - alpha)])
    return [float(lo), float(hi)]


def _apply(stat: Statistic, arrays: Sequence[np.ndarray]) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(stat(*arrays), dtype=float)


def estimate(stat: Statistic, arrays: Sequence[np.ndarray], idx: np.ndarray, level: float = LEVEL) -> dict:
    """``{"value", "ci": [lo, hi]}`` of ``stat(*arrays)``; ``idx`` from :func:`resample_indices`."""
    arrays = [np.asarray(a, dtype=float) for a in arrays]
    value = _apply(stat, arrays)
    boot = _apply(stat, [a[idx] for a in arrays])
    return {"value": _value(value), "ci": percentile_ci(boot, level)}


def difference(stat_a: Statistic, arrays_a: Sequence[np.ndarray], stat_b: Statistic,
               arrays_b: Sequence[np.ndarray], idx: np.ndarray, level: float = LEVEL) -> dict:
    """``{"value", "ci"}`` of stat_a − stat_b, both on the same resamples (paired)."""
    a = [np.asarray(x, dtype=float) for x in arrays_a]
    b = [np.asarray(x, dtype=float) for x in arrays_b]
    value = _apply(stat_a, a) - _apply(stat_b, b)
    boot = _apply(stat_a, [x[idx] for x in a]) - _apply(stat_b, [x[idx] for x in b])
    return {"value": _value(value), "ci": percentile_ci(boot, level)}


def verdict(ci: Sequence[float | None], n: int, higher_favours: bool = True, min_n: int = MIN_INSTANCES) -> str:
    """The verdict of a difference's CI (see the module doc)."""
    if n < min_n:
        return TOO_FEW
    lo, hi = ci
    if lo is None or hi is None:
        return INCONCLUSIVE
    if lo > 0:
        return HOLDS if higher_favours else DOES_NOT_HOLD
    if hi < 0:
        return DOES_NOT_HOLD if higher_favours else HOLDS
    return INCONCLUSIVE
