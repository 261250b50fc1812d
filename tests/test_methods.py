"""analysis/methods.py against the definition: internal influence of a node is the IG of
the source restricted to that node at its layer alone, i.e. ``restricted_influence`` with
one constraint (docs/method.md#pattern-influence); the shared-pass scores must equal it."""

from __future__ import annotations

import pytest

from influence_patterns import Explainer, Query
from influence_patterns.analysis import methods as B
from influence_patterns.attribution.influence import Constraint, restricted_influence
from influence_patterns.attribution.quadrature import make_quadrature

from conftest import make_model


@pytest.mark.parametrize("seed", [0, 1])
def test_internal_influence_is_restricted_influence_at_one_layer(tokenizer, seed):
    ex = Explainer(make_model("mlm", layers=3, heads=2, seed=seed), tokenizer)
    batch = ex.prepare([Query("the boys near the girl [MASK] good", ("are", "is"))])
    quad = make_quadrature(6, "gauss-legendre", dtype=batch.x.dtype)
    ctx = B.MethodInput(ex.adapter, batch, [], quad, ex.qoi)
    L, H, n = ex.adapter.num_layers, ex.adapter.num_heads, batch.lengths[0]
    sources = batch.sources[0][:2]
    scores = B.source_scores(ctx, 0, sources)

    def one(source: int, l: int, c: Constraint) -> float:
        cons = [None] * L
        cons[l - 1] = c
        return restricted_influence(ex.adapter, batch, 0, source, cons, quad, ex.qoi)

    for s, i in enumerate(sources):
        for l in range(1, L + 1):
            for t in range(n):
                assert float(scores.h[l - 1][s, t]) == pytest.approx(one(i, l, Constraint(t)), rel=1e-8, abs=1e-11)
            t = int(scores.h[l - 1][s, :n].abs().argmax())
            assert float(scores.skips[l - 1][s, t]) == pytest.approx(one(i, l, Constraint(t, "skip")), rel=1e-8,
                                                                     abs=1e-11)
            for j in range(H):
                assert float(scores.heads[l - 1][s, t, j]) == pytest.approx(one(i, l, Constraint(t, j)), rel=1e-8,
                                                                            abs=1e-11)
    assert float(scores.h[0][0, :n].abs().max()) > 1e-3  # a non-trivial comparison
