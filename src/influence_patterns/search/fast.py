"""The default ``fast`` GPR method: exact, with single-position tangents (issue 14;
docs/method.md#single-position-tangents-the-default-fast-method).

The full-width scorer (``search.full_width``, method ``fast-full``) carries, for
every (source × α) row, a tangent as wide as the whole sentence through whole
layers. Inside a pattern's prefix the tangent lives at one position per layer, so
almost all of that is zero. This module computes the same scores
(``search.reference`` is the definition; the tests compare every score) with only
single-position work per source.

Notation, one sentence, one α (every quantity below is per α; scores are summed
over α with the quadrature weights w_α). Layer l reads h = h^{l-1} (n × d):

    q_t = W_Q h_t + b_Q,  k_t, val_t likewise;  per head j (d_h-wide slices)
    p^j_{ts} = softmax_s(q^j_t · k^j_s / √d_h),   a^j_t = Σ_s p^j_{ts} val^j_s,
    s^l_t = h_t,          h^l_t = F_l(a_t, s_t)

where F_l (``W_O``, residual, LayerNorm, FFN with its residual, LayerNorm) acts on
each position alone. Everything position-wise comes from the model's own modules
through the adapter (``attention_projections``, ``after_attention``); h^0's tangent
comes from the model's own embedding code (a forward-mode run stopped at h^0).

**Shared pass** (per sentence, rows = α, in chunks of ``max_rows``): one plain
forward + backward records s^l = h^{l-1} and the plain cotangents ∂q/∂a^l,
∂q/∂s^l (a^l_t and s^l_t feed only h^l_t, so these are ∂q/∂h^l_t pulled back
through F_l), and g(x_i) for every token. Q, K, V, p and a are recomputed from
s^l layer by layer when needed (kept for all layers when small).

**Attention tangent of one position.** Let the tangent be u at h_{t'} alone. Then
only q_{t'}, k_{t'}, val_{t'} move: dq = W_Q u, dk = W_K u, dval = W_V u (no
biases). For a query t ≠ t' only the score against key t' changes, by
ε^j_t = q^j_t · dk^j / √d_h, so (softmax derivative)

    da^j_t = p^j_{tt'} (ε^j_t (val^j_{t'} − a^j_t) + dval^j),

and at t = t' the query moves too, adding, with η^j_s = dq^j · k^j_s / √d_h,

    Σ_s p^j_{t's} η^j_s (val^j_s − a^j_{t'}).

**Stage 1** (per source, layer l = 1..L, tangent u at t' = t_{l-1}): the score of
h^l_t is Σ_α w_α (⟨∂q/∂a^l_t, da_t⟩ + [t = t'] ⟨∂q/∂s^l_t, u⟩): the first term for
every t at once is Σ_j p^j_{tt'}(ε^j_t (⟨c^j_t, val^j_{t'}⟩ − ⟨c^j_t, a^j_t⟩) +
⟨c^j_t, dval^j⟩) with c = ∂q/∂a^l (three n×d_h products per head), the query term
one more. The argmax t_l is kept (t_L = the target) and the tangent carried to
h^l_{t_l} by one JVP of F_l at that position with inputs (da_{t_l}, [t_l = t'] u).

**Stage 2** (positions fixed). Backward: the cotangent restricted to the stage-1
positions is a chain of single-position VJPs. At layer L it is the plain
∂q/∂(a^L, s^L) at t_L (q reads h^L only there); below, c̃_h^l at h^l_{t_l} gives
(c̃_a^l, c̃_s^l) = VJP of F_l at t_l, and c̃_h^{l-1} = (transpose of the map
u ↦ da_{t_l} above)(c̃_a^l) + [t_l = t_{l-1}] c̃_s^l; the transpose is taken by
autograd of that linear map. Forward: the tangent through the chosen heads is
single-position too; head j scores Σ_α w_α ⟨c̃_a^{l,j}, da^j_{t_l}⟩, the skip
Σ_α w_α ⟨c̃_s^l, u⟩ where the position continues (0 and not a candidate where it
does not: ties go to the skip, as in ``choose``); the winner's tangent alone
(head j's slice of da, or u through the skip) is carried through F_l.

Cost per source and layer: O(d² + n·d) for the attention formulas plus one
position-wise JVP/VJP (O(d·d_ff)), instead of a full-layer JVP over n positions.
Each sentence is searched on its own, unpadded (like the reference), so padding in
a batch changes nothing. Memory: the plain pass holds ``max_rows`` rows of one
backward pass; per sentence the shared tensors are 3·L·A·n·d values and one layer's
attention state A·H·(n² + 4·n·d_h); the per-source stages hold about
``_SOURCE_TEMPORARIES``·H·n values per (source × α) row, in chunks of
``source_rows(max_rows, ...)`` rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.autograd.forward_ad as fwAD

from influence_patterns.attribution.gradients import ig_path, plain_pass
from influence_patterns.attribution.inputs import Batch
from influence_patterns.attribution.qoi import QoIFn
from influence_patterns.attribution.quadrature import Quadrature
from influence_patterns.graph.adapters import Adapter
from influence_patterns.graph.hooks import Interceptor, intercept
from influence_patterns.search.common import (
    DEFAULT_MAX_ROWS,
    SourceSearch,
    causal_candidates,
    choose,
    choose_node,
    unpack_searches,
)
from influence_patterns.search.full_width import gpr_full_width

#: (source × α)-row temporaries of H·n values each alive at once in stage 1 (sizing only).
_SOURCE_TEMPORARIES = 16
#: At most this many values in one (source × α × head × position) temporary: small
#: enough for the allocator to reuse memory rather than map fresh pages each time.
_CHUNK_VALUES = 1 << 22
#: Keep every layer's attention state between the stages when all of it fits this.
_STATE_CACHE_BYTES = 1 << 29


class _StopAtEmbedding(Exception):
    """Ends a forward pass once h^0 is known."""


class _Embedding(Interceptor):
    def __init__(self) -> None:
        self.h0: torch.Tensor | None = None

    def on_h(self, layer, h):
        self.h0 = h
        raise _StopAtEmbedding


@dataclass
class SharedPass:
    """One sentence's plain pass: per layer l (index l-1), each (A, n, d)."""

    skip: list[torch.Tensor]  # s^l = h^{l-1}
    cot_context: list[torch.Tensor]  # ∂q/∂a^l (heads concatenated)
    cot_skip: list[torch.Tensor]  # ∂q/∂s^l
    g: torch.Tensor  # (n,) plain IG of every token
    h0_tangent: torch.Tensor  # (A, n, d): tangent of h^0_t when x_t moves by x_t - b_t


