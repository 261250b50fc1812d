"""attribution/influence.py, called directly: ``restricted_influence`` is the definition of
pattern influence (docs/method.md#pattern-influence), so it is checked against oracles
written elsewhere: plain IG from the shared pass and from Captum, and the path partition."""

from __future__ import annotations

import pytest
import torch

from influence_patterns import Explainer, Query
from influence_patterns.attribution.influence import Constraint, restricted_influence
from influence_patterns.attribution.quadrature import make_quadrature
from influence_patterns.search.full_width import plain_gradients

QUERY = Query("the boy near the girls [MASK] good", ("is", "are"))


@pytest.fixture
def setup(mlm, tokenizer):
    ex = Explainer(mlm, tokenizer)
    batch = ex.prepare([QUERY])
    quad = make_quadrature(8, "gauss-legendre", dtype=batch.x.dtype)
    return ex, batch, quad


def test_unrestricted_influence_is_plain_ig(setup):
    """No constraint at any layer: I(x_i, whole graph) = g(x_i) of the shared plain pass."""
    ex, batch, quad = setup
    L = ex.adapter.num_layers
    _, g = plain_gradients(ex.adapter, batch, quad, ex.qoi)
    for i in range(batch.lengths[0]):
        got = restricted_influence(ex.adapter, batch, 0, i, [None] * L, quad, ex.qoi)
        assert got == pytest.approx(float(g[0, i]), rel=1e-10, abs=1e-12)
    assert float(g[0].abs().max()) > 1e-3  # not all zero


def test_the_positions_of_a_layer_partition_its_paths(setup):
    """Every path crosses one h^l_t per layer, and inside it one of the skip or a head:
    restricted to each and summed, the pieces give back the whole (method.md, the graph)."""
    ex, batch, quad = setup
    L, H, n = ex.adapter.num_layers, ex.adapter.num_heads, batch.lengths[0]
    source = 2
    whole = restricted_influence(ex.adapter, batch, 0, source, [None] * L, quad, ex.qoi)
    for l in range(1, L + 1):
        cons = lambda c: [None] * (l - 1) + [c] + [None] * (L - l)  # noqa: E731
        by_position = [restricted_influence(ex.adapter, batch, 0, source, cons(Constraint(t)), quad, ex.qoi)
                       for t in range(n)]
        assert sum(by_position) == pytest.approx(whole, rel=1e-9, abs=1e-12)
        t = max(range(n), key=lambda k: abs(by_position[k]))
        nodes = ["skip", *range(H)]
        pieces = [restricted_influence(ex.adapter, batch, 0, source, cons(Constraint(t, c)), quad, ex.qoi)
                  for c in nodes]
        assert sum(pieces) == pytest.approx(by_position[t], rel=1e-9, abs=1e-12)
        if t != source or l > 1:
            assert any(abs(p) > 1e-9 for p in pieces[1:])  # the heads carry something


def test_plain_ig_equals_captums(setup):
    """Plain IG g(x_i) equals Captum's ``IntegratedGradients`` on the word-piece embeddings
    (same Gauss–Legendre rule, same baseline), token by token. Captum rounds its rule's
    points and weights differently (relative differences near 1e-8), hence 1e-6."""
    captum_attr = pytest.importorskip("captum.attr", reason="captum is not installed (pip install -e .[dev])")
    ex, batch, quad = setup
    n = batch.lengths[0]
    am, target, classes = batch.attention_mask[:1, :n], batch.target_index[:1], batch.classes[:1]

    def q_of(embeddings: torch.Tensor) -> torch.Tensor:
        rows = embeddings.shape[0]
        return ex.qoi(ex.adapter.logits(embeddings, am.expand(rows, n), target.expand(rows)), classes.expand(rows, 2))

    ig = captum_attr.IntegratedGradients(q_of)
    theirs = ig.attribute(batch.x[:1, :n], baselines=batch.baseline[:1, :n], n_steps=len(quad),
                          method="gausslegendre").sum(-1)[0]
    _, g = plain_gradients(ex.adapter, batch, quad, ex.qoi)
    assert float(theirs.abs().max()) > 1e-3
    torch.testing.assert_close(g[0, :n], theirs, rtol=1e-6, atol=1e-9)
    ours = [restricted_influence(ex.adapter, batch, 0, i, [None] * ex.adapter.num_layers, quad, ex.qoi)
            for i in range(n)]
    torch.testing.assert_close(torch.tensor(ours, dtype=theirs.dtype), theirs, rtol=1e-6, atol=1e-9)
