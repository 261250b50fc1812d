"""docs/method.md#pattern-influence properties: completeness, decomposition, fast == reference, signs, ties."""

import pytest
import torch

from influence_patterns import Explainer, Query
from influence_patterns.attribution.influence import qoi_values
from influence_patterns.attribution.quadrature import make_quadrature
from influence_patterns.search.fast import gpr_fast
from influence_patterns.search.full_width import plain_gradients
from influence_patterns.search.reference import gpr_reference

from conftest import FAST_SCORERS, assert_decomposes, assert_same_searches, make_model


TEXTS = [
    Query("the boy near the girls [MASK] good", ("is", "are")),
    Query("the dogs [MASK] here", ("are", "is")),
    Query("a teacher that the cats like [MASK] very funny", ("was", "were")),
]


def _run(explainer, queries, steps=12, rule="riemann"):
    batch = explainer.prepare(queries)
    quad = make_quadrature(steps, rule, dtype=batch.x.dtype)
    return batch, quad


@pytest.mark.parametrize("baseline", ["mask", "zero", "pad"])
def test_completeness(mlm, tokenizer, baseline):
    """Σ_i g(x_i) over all tokens = q(x) - q(b), up to the quadrature error."""
    ex = Explainer(mlm, tokenizer, baseline=baseline)
    batch, quad = _run(ex, TEXTS, steps=24, rule="gauss-legendre")
    _, g = plain_gradients(ex.adapter, batch, quad, ex.qoi)
    q_x, q_b = qoi_values(ex.adapter, batch, ex.qoi)
    torch.testing.assert_close(g.sum(1), q_x - q_b, atol=1e-6, rtol=1e-6)


def test_completeness_riemann_error_shrinks(mlm, tokenizer):
    ex = Explainer(mlm, tokenizer)
    errors = []
    for steps in (5, 50, 500):
        batch, quad = _run(ex, TEXTS[:1], steps=steps)
        _, g = plain_gradients(ex.adapter, batch, quad, ex.qoi)
        q_x, q_b = qoi_values(ex.adapter, batch, ex.qoi)
        errors.append(float((g.sum() - (q_x - q_b).sum()).abs()))
    assert errors[2] < errors[1] < errors[0]
    assert errors[2] < 1e-2 * abs(float((q_x - q_b).sum())) + 1e-6


