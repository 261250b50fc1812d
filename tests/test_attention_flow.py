"""The fast maximum flow of ``attention-flow`` (Dinic's algorithm on one scipy graph per
sentence) against the literal networkx Edmonds–Karp reference: the same flow value
exactly, a valid flow (capacities, conservation), and the same edge flows and path where
the maximum flow is unique. A maximum flow is not unique in general: docs/analyses.md."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from influence_patterns import Explainer, Query
from influence_patterns.analysis import methods as B

from conftest import make_model


def random_layers(rng: np.random.Generator, n: int, L: int, density: float) -> list[np.ndarray]:
    """L random (query, key) weight matrices, rows normalised, some entries zero."""
    out = []
    for _ in range(L):
        w = rng.random((n, n)) * (rng.random((n, n)) < density)
        out.append(w / np.maximum(w.sum(axis=1, keepdims=True), 1e-12))
    return out


def check_valid(weights: list[np.ndarray], source: int, target: int, value: int, flow: list[np.ndarray]) -> None:
    """Capacity and conservation of integer edge flows (query, key) per layer."""
    caps = B.flow_capacities(weights)
    n, L = weights[0].shape[0], len(weights)
    for f, c in zip(flow, caps):
        assert (f >= 0).all() and (f <= c).all()
    out_of_source = flow[0].sum(axis=0)  # per key position at layer 0
    assert out_of_source[source] == value and (np.delete(out_of_source, source) == 0).all()
    for l in range(1, L):  # into (l, t) = out of (l, t)
        assert (flow[l - 1].sum(axis=1) == flow[l].sum(axis=0)).all()
    into_sink = flow[L - 1].sum(axis=1)
    assert into_sink[target] == value and (np.delete(into_sink, target) == 0).all()


@pytest.mark.parametrize("seed", range(6))
def test_dinic_matches_the_networkx_value_and_is_a_valid_flow(seed):
    rng = np.random.default_rng(seed)
    for _ in range(15):
        n, L = int(rng.integers(2, 9)), int(rng.integers(1, 5))
        weights = random_layers(rng, n, L, density=float(rng.uniform(0.2, 1.0)))
        graph = B.LayeredFlow(B.flow_capacities(weights))
        for source in range(n):
            target = int(rng.integers(n))
            want, ref_flow = B.max_flow_reference(weights, source, target)
            value, flow = graph.solve(source, target)
            assert value == want
            check_valid(weights, source, target, want, ref_flow)  # the check itself can fail
            check_valid(weights, source, target, value, flow)
            got = B.attention_flow_weights(weights, source, target)
            assert (got is None) == (want == 0)


def test_a_flow_that_breaks_conservation_is_caught():
    w = [np.array([[0.5, 0.0], [0.5, 0.0]]), np.array([[0.0, 0.0], [0.2, 0.6]])]
    value, flow = B.LayeredFlow(B.flow_capacities(w)).solve(0, 1)
    flow[0][1, 0] -= 1
    with pytest.raises(AssertionError):
        check_valid(w, 0, 1, value, flow)


@pytest.mark.parametrize("seed", range(4))
def test_unique_flows_give_the_reference_edges_and_path(seed):
    """Where every node beyond layer 1 has one incoming edge (each query attends to one
    key), every (layer 1) node starts at most one path to the sink and those paths share
    only the source: the maximum flow is unique, and both solvers give the same edge
    flows and path."""
    rng = np.random.default_rng(100 + seed)
    for _ in range(10):
        n, L = int(rng.integers(2, 8)), int(rng.integers(2, 5))
        weights = random_layers(rng, n, L, density=0.7)
        for l in range(1, L):  # query t of layer l+1 reads one key only
            w = np.zeros((n, n))
            w[np.arange(n), rng.integers(n, size=n)] = rng.uniform(0.05, 1.0, size=n)
            weights[l] = w
        source, target = int(rng.integers(n)), int(rng.integers(n))
        want, ref = B.max_flow_reference(weights, source, target)
        value, flow = B.LayeredFlow(B.flow_capacities(weights)).solve(source, target)
        assert value == want
        assert all((a == b).all() for a, b in zip(flow, ref))
        fast, slow = B.attention_flow_weights(weights, source, target), B.attention_flow_weights_reference(weights, source, target)
        if want:
            valid = np.ones(n, dtype=bool)
            assert B.max_product_path(fast, source, target, valid) == B.max_product_path(slow, source, target, valid)


def test_on_real_attention(tokenizer):
    """On a model's residual-augmented attention: the values agree exactly and both flows
    are valid for every source; the paths may differ only where the flow is not unique."""
    torch.manual_seed(0)
    ex = Explainer(make_model("mlm", layers=3, heads=2, seed=2), tokenizer)
    batch = ex.prepare([Query("the boys near the old girl by the house [MASK] good", ("are", "is"))])
    ctx = B.MethodInput(ex.adapter, batch, [], None, ex.qoi)
    n, target = batch.lengths[0], int(batch.target_index[0])
    weights = B._residual_attention([a[0, :, :n, :n] for a in ctx.attentions()])
    graph = B.LayeredFlow(B.flow_capacities(weights))
    for source in range(n):
        want, ref = B.max_flow_reference(weights, source, target)
        value, flow = graph.solve(source, target)
        assert value == want > 0
        check_valid(weights, source, target, value, flow)
        check_valid(weights, source, target, want, ref)


def test_node_sets_cached_by_the_networkx_version_are_not_reused():
    """The node-set cache key of ``attention-flow`` names the solver, so a run directory's
    ``nodes-attention-flow.json`` written with networkx's flow is computed again."""
    from types import SimpleNamespace

    from influence_patterns.analysis import ablation as A

    ex = SimpleNamespace(config=SimpleNamespace(baseline="mask", keep_special=False))
    key = lambda m: A._paths_key(ex, [], m, 0, 32, "gauss-legendre", None, "sha")  # noqa: E731
    assert key("attention-flow")["version"] == "dinic"
    assert "version" not in key("rollout") and "version" not in key("internal-influence")
