"""Explanation methods compared by ablation: each gives, per instance and source token,
ONE NODE PER LAYER in the form of a head-level pattern (positions t_0..t_L with
t_0 = source and t_L = target, and per layer a head index or ``None`` for the skip).

Registered methods (definitions in docs/analyses.md):

- ``pattern``: the GPR head-level patterns stored in ``results.jsonl``;
- ``attention-argmax``: greedy; information flows from a key position to a query
  position, so from the current position k, layer l takes the (query t, head j) with
  the largest attention weight A^{l,j}[t, k]; the last layer takes t = target;
- ``rollout``: Abnar & Zuidema's residual-augmented attention Ã^l = ½ mean_j A^{l,j} + ½ I;
  the path is the max-product path source → target through Ã^1..Ã^L (dynamic programming);
- ``attention-flow``: a maximum flow (Dinic's algorithm, ``scipy``; the literal networkx
  Edmonds–Karp version is kept as the reference) from (layer 0, source) to (layer L,
  target) in the layered graph with capacities Ã^l[t, k]; the path is the max-product
  path through the edge flows (a maximum flow is not unique: docs/analyses.md);
- ``internal-influence``: for source x_i, per layer the position t maximising the IG of
  x_i restricted at that layer to h^l_t (sign-aligned with g(x_i)), then at t the head
  a^{l,j}_t or skip s^l_t with the largest IG restricted to it at that layer alone;
- ``layer-conductance``: the same with the conductance of h^l_t of all inputs together
  (Captum's LayerConductance: every token's embedding interpolated), one node set shared
  by every source of the sentence;
- ``stay`` (control, no gradients): the source stays on its own position on the skip
  through layers 1..L−1, then at layer L takes the head attending most from the target
  to it (all skips when the source is the target);
- ``random-matched`` (control): a random path that takes the skip at the same layers
  as the source's GPR pattern, a random position and head at the others (the target at
  the last head layer), seeded by (seed, instance index, source);
- ``random``: same budget as a pattern: a random position per layer (target at the
  last) and a random head or skip, seeded by (seed, instance index, source).

``attention-argmax`` takes the skip where its greedy step stays on its position. For
the rollout-style methods the node at a layer is the skip when the path stays on its
position (the residual's share ½ exceeds any single head's share ½·A/H) and otherwise
the head with the largest attention from t_l to t_{l-1}. Everywhere a skip is only
chosen when t_l = t_{l-1}, as in GPR. On a causal decoder every method's positions
never decrease (t_l ≥ t_{l-1}, ``search.common.causal_candidates``): the layer
baselines choose among the later positions, the random controls draw from them, and
the attention-based paths follow the causal attention (zero to later keys).

Adding a method is one class and one line::

    class MyMethod(Method):
        name = "my-method"
        description = "..."
        def paths(self, ctx): ...   # list (sentences) of lists (sources) of NodePath
    register_method(MyMethod)
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.autograd.forward_ad as fwAD

from influence_patterns.attribution import gradients
from influence_patterns.attribution.inputs import Batch
from influence_patterns.attribution.quadrature import Quadrature
from influence_patterns.errors import DataError, InputError
from influence_patterns.graph.adapters import Adapter
from influence_patterns.graph.hooks import Interceptor, intercept
from influence_patterns.registry import Registry
from influence_patterns.result import Pattern
from influence_patterns.runs import RunRecord
from influence_patterns.search.common import causal_candidates, choose, choose_node
from influence_patterns.search.memory import heap_allocations


@dataclass(frozen=True)
class NodePath:
    """One node per layer: ``positions`` t_0..t_L (t_0 = source), ``heads`` per layer
    1..L (``None`` = skip)."""

    source: int
    positions: tuple[int, ...]
    heads: tuple[int | None, ...]

    def nodes(self) -> list[tuple[int, int, int | None]]:
        """``(layer, position, head or None)`` for layers 1..L."""
        return [(l, self.positions[l], h) for l, h in enumerate(self.heads, start=1)]


@dataclass
class MethodInput:
    """What a method sees: the model, a prepared batch and its run records (``rows[b]`` is
    sentence b's :class:`~influence_patterns.runs.RunRecord`)."""

    adapter: Adapter
    batch: Batch
    rows: list[RunRecord]
    quad: Quadrature
    qoi: Any
    seed: int = 0
    max_rows: int = 2048
    cache: dict[str, Any] = field(default_factory=dict)

    @property
    def num_layers(self) -> int:
        return self.adapter.num_layers

    def attentions(self) -> list[np.ndarray]:
        """Attention weights per layer, (B, H, n_query, n_key), on the real input."""
        if "attentions" not in self.cache:
            with torch.no_grad():
                out = self.adapter.base()(
                    inputs_embeds=self.batch.x, attention_mask=self.batch.attention_mask,
                    output_attentions=True,
                )
            if not out.attentions or out.attentions[0] is None:
                raise InputError("the model returned no attention weights (load it with eager attention)")
            self.cache["attentions"] = [a.double().cpu().numpy() for a in out.attentions]
        return self.cache["attentions"]


class Method:
    """A way to pick one node per layer for every source token."""

    name: str = ""
    description: str = ""
    group: str = ""  # "pattern", "attention", "layer" or "control"
    cache_version: str = ""  # changed when an implementation changes the node sets it picks

    def paths(self, ctx: MethodInput) -> list[list[NodePath]]:
        """Per sentence of ``ctx.batch``, per source in ``ctx.batch.sources[b]``."""
        raise NotImplementedError


ABLATION_METHODS: Registry[Method] = Registry("ablation method")


def register_method(cls: type[Method]) -> type[Method]:
    """Add a method class to :data:`ABLATION_METHODS` under its ``name``."""
    ABLATION_METHODS.register(cls.name, cls(), replace=True)
    return cls


def get_method(name: str) -> Method:
    """The method called ``name``, or one line listing the registered ones."""
    return ABLATION_METHODS.lookup(name)


# --- pattern -------------------------------------------------------------------------


def _pattern(row: RunRecord, source: int) -> Pattern:
    """The stored pattern of ``source``, or a ``DataError`` naming the instance."""
    p = row.pattern_of(source)
    if p is None:
        raise DataError(f"instance {row.index}: no pattern for source token {source}")
    return p


class PatternMethod(Method):
    name = "pattern"
    description = "GPR head-level influence patterns (results.jsonl)"
    group = "pattern"

    def paths(self, ctx):
        out = []
        for b, row in enumerate(ctx.rows):
            paths = []
            for i in ctx.batch.sources[b]:
                p = _pattern(row, i)
                paths.append(NodePath(i, tuple(p.positions), tuple(p.heads)))
            out.append(paths)
        return out


# --- attention ------------------------------------------------------------------------


def _edge_head(att: np.ndarray, l: int, t: int, k: int) -> int | None:
    """Skip when the path stays, else the head attending most from query t to key k."""
    if t == k:
        return None
    return int(att[l][:, t, k].argmax())


def max_product_path(weights: list[np.ndarray], source: int, target: int, valid: np.ndarray) -> list[int] | None:
    """Positions t_0..t_L maximising Π_l W^l[t_l, t_{l-1}] with t_0 = source, t_L = target
    (``W^l`` is (query, key)); ``None`` when every path has weight 0."""
    n = valid.shape[0]
    score = np.full(n, -np.inf)
    score[source] = 0.0
    back = []
    for w in weights:
        with np.errstate(divide="ignore"):
            cand = np.log(np.clip(w, 0.0, None)) + score[None, :]  # (query, key)
        cand[~valid, :] = -np.inf
        k = cand.argmax(axis=1)
        score = cand[np.arange(n), k]
        back.append(k)
    if not np.isfinite(score[target]):
        return None
    path = [target]
    for k in reversed(back):
        path.append(int(k[path[-1]]))
    return path[::-1]


def _residual_attention(att_b: list[np.ndarray]) -> list[np.ndarray]:
    """Ã^l = ½ mean_j A^{l,j} + ½ I (Abnar & Zuidema), per layer (n, n)."""
    out = []
    for a in att_b:
        m = 0.5 * a.mean(axis=0) + 0.5 * np.eye(a.shape[-1])
        out.append(m / m.sum(axis=-1, keepdims=True))
    return out


def _with_heads(att_b: list[np.ndarray], source: int, positions: list[int]) -> NodePath:
    heads = tuple(_edge_head(att_b, l, positions[l + 1], positions[l]) for l in range(len(att_b)))
    return NodePath(source, tuple(positions), heads)


class AttentionArgmax(Method):
    name = "attention-argmax"
    description = "greedy: per layer the (query, head) attending most to the current position (skip when it stays)"
    group = "attention"

    def paths(self, ctx):
        att = ctx.attentions()
        out = []
        for b in range(len(ctx.batch)):
            n = ctx.batch.lengths[b]
            target = int(ctx.batch.target_index[b])
            a_b = [a[b, :, :n, :n] for a in att]
            paths = []
            for i in ctx.batch.sources[b]:
                pos, heads = [i], []
                for l, a in enumerate(a_b):
                    k = pos[-1]
                    if l == len(a_b) - 1:
                        j, t = int(a[:, target, k].argmax()), target
                    else:
                        j, t = np.unravel_index(int(a[:, :, k].argmax()), a[:, :, k].shape)
                    pos.append(int(t))
                    # staying on its position, the path takes the residual (the skip)
                    heads.append(None if int(t) == k else int(j))
                paths.append(NodePath(i, tuple(pos), tuple(heads)))
            out.append(paths)
        return out


class _ResidualPaths(Method):
    """Shared loop of the rollout-style methods: per sentence the residual-augmented
    attention Ã^l, then one position path per source (``_positions``), heads added."""

    group = "attention"

    def _sentence(self, weights: list[np.ndarray]) -> Any:
        """What every source of one sentence shares (passed to ``_positions``)."""
        return None

    def _positions(self, weights, source: int, target: int, valid: np.ndarray, shared: Any) -> list[int]:
        raise NotImplementedError

    def paths(self, ctx):
        att = ctx.attentions()
        out = []
        for b in range(len(ctx.batch)):
            n = ctx.batch.lengths[b]
            target = int(ctx.batch.target_index[b])
            a_b = [a[b, :, :n, :n] for a in att]
            weights = _residual_attention(a_b)
            valid = np.ones(n, dtype=bool)
            shared = self._sentence(weights)
            out.append([_with_heads(a_b, i, self._positions(weights, i, target, valid, shared))
                         for i in ctx.batch.sources[b]])
        return out


class Rollout(_ResidualPaths):
    name = "rollout"
    description = "max-product path through residual-augmented attention (Abnar & Zuidema 2020)"

    def _positions(self, weights, source, target, valid, shared):
        return max_product_path(weights, source, target, valid)


def max_flow_reference(weights: list[np.ndarray], source: int, target: int,
                       scale: float = 1e6) -> tuple[int, list[np.ndarray]]:
    """The literal maximum flow (``networkx``, Edmonds–Karp, one dict-of-dicts graph per
    call) from (0, source) to (L, target) with capacities round(Ã^l[t, k] · scale):
    its value and its integer edge flows per layer (query, key). The reference of
    :meth:`LayeredFlow.solve`."""
    import networkx as nx
    from networkx.algorithms.flow import edmonds_karp

    n = weights[0].shape[0]
    out = [np.zeros((n, n), dtype=np.int64) for _ in weights]
    g = nx.DiGraph()
    for l, w in enumerate(weights, start=1):
        for t in range(n):
            for k in range(n):
                cap = int(round(float(w[t, k]) * scale))
                if cap > 0:
                    g.add_edge((l - 1, k), (l, t), capacity=cap)
    s, d = (0, source), (len(weights), target)
    if s not in g or d not in g:
        return 0, out
    value, flow = nx.maximum_flow(g, s, d, flow_func=edmonds_karp)
    for (l0, k), targets in flow.items():
        for (l1, t), f in targets.items():
            if l1 == l0 + 1 and f > 0:
                out[l0][t, k] = f
    return int(value), out


def attention_flow_weights_reference(weights: list[np.ndarray], source: int, target: int,
                                     scale: float = 1e6) -> list[np.ndarray] | None:
    """:func:`attention_flow_weights` with the literal networkx flow
    (:func:`max_flow_reference`): the method's implementation before Dinic."""
    value, flow = max_flow_reference(weights, source, target, scale)
    return [f / value for f in flow] if value > 0 else None


def flow_capacities(weights: list[np.ndarray], scale: float = 1e6) -> list[np.ndarray]:
    """Integer capacities round(Ã^l[t, k] · scale) per layer (query, key): the same
    numbers as the reference's ``int(round(float(w) * scale))`` (both round half to even)."""
    return [np.rint(np.asarray(w, dtype=np.float64) * scale).astype(np.int64) for w in weights]


class LayeredFlow:
    """The layered graph of one sentence for :func:`attention_flow_weights`, built once and
    solved for every (source, target): node (l, k) is ``l·n + k``, edge (l−1, k) → (l, t)
    has capacity ``caps[l-1][t, k]`` where it is positive (``scipy.sparse.csgraph``)."""

    def __init__(self, caps: list[np.ndarray]) -> None:
        from scipy.sparse import csr_matrix

        self.L, self.n = len(caps), caps[0].shape[0]
        rows, cols, data = [], [], []
        for l, c in enumerate(caps):
            t, k = np.nonzero(c > 0)
            rows.append(l * self.n + k)
            cols.append((l + 1) * self.n + t)
            data.append(c[t, k])
        data = np.concatenate(data)
        # scipy's solver counts in int32: every cut (in particular the source's edges) fits.
        if data.size and int(max(c.sum(axis=0).max() for c in caps)) >= 2**31:
            raise ValueError("attention-flow: the capacities overflow int32 (lower the scale)")
        N = (self.L + 1) * self.n
        self.graph = csr_matrix((data.astype(np.int32), (np.concatenate(rows), np.concatenate(cols))), shape=(N, N))
        self.graph.sort_indices()

    def solve(self, source: int, target: int) -> tuple[int, list[np.ndarray]]:
        """A maximum flow (0, source) → (L, target) by Dinic's algorithm: its value and its
        integer edge flows per layer (query, key)."""
        from scipy.sparse.csgraph import maximum_flow

        n, L = self.n, self.L
        res = maximum_flow(self.graph, source, L * n + target, method="dinic")
        f = res.flow.toarray()  # antisymmetric: f[u, v] > 0 on the edges u → v that carry flow
        out = []
        for l in range(L):
            block = f[l * n : (l + 1) * n, (l + 1) * n : (l + 2) * n].T  # (query t, key k)
            out.append(np.where(block > 0, block, 0).astype(np.int64))
        return int(res.flow_value), out

    def flows(self, source: int, target: int) -> list[np.ndarray] | None:
        """Per layer (query, key) the edge flows of a maximum flow (0, source) → (L, target),
        divided by its value; ``None`` when no flow gets through."""
        value, flow = self.solve(source, target)
        return [f / value for f in flow] if value > 0 else None


def attention_flow_weights(weights: list[np.ndarray], source: int, target: int, scale: float = 1e6) -> list[np.ndarray] | None:
    """Edge flows of a maximum flow from (0, source) to (L, target), per layer (query, key),
    normalised by the flow value; ``None`` when no flow gets through.

    Capacities Ã^l[t, k] are scaled to integers (``scale``) so the flow is exact. Solved by
    Dinic's algorithm (``scipy.sparse.csgraph.maximum_flow``), deterministic. The flow
    *value* is the reference's (:func:`attention_flow_weights_reference`, networkx's
    Edmonds–Karp) exactly, but a maximum flow is not unique: where several exist the two
    may route it differently, and so pick a different max-product path (see
    docs/analyses.md, "attention-flow").
    """
    return LayeredFlow(flow_capacities(weights, scale)).flows(source, target)


class AttentionFlow(_ResidualPaths):
    name = "attention-flow"
    description = "max-product path through the max-flow edge flows (Abnar & Zuidema 2020; Dinic's algorithm)"
    # Part of the node-set cache key (``DIR/nodes-attention-flow.json``): node sets cached
    # with the networkx solver (which may route a maximum flow differently) are recomputed.
    cache_version = "dinic"

    def _sentence(self, weights):
        return LayeredFlow(flow_capacities(weights))  # one graph per sentence

    def _positions(self, weights, source, target, valid, shared):
        flows = shared.flows(source, target)
        pos = max_product_path(flows, source, target, valid) if flows is not None else None
        if pos is None:  # no flow: fall back to the rollout path
            pos = max_product_path(weights, source, target, valid)
        return pos


# --- layer attribution -----------------------------------------------------------------


class _Conductance(Interceptor):
    """Forward-mode pass: per layer, Σ_k w_k ⟨tangent, ∂q/∂node⟩ at every h^l_t, a^{l,j}_t, s^l_t."""

    def __init__(self, cot: dict[str, list[torch.Tensor]], sent: torch.Tensor, w: torch.Tensor, A: int, H: int) -> None:
        self.cot, self.sent, self.w, self.A, self.H = cot, sent, w, A, H
        self.h: list[torch.Tensor] = []  # per layer (S, n)
        self.heads: list[torch.Tensor] = []  # per layer (S, n, H)
        self.skips: list[torch.Tensor] = []  # per layer (S, n)

    def _score(self, v: torch.Tensor, cot: torch.Tensor) -> torch.Tensor:
        S, A = self.sent.shape[0], self.A
        tangent = fwAD.unpack_dual(v).tangent
        if tangent is None:
            tangent = torch.zeros_like(v)
        prod = tangent.view(S, A, *v.shape[1:]) * cot[self.sent]  # (S, A, n, d)
        return torch.einsum("sand,a->snd", prod, self.w)

    def on_h(self, layer, h):
        if layer > 0:
            self.h.append(self._score(h, self.cot["h"][layer]).sum(-1))
        return h

    def on_attn(self, layer, context, skip):
        c = self._score(context, self.cot["context"][layer - 1])  # (S, n, H*hd)
        self.heads.append(c.view(c.shape[0], c.shape[1], self.H, -1).sum(-1))
        self.skips.append(self._score(skip, self.cot["skip"][layer - 1]).sum(-1))
        return context, skip


def node_cotangents(ctx: MethodInput) -> dict[str, list[torch.Tensor]]:
    """∂q/∂h^l (l = 0..L), ∂q/∂a^l, ∂q/∂s^l (l = 1..L) on the IG path, each (B, A, n, ·):
    the shared plain pass of :mod:`influence_patterns.attribution.gradients`, once per
    method input."""
    if "cotangents" not in ctx.cache:
        ctx.cache["cotangents"], _ = gradients.node_cotangents(ctx.adapter, ctx.batch, ctx.quad, ctx.qoi, ctx.max_rows)
    return ctx.cache["cotangents"]


def conductance_scores(ctx: MethodInput, sent: torch.Tensor, tangent: torch.Tensor) -> _Conductance:
    """Scores of every node for the rows ``sent`` (S,) with input tangents (S, n, d)."""
    adapter, batch, A = ctx.adapter, ctx.batch, len(ctx.quad)
    cot = node_cotangents(ctx)
    w = ctx.quad.weights.to(batch.x)
    S = sent.shape[0]
    rec = _Conductance(cot, sent, w, A, adapter.num_heads)
    path = gradients.ig_path(batch.x[sent], batch.baseline[sent], ctx.quad).flatten(0, 1).detach()
    tan = tangent[:, None].expand(S, A, *tangent.shape[1:]).reshape_as(path)
    with torch.no_grad(), fwAD.dual_level(), intercept(adapter, rec):
        adapter.logits(fwAD.make_dual(path, tan), batch.attention_mask[sent].repeat_interleave(A, 0),
                       batch.target_index[sent].repeat_interleave(A))
    return rec


@dataclass
class NodeScores:
    """Per layer l = 1..L: scores of h^l_t (S, n), of the heads a^{l,j}_t (S, n, H) and of
    the skips s^l_t (S, n), one row per source (what :func:`_select` reads)."""

    h: list[torch.Tensor]
    heads: list[torch.Tensor]
    skips: list[torch.Tensor]


def source_scores(ctx: MethodInput, b: int, sources: list[int]) -> NodeScores:
    """Internal-influence scores of sentence ``b``'s ``sources``: for source x_i and every
    node v, Σ_α w_α ⟨∂q/∂v, ∂v/∂x_i · (x_i − x'_i)⟩ on the IG path of the sentence.

    The same numbers as :func:`conductance_scores` with one row per source (the literal
    version, kept as the reference and compared in the tests), computed with the IG
    path's forward pass done once per sentence: ``torch.func.jvp`` under ``vmap`` over
    the sources' input tangents carries only the tangents per source (the primal is not
    batched), on the unpadded sentence, and stops at h^L (no head: the nodes are all it
    reads). About 3x faster on 2 CPU cores; the cost is S·A·n token rows of tangents,
    which is why it dominates ``ablate`` on long sentences (docs/performance.md).

    Where the QoI reads h^L at one position p only (every cotangent of layer L is exactly
    zero elsewhere: the MLM target, a classifier's [CLS]) and the adapter has the default
    ``f(context, skip)`` layout, layer L after its attention runs on row p alone (the
    other rows' scores at layer L are exactly zero, and are written as such)."""
    from torch.func import jvp, vmap

    adapter, batch, A = ctx.adapter, ctx.batch, len(ctx.quad)
    cot = node_cotangents(ctx)
    w = ctx.quad.weights.to(batch.x)
    n, L, H = batch.lengths[b], adapter.num_layers, adapter.num_heads
    sent = torch.tensor([b], device=batch.x.device)
    path = gradients.ig_path(batch.x[b, :n], batch.baseline[b, :n], ctx.quad).detach()  # (A, n, d)
    mask = batch.attention_mask[sent, :n].repeat_interleave(A, 0)

    p = _read_row(adapter, cot, b, n)

    class Keep(gradients.RecordNodes):
        def on_attn(self, layer, context, skip):
            if p is not None and layer == L:  # the rest of layer L on row p only
                context, skip = context[:, p : p + 1], skip[:, p : p + 1]
            return super().on_attn(layer, context, skip)

    def nodes(x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        keep = Keep()
        with intercept(adapter, keep):
            adapter.final_hidden(x, mask)  # the head's tangent would never be read
        return (*keep.h[1:], *keep.context, *keep.skip)

    delta = (batch.x - batch.baseline)[b]
    tangents = torch.zeros((len(sources), *path.shape), dtype=path.dtype, device=path.device)
    for k, i in enumerate(sources):
        tangents[k, :, i] = delta[i]
    with torch.no_grad():
        out = vmap(lambda u: jvp(nodes, (path,), (u,))[1])(tangents)  # each (S, A, n, ·)

    def weighted(c: torch.Tensor, rows: slice) -> torch.Tensor:  # w_α ∂q/∂v, (A, rows, ·)
        return c[b, :, :n][:, rows] * w[:, None, None]

    def full(v: torch.Tensor, rows: slice) -> torch.Tensor:  # (S, rows, ·) → (S, n, ·), zeros elsewhere
        if v.shape[1] == n:
            return v
        out = v.new_zeros((v.shape[0], n, *v.shape[2:]))
        out[:, rows] = v
        return out

    hs, heads, skips = [], [], []
    for l in range(L):
        rows = slice(p, p + 1) if p is not None and l == L - 1 else slice(0, n)
        hs.append(full(torch.einsum("sand,and->sn", out[l], weighted(cot["h"][l + 1], rows)), rows))
        tan = out[L + l]
        c = weighted(cot["context"][l], rows)
        heads.append(full(torch.einsum("sanhe,anhe->snh", tan.view(*tan.shape[:3], H, -1),
                                       c.view(*c.shape[:2], H, -1)), rows))
        skips.append(full(torch.einsum("sand,and->sn", out[2 * L + l], weighted(cot["skip"][l], rows)), rows))
    return NodeScores(hs, heads, skips)


def _read_row(adapter: Adapter, cot: dict[str, list[torch.Tensor]], b: int, n: int) -> int | None:
    """The one position p at which the QoI reads layer L of sentence ``b`` (every node
    cotangent of layer L exactly zero at the others), where the adapter's hooks are the
    default ``f(context, skip)`` layout (the rest of the layer is then position-wise:
    its rows can be cut at the attention's output); else ``None``."""
    if type(adapter).install_hooks is not Adapter.install_hooks:
        return None
    L = adapter.num_layers
    last = [cot["h"][L][b, :, :n], cot["context"][L - 1][b, :, :n], cot["skip"][L - 1][b, :, :n]]
    read = torch.stack([(c != 0).any(dim=-1).any(dim=0) for c in last]).any(dim=0).nonzero().flatten()
    return int(read[0]) if read.numel() == 1 else None


def _select(scores: _Conductance | NodeScores, s: int, source: int, target: int, n: int,
            causal: bool = False) -> NodePath:
    """Per layer the best position (sign of the layer's total), then the best head/skip there.
    ``causal`` (a decoder): the positions t ≥ t_{l-1} only, as GPR's stage 1
    (``search.common.causal_candidates``), so that a path never moves left."""
    L = len(scores.h)
    sign = 1.0 if float(scores.h[-1][s, :n].sum()) >= 0 else -1.0
    pos, heads = [source], []
    for l in range(L):
        later = causal_candidates(causal, n, max(pos[-1], 0))
        t = target if l == L - 1 else int(choose(scores.h[l][s, :n], sign, later))
        cand = torch.cat([scores.skips[l][s, t : t + 1], scores.heads[l][s, t]])  # (H+1,)
        k = int(choose_node(cand, sign, t == pos[-1]))
        pos.append(t)
        heads.append(None if k == 0 else k - 1)
    return NodePath(source, tuple(pos), tuple(heads))


class InternalInfluence(Method):
    name = "internal-influence"
    description = "per layer the position (then head/skip) with the largest IG of the source through it"
    group = "layer"

    @heap_allocations()  # big tangents: no fresh, zero-filled pages per operation
    def paths(self, ctx):
        batch, A = ctx.batch, len(ctx.quad)
        per = max(1, ctx.max_rows // A)  # sources per pass: each carries A tangent rows
        out = []
        for b in range(len(batch)):
            found = []
            for start in range(0, len(batch.sources[b]), per):
                chunk = batch.sources[b][start : start + per]
                scores = source_scores(ctx, b, chunk)
                found += [_select(scores, s, i, int(batch.target_index[b]), batch.lengths[b], ctx.adapter.causal)
                          for s, i in enumerate(chunk)]
            out.append(found)
        return out


class LayerConductance(Method):
    name = "layer-conductance"
    description = "per layer the position (then head/skip) with the largest conductance of all inputs"
    group = "layer"

    @heap_allocations()
    def paths(self, ctx):
        batch = ctx.batch
        sent = torch.arange(len(batch), device=batch.x.device)
        scores = conductance_scores(ctx, sent, (batch.x - batch.baseline) * batch.attention_mask[..., None])
        out = []
        for b in range(len(batch)):
            n, target = batch.lengths[b], int(batch.target_index[b])
            # One node set for the sentence (source -1: no skip at layer 1, where the
            # shared path does not start from any particular token).
            shared = _select(scores, b, -1, target, n, ctx.adapter.causal)
            out.append([NodePath(i, (i,) + shared.positions[1:], shared.heads) for i in batch.sources[b]])
        return out


# --- control -----------------------------------------------------------------------------


class _SeededPaths(Method):
    """Shared loop of the random controls: one generator per (seed, instance, source),
    seeded by ``f"{seed_prefix}{seed}:{index}:{source}"``, draws each path (``_draw``)."""

    group = "control"
    seed_prefix = ""

    def _draw(self, rng: random.Random, ctx: MethodInput, b: int, row: RunRecord, source: int) -> NodePath:
        """The path of ``source`` in sentence ``b`` (its run record ``row``)."""
        raise NotImplementedError

    def paths(self, ctx):
        return [[self._draw(random.Random(f"{self.seed_prefix}{ctx.seed}:{row.index}:{i}"), ctx, b, row, i)
                 for i in ctx.batch.sources[b]] for b, row in enumerate(ctx.rows)]


class RandomMethod(_SeededPaths):
    name = "random"
    description = "control: a random position and head/skip per layer (seeded)"

    def _draw(self, rng, ctx, b, row, source):
        L, H, n, target = ctx.num_layers, ctx.adapter.num_heads, ctx.batch.lengths[b], int(ctx.batch.target_index[b])
        pos, heads = [source], []
        for l in range(L):  # on a decoder the positions never decrease (t ≥ t_{l-1})
            t = target if l == L - 1 else rng.randrange(pos[-1] if ctx.adapter.causal else 0, n)
            choices = ([None] if t == pos[-1] else []) + list(range(H))
            heads.append(rng.choice(choices))
            pos.append(t)
        return NodePath(source, tuple(pos), tuple(heads))


class Stay(Method):
    name = "stay"
    description = "control: the source stays on its position on the skip, then at the last layer the head attending most from the target to it"
    group = "control"

    def paths(self, ctx):
        att = ctx.attentions()
        L = ctx.num_layers
        out = []
        for b in range(len(ctx.batch)):
            target = int(ctx.batch.target_index[b])
            paths = []
            for i in ctx.batch.sources[b]:
                last = None if i == target else int(att[L - 1][b, :, target, i].argmax())
                paths.append(NodePath(i, (i,) * L + (target,), (None,) * (L - 1) + (last,)))
            out.append(paths)
        return out


class RandomMatched(_SeededPaths):
    name = "random-matched"
    description = "control: a random path taking the skip at the same layers as the source's pattern (seeded)"
    seed_prefix = "matched:"

    def _draw(self, rng, ctx, b, row, source):
        L, H, n, target = ctx.num_layers, ctx.adapter.num_heads, ctx.batch.lengths[b], int(ctx.batch.target_index[b])
        skips = [h is None for h in _pattern(row, source).heads]
        if len(skips) != L:
            raise DataError(f"instance {row.index}: the pattern of token {source} has {len(skips)} layers, not {L}")
        head_layers = [l for l in range(L) if not skips[l]]
        if not head_layers and source != target:
            head_layers = [L - 1]  # a pattern must reach the target: one head at the end
        last = head_layers[-1] if head_layers else None
        pos, heads = [source], []
        for l in range(L):
            if l not in head_layers:
                pos.append(pos[-1])
                heads.append(None)
                continue
            pos.append(target if l == last else rng.randrange(pos[-1] if ctx.adapter.causal else 0, n))
            heads.append(rng.randrange(H))
        return NodePath(source, tuple(pos), tuple(heads))


for _cls in (PatternMethod, AttentionArgmax, Rollout, AttentionFlow, InternalInfluence, LayerConductance, Stay,
             RandomMatched, RandomMethod):
    register_method(_cls)