def test_keep_special_gives_special_tokens_no_influence(mlm, tokenizer):
    ex = Explainer(mlm, tokenizer, keep_special=True)
    batch, quad = _run(ex, TEXTS[:1], steps=16, rule="gauss-legendre")
    _, g = plain_gradients(ex.adapter, batch, quad, ex.qoi)
    assert float(g[0, 0]) == 0.0  # [CLS] stays real: x - b = 0
    q_x, q_b = qoi_values(ex.adapter, batch, ex.qoi)
    torch.testing.assert_close(g.sum(1), q_x - q_b, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("method", ["reference", *FAST_SCORERS])
def test_decomposition(mlm, tokenizer, method):
    ex = Explainer(mlm, tokenizer)
    batch, quad = _run(ex, TEXTS)
    search = gpr_reference if method == "reference" else FAST_SCORERS[method]
    for row in search(ex.adapter, batch, quad, ex.qoi):
        for s in row:
            assert_decomposes(s, ex.adapter.num_layers, atol=1e-9)


@pytest.mark.parametrize("fast", list(FAST_SCORERS))
@pytest.mark.parametrize("rule", ["riemann", "gauss-legendre"])
def test_fast_equals_reference_mlm(mlm, tokenizer, rule, fast):
    ex = Explainer(mlm, tokenizer)
    batch, quad = _run(ex, TEXTS, steps=7, rule=rule)
    assert_same_searches(FAST_SCORERS[fast](ex.adapter, batch, quad, ex.qoi), gpr_reference(ex.adapter, batch, quad, ex.qoi))


@pytest.mark.parametrize("fast", list(FAST_SCORERS))
def test_fast_equals_reference_classifier_and_chunks(classifier, tokenizer, fast):
    ex = Explainer(classifier, tokenizer)
    queries = [Query("a very funny movie", label=1), Query("the film was not good and the cat was bad", label=0)]
    batch, quad = _run(ex, queries, steps=6)
    ref = gpr_reference(ex.adapter, batch, quad, ex.qoi)
    # Small max_rows: one source per chunk (fast-full), one α row per chunk of the
    # plain pass and one source per chunk (fast); the default batches everything.
    assert_same_searches(FAST_SCORERS[fast](ex.adapter, batch, quad, ex.qoi, max_rows=1 if fast == "fast" else 7), ref)
    assert_same_searches(FAST_SCORERS[fast](ex.adapter, batch, quad, ex.qoi), ref)


def test_fast_with_sources_subset_and_negative_tokens(mlm, tokenizer):
    """``sources``: only the chosen positions are searched, with the same results as in
    the full search; tokens of negative IG are searched with -q."""
    ex = Explainer(mlm, tokenizer)
    batch, quad = _run(ex, TEXTS, steps=5, rule="gauss-legendre")
    full = gpr_fast(ex.adapter, batch, quad, ex.qoi)
    assert any(s.sign < 0 for row in full for s in row) and any(s.sign > 0 for row in full for s in row)
    chosen = [Query(q.text, q.targets, sources=[2, 1] if b != 1 else [2]) for b, q in enumerate(TEXTS)]
    sub_batch, _ = _run(ex, chosen, steps=5, rule="gauss-legendre")
    sub = gpr_fast(ex.adapter, sub_batch, quad, ex.qoi)
    assert [[s.source_index for s in row] for row in sub] == [[1, 2], [2], [1, 2]]
    assert_same_searches(sub, gpr_reference(ex.adapter, sub_batch, quad, ex.qoi))
    by_source = {(s.sentence, s.source_index): s for row in full for s in row}
    assert_same_searches(sub, [[by_source[(s.sentence, s.source_index)] for s in row] for row in sub])


def test_batched_sentences_equal_one_at_a_time(mlm, tokenizer):
    ex = Explainer(mlm, tokenizer, steps=8)
    together = ex.explain_batch(TEXTS)
    for q, expl in zip(TEXTS, together):
        alone = ex.explain(q.text, targets=q.targets)
        for a, b in zip(alone.patterns, expl.patterns):
            assert (a.positions, a.heads) == (b.positions, b.heads)
            assert a.influence_head == pytest.approx(b.influence_head, rel=1e-9, abs=1e-12)


def test_sign_follows_net_effect(mlm, tokenizer):
    ex = Explainer(mlm, tokenizer, steps=8)
    expl = ex.explain_batch(TEXTS)
    signs = [p.sign for e in expl for p in e.patterns]
    assert 1 in signs and -1 in signs  # the test sentences exercise both
    for e in expl:
        for p in e.patterns:
            assert p.sign == (1 if p.g >= 0 else -1)
            # the search maximises sign * I, so the chosen pattern carries the token's sign
            assert p.sign * p.influence_token >= 0
            assert p.sign * p.influence_head >= 0


def test_ties_go_to_the_skip(tokenizer):
    """A token whose embedding equals the baseline has zero influence everywhere:
    every candidate ties, and wherever the position continues the skip wins."""
    model = make_model("mlm", layers=3, heads=2)
    zero_word = tokenizer.convert_tokens_to_ids("cat")
    with torch.no_grad():
        model.get_input_embeddings().weight[zero_word] = 0
    for method in ("fast", "fast-full", "reference"):
        ex = Explainer(model, tokenizer, baseline="zero", steps=4, method=method)
        expl = ex.explain("the cat [MASK] good", targets=("is", "are"))
        p = expl.pattern_for(2)
        assert p.g == 0 and p.influence_head == 0
        for l in range(1, 4):
            if p.positions[l - 1] == p.positions[l]:
                assert p.heads[l - 1] is None
            else:
                assert p.heads[l - 1] == 0  # the skip cannot change position; first head wins


def test_gradient_core_chunks_alpha_rows_freely(mlm, tokenizer):
    """attribution.gradients: one plain pass for all sentences, any chunking of the
    (sentence × α) rows (here one row at a time, splitting sentences) gives the same
    node cotangents and the same plain IG."""
    from influence_patterns.attribution.gradients import NODE_KINDS, node_cotangents

    ex = Explainer(mlm, tokenizer)
    batch, quad = _run(ex, TEXTS, steps=4, rule="gauss-legendre")
    whole, g = node_cotangents(ex.adapter, batch, quad, ex.qoi)
    rows, g1 = node_cotangents(ex.adapter, batch, quad, ex.qoi, max_rows=3)
    torch.testing.assert_close(g1, g, rtol=1e-12, atol=1e-12)
    L, A = ex.adapter.num_layers, len(quad)
    assert [len(whole[k]) for k in NODE_KINDS] == [L + 1, L, L]
    for k in NODE_KINDS:
        for a, b in zip(whole[k], rows[k]):
            assert a.shape == (len(TEXTS), A) + tuple(batch.x.shape[1:2]) + (ex.adapter.hidden_size,)
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    # every kind is really computed (not left at zero)
    assert all(float(c.abs().sum()) > 0 for c in whole["context"] + whole["skip"])
    with pytest.raises(ValueError, match="unknown node kinds"):
        node_cotangents(ex.adapter, batch, quad, ex.qoi, kinds=("heads",))


@pytest.mark.parametrize("method, module, scorer", [("fast", "fast", "gpr_fast"),
                                                    ("fast-full", "full_width", "gpr_full_width")])
def test_each_method_name_runs_its_own_scorer(method, module, scorer, mlm, tokenizer, monkeypatch):
    """The registry wiring: ``method="fast"`` is the single-position scorer
    (``search/fast.py``), ``fast-full`` the full-width one (``search/full_width.py``);
    a silent swap would still pass every agreement test."""
    import importlib

    scorer_module = importlib.import_module(f"influence_patterns.search.{module}")
    calls = []
    real = getattr(scorer_module, scorer)
    monkeypatch.setattr(scorer_module, scorer, lambda *a, **k: calls.append(scorer) or real(*a, **k))
    Explainer(mlm, tokenizer, steps=2, method=method).explain("the cat [MASK] good", targets=("is", "are"))
    assert calls == [scorer]