def shared_pass(
    adapter: Adapter, batch: Batch, b: int, quad: Quadrature, qoi: QoIFn, max_rows: int = DEFAULT_MAX_ROWS
) -> SharedPass:
    """The plain forward + backward of sentence ``b`` (unpadded) at every α, in chunks
    of at most ``max_rows`` α rows: s^l, ∂q/∂a^l, ∂q/∂s^l, g and h^0's tangent."""
    n, A = batch.lengths[b], len(quad)
    x, base = batch.x[b, :n], batch.baseline[b, :n]
    delta = x - base
    path = ig_path(x, base, quad).detach()  # (A, n, d_x)
    w = quad.weights.to(x)
    am = batch.attention_mask[b, :n]
    target, classes = batch.target_index[b], batch.classes[b]
    out = plain_pass(adapter, qoi, path, am.expand(A, n), target.expand(A), classes.expand(A, 2),
                     kinds=("context", "skip"), max_rows=max_rows, keep_skip_values=True)
    g = torch.einsum("and,nd,a->n", out.input_grad, delta, w)
    rec0 = _Embedding()
    with torch.no_grad(), fwAD.dual_level():
        try:
            with intercept(adapter, rec0):
                adapter.logits(fwAD.make_dual(path, delta.expand_as(path).contiguous()), am.expand(A, n),
                               target.expand(A))
        except _StopAtEmbedding:
            pass
        h0_tangent = fwAD.unpack_dual(rec0.h0).tangent
        h0_tangent = torch.zeros_like(rec0.h0) if h0_tangent is None else h0_tangent.clone()
    return SharedPass(out.skip_values, out.context, out.skip, g, h0_tangent)


