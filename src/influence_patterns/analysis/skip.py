"""Skip vs heads (docs/method.md#analyses): how often, and with how much influence, head-level
patterns take the skip connection rather than an attention head.

Definitions, over every pattern of every instance (one pattern per source token):

- a *step* is one layer l = 1..L of a head-level pattern; it takes the skip
  (``heads[l-1] is None``) or a head;
- ``skip_share`` = skip steps / all steps;
- ``skip_to_head_ratio`` = skip steps / head steps (count based);
- ``skip_to_head_ratio_weighted``: every step of pattern π is weighted by |I(x_i, π^a)|
  (the pattern's head-level influence), so the ratio is
  Σ_π |I(π^a)|·#skips(π) / Σ_π |I(π^a)|·#heads(π);
- ``per_layer``: the same shares restricted to one layer.

Ratios are ``None`` when there is no head step (or no weight) to divide by.

The count ratio has a ceiling: a pattern from a source other than the target must move
to the target once, and only a head moves, so it is at most L − 1 (``ceiling``); it
equals L/h̄ − 1 for h̄ head steps per pattern, so it mostly restates how often the
token-level path moves (the paper's descriptive number). What carries the claim
(:func:`reframed_estimates`): ``heads_per_pattern`` h̄ and ``skip_when_staying``, the
share of the steps that stay on their position (where the skip is one of H + 1
choices) that take the skip, against the uniform 1/(H + 1).
:func:`skip_ratio_estimates` adds paired-bootstrap CIs over instances.
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

import numpy as np

from influence_patterns.analysis import bootstrap as bs
from influence_patterns.result import Pattern
from influence_patterns.runs import RunRecord


def _ratio(a: float, b: float) -> float | None:
    return a / b if b > 0 else None


def iter_patterns(records: Iterable[RunRecord]) -> Iterable[tuple[RunRecord, Pattern]]:
    """``(record, pattern)`` for every pattern of every record."""
    for record in records:
        for p in record.patterns:
            yield record, p


def skip_statistics(patterns: Iterable[Pattern], num_layers: int) -> dict[str, Any]:
    """Skip/head counts, shares and ratios of ``patterns``, see the module doc."""
    skips = [0] * num_layers
    heads = [0] * num_layers
    w_skip = [0.0] * num_layers
    w_head = [0.0] * num_layers
    count = 0
    for p in patterns:
        count += 1
        weight = abs(p.influence_head)
        for l, h in enumerate(p.heads):
            if h is None:
                skips[l] += 1
                w_skip[l] += weight
            else:
                heads[l] += 1
                w_head[l] += weight
    n_skip, n_head = sum(skips), sum(heads)
    ws, wh = sum(w_skip), sum(w_head)
    return {
        "patterns": count,
        "skip_steps": n_skip,
        "head_steps": n_head,
        "skip_share": _ratio(n_skip, n_skip + n_head),
        "skip_share_weighted": _ratio(ws, ws + wh),
        "skip_to_head_ratio": _ratio(n_skip, n_head),
        "skip_to_head_ratio_weighted": _ratio(ws, wh),
        "per_layer": [
            {
                "layer": l + 1,
                "skip_share": _ratio(skips[l], skips[l] + heads[l]),
                "skip_share_weighted": _ratio(w_skip[l], w_skip[l] + w_head[l]),
            }
            for l in range(num_layers)
        ],
    }


def instance_steps(records: Sequence[RunRecord]) -> dict[str, np.ndarray]:
    """Per instance: skip and head step counts and |I(π^a)|-weighted sums, for the bootstrap."""
    out = {k: np.zeros(len(records)) for k in ("skip", "head", "w_skip", "w_head")}
    for i, record in enumerate(records):
        for p in record.patterns:
            w = abs(p.influence_head)
            s = sum(h is None for h in p.heads)
            h = len(p.heads) - s
            out["skip"][i] += s
            out["head"][i] += h
            out["w_skip"][i] += w * s
            out["w_head"][i] += w * h
    return out


def _ratio_stat(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a.sum(axis=-1) / b.sum(axis=-1)


def skip_ratio_estimates(records: Sequence[RunRecord], resamples: int = bs.RESAMPLES,
                         seed: int = bs.SEED, idx: np.ndarray | None = None) -> dict[str, Any]:
    """``skip_to_head_ratio`` and ``skip_to_head_ratio_weighted`` as ``{"value", "ci"}``
    (bootstrap over instances; ``idx``: given resamples, e.g. stratified), and the
    ``ceiling`` L − 1."""
    steps = instance_steps(records)
    if idx is None:
        idx = bs.resample_indices(len(records), resamples, seed)
    L = records[0].explanation.num_layers if records else 0
    return {
        "skip_to_head_ratio": bs.estimate(_ratio_stat, [steps["skip"], steps["head"]], idx),
        "skip_to_head_ratio_weighted": bs.estimate(_ratio_stat, [steps["w_skip"], steps["w_head"]], idx),
        "ceiling": L - 1,
    }


def ratio_difference(records: Sequence[RunRecord], null_records: Sequence[RunRecord],
                     resamples: int = bs.RESAMPLES, seed: int = bs.SEED,
                     idx: np.ndarray | None = None) -> dict[str, Any]:
    """Model − null count ratio on the same instances (paired bootstrap), ``{"value", "ci"}``.
    ``null_records[i]`` is the null's record of instance ``records[i]``."""
    if len(records) != len(null_records):
        raise ValueError("records and null_records must hold the same instances in the same order")
    a = instance_steps(records)
    b = instance_steps(null_records)
    if idx is None:
        idx = bs.resample_indices(len(records), resamples, seed)
    return bs.difference(_ratio_stat, [a["skip"], a["head"]], _ratio_stat, [b["skip"], b["head"]], idx)


