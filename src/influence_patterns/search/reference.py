"""Reference GPR (docs/method.md#the-reference): a plain loop, one restricted IG per
candidate.

Slow on purpose; short enough to check against the specification line by line.
The fast scorers (``search.fast``, ``search.full_width``) must give the same patterns
and scores.
"""

from __future__ import annotations

from typing import Callable

import torch

from influence_patterns.attribution.influence import Constraint, restricted_influence
from influence_patterns.attribution.inputs import Batch
from influence_patterns.attribution.qoi import QoIFn
from influence_patterns.attribution.quadrature import Quadrature
from influence_patterns.graph.adapters import Adapter
from influence_patterns.search.common import SourceSearch, causal_candidates, choose, choose_node


def gpr_reference_source(
    adapter: Adapter, batch: Batch, b: int, source: int, quad: Quadrature, qoi: QoIFn
) -> SourceSearch:
    """GPR for source token ``source`` of sentence ``b``, one restricted IG per candidate
    (docs/method.md#guided-pattern-refinement)."""
    L, H, n = adapter.num_layers, adapter.num_heads, batch.lengths[b]
    target = int(batch.target_index[b])

    def influence(constraints: list[Constraint | None]) -> float:
        return restricted_influence(adapter, batch, b, source, constraints, quad, qoi)

    # g(x_i): the whole graph; its sign sets the direction of the search.
    g = influence([None] * L)
    sign = 1 if g >= 0 else -1

    # Stage 1, token level: the best position at each layer given the prefix.
    cons: list[Constraint | None] = [None] * L
    positions = [source]
    token_scores = []
    for l in range(1, L):
        scores = torch.tensor(
            [influence(cons[: l - 1] + [Constraint(t)] + cons[l:]) for t in range(n)], dtype=torch.float64
        )
        t = int(choose(scores, sign, causal_candidates(adapter.causal, n, positions[-1])))
        cons[l - 1] = Constraint(t)
        positions.append(t)
        token_scores.append(scores)
    cons[L - 1] = Constraint(target)
    positions.append(target)
    influence_token = influence(cons)
    last = torch.full((n,), float("nan"), dtype=torch.float64)
    last[target] = influence_token
    token_scores.append(last)

    # Stage 2, head level: at each layer the skip (index 0) or head j (index 1+j).
    heads: list[int | None] = []
    head_scores = []
    for l in range(1, L + 1):
        t = positions[l]
        candidates: list = ["skip"] + list(range(H))
        scores = torch.tensor(
            [influence(cons[: l - 1] + [Constraint(t, c)] + cons[l:]) for c in candidates], dtype=torch.float64
        )
        k = int(choose_node(scores, sign, positions[l - 1] == t))  # a skip only continues the position
        cons[l - 1] = Constraint(t, candidates[k])
        heads.append(None if k == 0 else k - 1)
        head_scores.append(scores)
    influence_head = float(head_scores[-1][0 if heads[-1] is None else heads[-1] + 1])

    return SourceSearch(
        sentence=b,
        source_index=source,
        source_token=batch.tokens[b][source],
        sign=sign,
        g=g,
        positions=positions,
        heads=heads,
        influence_token=influence_token,
        influence_head=influence_head,
        token_scores=token_scores,
        head_scores=head_scores,
    )


def gpr_reference(
    adapter: Adapter, batch: Batch, quad: Quadrature, qoi: QoIFn, progress: Callable[[int], None] | None = None
) -> list[list[SourceSearch]]:
    """GPR for every source token of every sentence in ``batch``; ``progress(1)`` after each."""
    out: list[list[SourceSearch]] = []
    for b in range(len(batch)):
        row = []
        for i in batch.sources[b]:
            row.append(gpr_reference_source(adapter, batch, b, i, quad, qoi))
            if progress is not None:
                progress(1)
        out.append(row)
    return out