@dataclass
class _Attention:
    """One layer's attention at every α: per head (A, H, n, d_h) and p (A, H, n, n)."""

    Q: torch.Tensor
    K: torch.Tensor
    V: torch.Tensor
    P: torch.Tensor
    a: torch.Tensor
    W: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None  # weights of W_Q, W_K, W_V (d, d)
    scale: float
    #: Decoders: (v (S, A, d), t' (S,)) → (dq, dk, dval) (S, A, H, d_h), the JVP of the
    #: attention's inputs at h_{t'} (norm, projections, rotary at t', GQA); None: v @ W^T.
    tangent: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, ...]] | None = None

    @property
    def context(self) -> torch.Tensor:
        """a^l as (A, n, d), heads concatenated (the hooked node's layout)."""
        A, H, n, dh = self.a.shape
        return self.a.transpose(1, 2).reshape(A, n, H * dh)

    def heads(self, v: torch.Tensor) -> torch.Tensor:
        """(..., d) → (..., H, d_h)."""
        return v.view(v.shape[:-1] + (self.Q.shape[1], self.Q.shape[-1]))


def attention_state(adapter: Adapter, layer: torch.nn.Module, skip: torch.Tensor) -> _Attention:
    """Q, K, V, p and a of one layer from its input h^{l-1} = ``skip`` (A, n, d),
    through the model's own projections (eval mode: no dropout on p)."""
    if adapter.causal:
        return _causal_attention_state(adapter, layer, skip)
    A, n, d = skip.shape
    H = adapter.num_heads
    wq, wk, wv = adapter.attention_projections(layer)
    split = lambda t: t.view(A, n, H, -1).transpose(1, 2)  # noqa: E731
    Q, K, V = split(wq(skip)), split(wk(skip)), split(wv(skip))
    scale = adapter.attention_scaling(layer)
    P = torch.softmax(torch.matmul(Q, K.transpose(-1, -2)) * scale, dim=-1)
    return _Attention(Q, K, V, P, torch.matmul(P, V), (wq.weight, wk.weight, wv.weight), scale)


def _causal_attention_state(adapter: Adapter, layer: torch.nn.Module, skip: torch.Tensor) -> _Attention:
    """A decoder's layer (docs/decoders.md): Q, K, V from the adapter's position-wise
    ``attention_inputs`` (first norm, projections, rotary, GQA), p under the causal mask
    (p_{tt'} = 0 for t' > t), and the tangent map of those inputs at one position."""
    A, n, d = skip.shape
    positions = torch.arange(n, device=skip.device).expand(A, n)
    Q, K, V = adapter.attention_inputs(layer, skip, positions)
    scale = adapter.attention_scaling(layer)
    later = torch.ones(n, n, dtype=torch.bool, device=skip.device).triu(1)
    P = torch.softmax((torch.matmul(Q, K.transpose(-1, -2)) * scale).masked_fill(later, float("-inf")), dim=-1)

    def tangent(v: torch.Tensor, tp: torch.Tensor) -> tuple[torch.Tensor, ...]:
        S, A_, _ = v.shape
        rows = _rows(skip, tp).reshape(S * A_, 1, d)
        pos = tp.repeat_interleave(A_).view(-1, 1)
        _, out = torch.func.jvp(lambda h: adapter.attention_inputs(layer, h, pos), (rows,), (v.reshape(S * A_, 1, d),))
        return tuple(o.reshape(S, A_, o.shape[1], o.shape[-1]) for o in out)

    return _Attention(Q, K, V, P, torch.matmul(P, V), None, scale, tangent)