# --- the statistics that carry the claim ---------------------------------------------------


def instance_stay_steps(records: Sequence[RunRecord]) -> dict[str, np.ndarray]:
    """Per instance: patterns, head steps, and on the steps that STAY on their position
    (t_l = t_{l-1}) how many take the skip, and both weighted by |I(π^a)|."""
    keys = ("patterns", "head", "stay", "stay_skip", "w_stay", "w_stay_skip")
    out = {k: np.zeros(len(records)) for k in keys}
    for i, record in enumerate(records):
        for p in record.patterns:
            w = abs(p.influence_head)
            out["patterns"][i] += 1
            out["head"][i] += sum(h is not None for h in p.heads)
            for l, h in enumerate(p.heads):
                if p.positions[l + 1] == p.positions[l]:
                    out["stay"][i] += 1
                    out["w_stay"][i] += w
                    if h is None:
                        out["stay_skip"][i] += 1
                        out["w_stay_skip"][i] += w
    return out


def reframed_estimates(records: Sequence[RunRecord], num_heads: int, idx: np.ndarray) -> dict[str, Any]:
    """``heads_per_pattern`` h̄ (the count ratio is L/h̄ − 1) and ``skip_when_staying``:
    the share of staying steps that take the skip, against ``uniform`` = 1/(H + 1), a
    choice among the skip and the H heads (``weighted``: by |I(π^a)|), each
    ``{"value", "ci"}`` (bootstrap over instances, ``idx`` from :mod:`.bootstrap`)."""
    s = instance_stay_steps(records)
    stay = bs.estimate(_ratio_stat, [s["stay_skip"], s["stay"]], idx)
    weighted = bs.estimate(_ratio_stat, [s["w_stay_skip"], s["w_stay"]], idx)
    return {
        "heads_per_pattern": bs.estimate(_ratio_stat, [s["head"], s["patterns"]], idx),
        "skip_when_staying": {**stay, "uniform": 1.0 / (num_heads + 1), "steps": int(s["stay"].sum()),
                              "weighted": weighted},
    }


def stay_difference(records: Sequence[RunRecord], null_records: Sequence[RunRecord], idx: np.ndarray) -> dict[str, Any]:
    """Model − null ``skip_when_staying`` on the same instances (paired bootstrap)."""
    a = instance_stay_steps(records)
    b = instance_stay_steps(null_records)
    return bs.difference(_ratio_stat, [a["stay_skip"], a["stay"]], _ratio_stat, [b["stay_skip"], b["stay"]], idx)
