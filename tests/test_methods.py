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


def test_layer_conductance_is_captums(tokenizer, mlm):
    """``layer-conductance`` scores h^l_t as Captum's ``LayerConductance`` does (summed over
    the hidden units of each position). Captum differences the layer's output between
    Riemann steps where we take its exact derivative at Gauss–Legendre points, so the two
    agree as Captum's step count grows: to 1% of the largest score at 200 steps."""
    import torch

    captum_attr = pytest.importorskip("captum.attr", reason="captum is not installed (pip install -e .[dev])")
    ex = Explainer(mlm, tokenizer)
    batch = ex.prepare([Query("the boy near the girls [MASK] good", ("is", "are"))])
    n = batch.lengths[0]
    quad = make_quadrature(32, "gauss-legendre", dtype=batch.x.dtype)
    ctx = B.MethodInput(ex.adapter, batch, [], quad, ex.qoi)
    ours = B.conductance_scores(ctx, torch.arange(1), (batch.x - batch.baseline) * batch.attention_mask[..., None])
    am, target, classes = batch.attention_mask[:1, :n], batch.target_index[:1], batch.classes[:1]

    def q_of(embeddings: torch.Tensor) -> torch.Tensor:
        rows = embeddings.shape[0]
        return ex.qoi(ex.adapter.logits(embeddings, am.expand(rows, n), target.expand(rows)), classes.expand(rows, 2))

    for l, layer in enumerate(ex.adapter.layers(), start=1):
        theirs = captum_attr.LayerConductance(q_of, layer).attribute(
            batch.x[:1, :n], baselines=batch.baseline[:1, :n], n_steps=200, method="riemann_trapezoid")
        theirs = (theirs[0] if isinstance(theirs, tuple) else theirs).sum(-1)[0].detach()
        scale = float(theirs.abs().max())
        assert scale > 1e-3
        torch.testing.assert_close(ours.h[l - 1][0, :n], theirs, rtol=0, atol=1e-2 * scale)