def _at(X: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Per-source gather along positions: (A, H, n, ...) at t (S,) → (S, A, H, ...)."""
    return X[:, :, t].movedim(2, 0)


def _rows(X: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """(A, n, d) at t (S,) → (S, A, d)."""
    return X[:, t].movedim(1, 0)


def _project(st: _Attention, v: torch.Tensor, tp: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """dq, dk, dval per head (S, A, H, d_h) for tangents v (S, A, d) at positions tp: no biases."""
    if st.tangent is not None:
        return st.tangent(v, tp)  # type: ignore[return-value]
    return tuple(st.heads(v @ W.T) for W in st.W)  # type: ignore[return-value,union-attr]


def context_tangent(st: _Attention, v: torch.Tensor, t: torch.Tensor, tp: torch.Tensor) -> torch.Tensor:
    """Tangent of a^{l,j}_t (S, A, H, d_h) when h^{l-1} moves by v (S, A, d) at tp only."""
    dq, dk, dval = _project(st, v, tp)
    a_t = _at(st.a, t)
    p = st.P[:, :, t, tp].movedim(2, 0)  # (S, A, H): p_{t t'}
    eps = (_at(st.Q, t) * dk).sum(-1) * st.scale
    da = p.unsqueeze(-1) * (eps.unsqueeze(-1) * (_at(st.V, tp) - a_t) + dval)
    same = (t == tp).nonzero().squeeze(1)
    if same.numel():
        eta = torch.einsum("ahnd,sahd->sahn", st.K, dq[same]) * st.scale
        pe = _at(st.P, tp[same]) * eta  # row t' of p times η
        query = torch.einsum("sahn,ahnd->sahd", pe, st.V) - pe.sum(-1, keepdim=True) * a_t[same]
        da = da.index_add(0, same, query)
    return da


def _token_scores(st: _Attention, C: torch.Tensor, ca: torch.Tensor, cot_s: torch.Tensor, v: torch.Tensor,
                  tp: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Stage-1 scores (S, n) of every position given tangent v (S, A, d) at tp (S,);
    ``C`` = ∂q/∂a^l per head (A, H, n, d_h), ``ca`` = ⟨C, a⟩ (A, H, n)."""
    dq, dk, dval = _project(st, v, tp)
    # p_{tt'} (ε_t (⟨c_t, val_{t'}⟩ − ⟨c_t, a_t⟩) + ⟨c_t, dval⟩), in place: (S, A, H, n)
    per = torch.einsum("ahnd,sahd->sahn", st.Q, dk).mul_(st.scale)
    per.mul_(torch.einsum("ahnd,sahd->sahn", C, _at(st.V, tp)).sub_(ca))
    per.add_(torch.einsum("ahnd,sahd->sahn", C, dval))
    per.mul_(st.P[..., tp].movedim(3, 0))  # p_{t t'} over t
    scores = torch.einsum("sahn,a->sn", per, w)
    del per
    # query term and skip, both at t = t' only
    eta = torch.einsum("ahnd,sahd->sahn", st.K, dq).mul_(st.scale)
    eta.mul_(torch.einsum("ahnd,sahd->sahn", st.V, _at(C, tp)).sub_(_at(ca, tp).unsqueeze(-1)))
    query = (eta.mul_(_at(st.P, tp))).sum((-1, -2))  # (S, A)
    del eta
    skip = (_rows(cot_s, tp) * v).sum(-1)  # (S, A)
    rows = torch.arange(v.shape[0], device=v.device)
    scores[rows, tp] += (query + skip) @ w
    return scores


def _carry(adapter: Adapter, layer: torch.nn.Module, a_rows: torch.Tensor, s_rows: torch.Tensor, da: torch.Tensor,
           ds: torch.Tensor) -> torch.Tensor:
    """Tangent of h^l at the rows' positions: JVP of F_l at (a, s) along (da, ds), each (S, A, d)."""
    S, A, d = a_rows.shape
    flat = lambda t: t.reshape(S * A, 1, -1)  # noqa: E731
    with torch.no_grad(), fwAD.dual_level():
        out = adapter.after_attention(layer, fwAD.make_dual(flat(a_rows), flat(da)),
                                      fwAD.make_dual(flat(s_rows), flat(ds)))
        return fwAD.unpack_dual(out).tangent.reshape(S, A, -1)


def _pull(adapter: Adapter, layer: torch.nn.Module, a_rows: torch.Tensor, s_rows: torch.Tensor,
          cot: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """VJP of F_l at (a, s) (S, A, d each) with ``cot`` at h^l: (∂/∂a, ∂/∂s)."""
    S, A, d = a_rows.shape
    a = a_rows.reshape(S * A, 1, -1).detach().requires_grad_(True)
    s = s_rows.reshape(S * A, 1, -1).detach().requires_grad_(True)
    with torch.enable_grad():
        out = adapter.after_attention(layer, a, s)
        ga, gs = torch.autograd.grad(out, (a, s), cot.reshape(out.shape))
    return ga.reshape(S, A, -1), gs.reshape(S, A, -1)


def _pull_context(st: _Attention, c: torch.Tensor, t: torch.Tensor, tp: torch.Tensor, d: int) -> torch.Tensor:
    """Transpose of v ↦ context_tangent(v) at (t, tp), applied to c (S, A, H, d_h): (S, A, d)."""
    v = torch.zeros(c.shape[0], c.shape[1], d, dtype=c.dtype, device=c.device, requires_grad=True)
    with torch.enable_grad():
        (gv,) = torch.autograd.grad((context_tangent(st, v, t, tp) * c).sum(), v)
    return gv


def source_rows(max_rows: int, num_layers: int, num_heads: int, seq_len: int) -> int:
    """(source × α) rows per chunk of the per-source stages for a plain-pass budget of
    ``max_rows`` rows: a plain row keeps at least 2·L·H·n² values for its backward
    pass, a source row about ``_SOURCE_TEMPORARIES``·H·n; and one temporary stays
    within ``_CHUNK_VALUES`` values."""
    by_budget = (2 * max_rows * num_layers * seq_len) // _SOURCE_TEMPORARIES
    return max(1, min(by_budget, _CHUNK_VALUES // (num_heads * seq_len)))


class _States:
    """Attention state per layer, recomputed on demand, kept when all layers fit."""

    def __init__(self, adapter: Adapter, shared: SharedPass) -> None:
        self.adapter, self.shared = adapter, shared
        self.layers = adapter.layers()
        A, n, d = shared.skip[0].shape
        per_layer = (A * adapter.num_heads * n * n + 4 * A * n * d) * shared.skip[0].element_size()
        self.keep = len(self.layers) * per_layer <= _STATE_CACHE_BYTES
        self.cache: dict[int, _Attention] = {}

    def __call__(self, l: int) -> _Attention:
        if l in self.cache:
            return self.cache[l]
        with torch.no_grad():
            st = attention_state(self.adapter, self.layers[l - 1], self.shared.skip[l - 1])
        if self.keep:
            self.cache[l] = st
        return st


def gpr_fast(
    adapter: Adapter,
    batch: Batch,
    quad: Quadrature,
    qoi: QoIFn,
    max_rows: int = DEFAULT_MAX_ROWS,
    progress: Callable[[int], None] | None = None,
) -> list[list[SourceSearch]]:
    """GPR for every source token of every sentence in ``batch``; same results as
    :func:`influence_patterns.search.reference.gpr_reference`. ``max_rows``: α rows per
    chunk of the plain pass (and, through :func:`source_rows`, the per-source chunks).
    Models the single-position scorer cannot serve
    (:meth:`~influence_patterns.graph.adapters.Adapter.single_position_unsupported`)
    go to :func:`influence_patterns.search.full_width.gpr_full_width`."""
    if adapter.single_position_unsupported() is not None:
        return gpr_full_width(adapter, batch, quad, qoi, max_rows, progress)
    return [_search_sentence(adapter, batch, b, quad, qoi, max_rows, progress) for b in range(len(batch))]


@dataclass
class _Sentence:
    """What the stages of one sentence's search share: the model, the shared pass and
    attention states, the quadrature weights ``w`` (A,), and per source the sign
    (S,), the h^0 tangent ``v0`` (S, A, d) and the row chunks of the per-source work."""

    adapter: Adapter
    shared: SharedPass
    states: _States
    w: torch.Tensor
    sign: torch.Tensor
    v0: torch.Tensor
    chunks: list[slice]
    target: int

    @property
    def layers(self) -> list[torch.nn.Module]:
        return self.states.layers

    def empty(self, *shape: int, dtype: torch.dtype | None = None) -> torch.Tensor:
        return torch.empty(*shape, dtype=dtype or self.v0.dtype, device=self.v0.device)


def _search_sentence(
    adapter: Adapter,
    batch: Batch,
    b: int,
    quad: Quadrature,
    qoi: QoIFn,
    max_rows: int,
    progress: Callable[[int], None] | None,
) -> list[SourceSearch]:
    """GPR for every source of sentence ``b``: the shared pass, stage 1 (positions),
    stage 2 backward (restricted cotangents) and forward (heads), each source's
    α rows in chunks sized by :func:`source_rows`."""
    sources = list(batch.sources[b])
    if not sources:
        return []
    L, H, A, n = adapter.num_layers, adapter.num_heads, len(quad), batch.lengths[b]
    sh = shared_pass(adapter, batch, b, quad, qoi, max_rows)
    src = torch.tensor(sources, device=batch.x.device)
    S, g = len(sources), sh.g[src]
    per = max(1, source_rows(max_rows, L, H, n) // A)
    sent = _Sentence(
        adapter, sh, _States(adapter, sh), quad.weights.to(batch.x), torch.where(g >= 0, 1.0, -1.0).to(g.dtype),
        _rows(sh.h0_tangent, src), [slice(i, min(S, i + per)) for i in range(0, S, per)], int(batch.target_index[b]),
    )
    positions, token_scores, infl_token = _stage1(sent, src)
    cot_a, cot_s = _stage2_backward(sent, positions)
    choices, head_scores = _stage2_forward(sent, positions, cot_a, cot_s, progress)
    infl_head = head_scores[-1][torch.arange(S, device=src.device), choices[:, -1]]
    return unpack_searches(
        [(b, i) for i in sources], batch.tokens, sign=sent.sign, g=g, positions=positions, choices=choices,
        influence_token=infl_token, influence_head=infl_head, token_scores=token_scores, head_scores=head_scores,
    )


def _stage1(sent: _Sentence, src: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]:
    """Token level: per layer every position's score (S, n) given the prefix, the chosen
    position carried on (t_L = the target). Returns the positions (S, L+1), the scores
    per layer (the last NaN but at the target) and I(x_i, π^e) (S,)."""
    adapter, sh, w, sign = sent.adapter, sent.shared, sent.w, sent.sign
    L, S, n = adapter.num_layers, src.shape[0], sh.skip[0].shape[1]
    pos = [src]
    v = sent.v0
    token_scores: list[torch.Tensor] = []
    with torch.no_grad():
        for l in range(1, L + 1):
            st, layer = sent.states(l), sent.layers[l - 1]
            C = st.heads(sh.cot_context[l - 1]).transpose(1, 2)  # (A, H, n, d_h)
            ca = (C * st.a).sum(-1)
            ctx = st.context
            scores_l = sent.empty(S, n)
            t_l = torch.full((S,), sent.target, dtype=torch.long, device=src.device)
            v_next = torch.empty_like(v)
            for c in sent.chunks:
                tp = pos[-1][c]
                sc = _token_scores(st, C, ca, sh.cot_skip[l - 1], v[c], tp, w)
                scores_l[c] = sc
                if l == L:
                    continue
                t = choose(sc, sign[c], causal_candidates(adapter.causal, n, tp))
                t_l[c] = t
                da = context_tangent(st, v[c], t, tp).flatten(-2)
                ds = v[c] * (t == tp).to(v.dtype)[:, None, None]
                v_next[c] = _carry(adapter, layer, _rows(ctx, t), _rows(sh.skip[l - 1], t), da, ds)
            token_scores.append(scores_l)
            pos.append(t_l)
            v = v_next
    last = torch.full_like(token_scores[-1], float("nan"))
    last[:, sent.target] = token_scores[-1][:, sent.target]
    infl_token = token_scores[-1][:, sent.target].clone()
    token_scores[-1] = last
    return torch.stack(pos, dim=1), token_scores, infl_token


def _stage2_backward(sent: _Sentence, positions: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """The cotangents at a^l and s^l (each (S, A, d) per layer) with every layer
    restricted to the stage-1 ``positions`` (S, L+1): a chain of single-position VJPs
    down from the plain cotangents at the target."""
    adapter, sh = sent.adapter, sent.shared
    L, (S, A, d) = adapter.num_layers, sent.v0.shape
    cot_a = [sent.empty(S, A, d) for _ in range(L)]
    cot_s = [sent.empty(S, A, d) for _ in range(L)]
    cot_h = None
    for l in range(L, 0, -1):
        st, layer = sent.states(l), sent.layers[l - 1]
        ctx = st.context
        t_all, tp_all = positions[:, l], positions[:, l - 1]
        cot_prev = sent.empty(S, A, d) if l > 1 else None
        for c in sent.chunks:
            t, tp = t_all[c], tp_all[c]
            if l == L:  # q reads h^L at the target only: the plain cotangents there
                ga, gs = _rows(sh.cot_context[l - 1], t), _rows(sh.cot_skip[l - 1], t)
            else:
                ga, gs = _pull(adapter, layer, _rows(ctx, t), _rows(sh.skip[l - 1], t), cot_h[c])
            cot_a[l - 1][c], cot_s[l - 1][c] = ga, gs
            if cot_prev is not None:
                cot_prev[c] = _pull_context(st, st.heads(ga), t, tp, d) + gs * (t == tp).to(gs.dtype)[:, None, None]
        cot_h = cot_prev
    return cot_a, cot_s


def _stage2_forward(
    sent: _Sentence, positions: torch.Tensor, cot_a: list[torch.Tensor], cot_s: list[torch.Tensor],
    progress: Callable[[int], None] | None,
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Head level, layer by layer: the skip and every head at the stage-1 position scored
    with the restricted cotangents, the winner's tangent alone carried on. Returns the
    choices (S, L) (0 the skip, 1+j head j) and the scores per layer (S, H+1)."""
    adapter, sh, w, sign = sent.adapter, sent.shared, sent.w, sent.sign
    L, H, S = adapter.num_layers, adapter.num_heads, positions.shape[0]
    device = positions.device
    v = sent.v0
    choices: list[torch.Tensor] = []
    head_scores: list[torch.Tensor] = []
    with torch.no_grad():
        for l in range(1, L + 1):
            st, layer = sent.states(l), sent.layers[l - 1]
            ctx = st.context
            scores_l = sent.empty(S, H + 1)
            k_l = torch.empty(S, dtype=torch.long, device=device)
            v_next = torch.empty_like(v)
            for c in sent.chunks:
                t, tp = positions[c, l], positions[c, l - 1]
                da = context_tangent(st, v[c], t, tp)  # (s, A, H, d_h)
                heads = torch.einsum("sahd,a->sh", da * st.heads(cot_a[l - 1][c]), w)
                cont = t == tp
                skip = torch.einsum("sad,a->s", v[c] * cot_s[l - 1][c], w) * cont.to(v.dtype)
                sc = torch.cat([skip[:, None], heads], dim=1)
                k = choose_node(sc, sign[c], cont)
                scores_l[c], k_l[c] = sc, k
                if l < L:
                    is_head = k > 0
                    m = torch.zeros(k.shape[0], H, dtype=v.dtype, device=device)
                    m[torch.arange(k.shape[0], device=device), (k - 1).clamp(min=0)] = is_head.to(v.dtype)
                    da_k = (da * m[:, None, :, None]).flatten(-2)
                    ds = v[c] * (~is_head).to(v.dtype)[:, None, None]
                    v_next[c] = _carry(adapter, layer, _rows(ctx, t), _rows(sh.skip[l - 1], t), da_k, ds)
                elif progress is not None:
                    progress(c.stop - c.start)
            choices.append(k_l)
            head_scores.append(scores_l)
            v = v_next
    return torch.stack(choices, dim=1), head_scores
