"""Skip vs heads (DESIGN §6): how often, and with how much influence, head-level
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
"""

from __future__ import annotations

from typing import Any, Iterable


def _ratio(a: float, b: float) -> float | None:
    return a / b if b > 0 else None


def iter_patterns(rows: Iterable[dict[str, Any]]) -> Iterable[tuple[dict[str, Any], dict[str, Any]]]:
    """``(row, pattern dict)`` for every pattern of every row."""
    for row in rows:
        for p in row.get("patterns", []):
            yield row, p


def skip_statistics(patterns: Iterable[dict[str, Any]], num_layers: int) -> dict[str, Any]:
    """Skip/head counts, shares and ratios of ``patterns`` (pattern dicts), see the module doc."""
    skips = [0] * num_layers
    heads = [0] * num_layers
    w_skip = [0.0] * num_layers
    w_head = [0.0] * num_layers
    count = 0
    for p in patterns:
        count += 1
        weight = abs(float(p["influence_head"]))
        for l, h in enumerate(p["heads"]):
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
