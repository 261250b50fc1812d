"""search/: the fast scorers against the literal reference in float32, at a tolerance
that float32 can meet (test_attribution and test_architectures compare them in float64
to 1e-9)."""

from __future__ import annotations

import pytest
import torch

from influence_patterns import Explainer, Query
from influence_patterns.attribution.quadrature import make_quadrature
from influence_patterns.search.reference import gpr_reference

from conftest import FAST_SCORERS, make_model


@pytest.mark.parametrize("method", list(FAST_SCORERS))
def test_float32_fast_equals_reference_loosely(tokenizer, method):
    """In float32 the scorers sum in other orders than the reference, so scores agree to
    float32 precision only (rel 1e-3 of the largest score of a layer), and the patterns,
    chosen by those scores, must be the same."""
    ex = Explainer(make_model("mlm", layers=3, heads=2, seed=2, dtype=torch.float32), tokenizer)
    batch = ex.prepare([Query("the boy near the girls [MASK] good", ("is", "are")),
                        Query("the cats [MASK] funny", ("are", "is"))])
    assert batch.x.dtype == torch.float32
    quad = make_quadrature(8, "gauss-legendre", dtype=batch.x.dtype)
    fast = FAST_SCORERS[method](ex.adapter, batch, quad, ex.qoi)
    ref = gpr_reference(ex.adapter, batch, quad, ex.qoi)
    for fr, rr in zip(fast, ref):
        for f, r in zip(fr, rr):
            assert (f.positions, f.heads, f.sign) == (r.positions, r.heads, r.sign)
            for fs, rs in zip(f.token_scores[:-1] + f.head_scores, r.token_scores[:-1] + r.head_scores):
                scale = float(rs.abs().max())
                torch.testing.assert_close(fs.double(), rs.double(), rtol=0, atol=1e-3 * scale + 1e-6)
            for a, b in [(f.g, r.g), (f.influence_token, r.influence_token), (f.influence_head, r.influence_head)]:
                assert a == pytest.approx(b, rel=1e-3, abs=1e-5)
