"""search/: the fast scorers against the literal reference beyond the float64, 2-layer,
seed-0 models of test_attribution and test_architectures: float32 at a tolerance that
float32 can meet, and 3-layer models of another seed on every core architecture."""

from __future__ import annotations

import pytest
import torch

from influence_patterns import Explainer, Query
from influence_patterns.attribution.quadrature import make_quadrature
from influence_patterns.search.fast import gpr_fast
from influence_patterns.search.full_width import gpr_full_width
from influence_patterns.search.reference import gpr_reference

from conftest import make_model
from test_attribution import _assert_same, _decomposition
from test_architectures import CORE, MLM_TEXTS, CLF_TEXTS, _tok, make_arch_model, tokenizers  # noqa: F401

SCORERS = {"fast": gpr_fast, "fast-full": gpr_full_width}


@pytest.mark.parametrize("method", list(SCORERS))
def test_float32_fast_equals_reference_loosely(tokenizer, method):
    """In float32 the scorers sum in other orders than the reference, so scores agree to
    float32 precision only (rel 1e-3 of the largest score of a layer), and the patterns,
    chosen by those scores, must be the same."""
    ex = Explainer(make_model("mlm", layers=3, heads=2, seed=2, dtype=torch.float32), tokenizer)
    batch = ex.prepare([Query("the boy near the girls [MASK] good", ("is", "are")),
                        Query("the cats [MASK] funny", ("are", "is"))])
    assert batch.x.dtype == torch.float32
    quad = make_quadrature(8, "gauss-legendre", dtype=batch.x.dtype)
    fast = SCORERS[method](ex.adapter, batch, quad, ex.qoi)
    ref = gpr_reference(ex.adapter, batch, quad, ex.qoi)
    for fr, rr in zip(fast, ref):
        for f, r in zip(fr, rr):
            assert (f.positions, f.heads, f.sign) == (r.positions, r.heads, r.sign)
            for fs, rs in zip(f.token_scores[:-1] + f.head_scores, r.token_scores[:-1] + r.head_scores):
                scale = float(rs.abs().max())
                torch.testing.assert_close(fs.double(), rs.double(), rtol=0, atol=1e-3 * scale + 1e-6)
            for a, b in [(f.g, r.g), (f.influence_token, r.influence_token), (f.influence_head, r.influence_head)]:
                assert a == pytest.approx(b, rel=1e-3, abs=1e-5)


@pytest.mark.parametrize("kind", ["mlm", "classification"])
@pytest.mark.parametrize("arch", CORE)
def test_three_layers_second_seed_fast_equals_reference(tokenizers, arch, kind):  # noqa: F811
    model = make_arch_model(arch, kind, layers=3, heads=2, seed=1)
    ex = Explainer(model, _tok(tokenizers, arch))
    L = ex.adapter.num_layers
    assert L == 3
    batch = ex.prepare((MLM_TEXTS if kind == "mlm" else CLF_TEXTS)[:1])
    quad = make_quadrature(4, "gauss-legendre", dtype=batch.x.dtype)
    ref = gpr_reference(ex.adapter, batch, quad, ex.qoi)
    for search in SCORERS.values():
        fast = search(ex.adapter, batch, quad, ex.qoi)
        _assert_same(fast, ref)
    for s in ref[0]:
        _decomposition(s, L, atol=1e-9)
    # a 3-layer pattern has a middle layer: the search really chooses there
    assert len({s.positions[1] for s in ref[0]}) > 1 or any(h is not None for s in ref[0] for h in s.heads[:-1])
