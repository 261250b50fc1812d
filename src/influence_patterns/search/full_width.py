"""The ``fast-full`` GPR method: one full-width JVP × VJP pass scores every candidate of
a layer (docs/method.md#scoring-a-layer-in-one-pass).

The default ``fast`` method (``search.fast``) computes the same scores with
single-position tangents; this earlier scorer is kept for benchmarks and as the
fallback for models the single-position scorer cannot serve.

The forward values are the same for every candidate and every source token (the
restrictions change only gradients), so:

1. one plain backward pass per sentence gives ∂q/∂h^l at every α (shared by all
   source tokens) and g(x_i) for every token;
2. stage 1 is one forward-mode pass: the tangent of α for source i is carried
   through the prefix chosen so far; at layer l the score of position t is
   Σ_k w_k ⟨∂q/∂h^l_t, ṫangent h^l_t⟩, the argmax is kept and the tangent
   restricted to it before the pass goes on to layer l+1;
3. stage 2 is one backward pass with every layer restricted to the stage-1
   positions (cotangents at each a^{l,j}_{t_l} and s^l_{t_l}), then one
   forward-mode pass that picks the head or skip layer by layer.

Rows of every pass are (source token × α step), across sentences, in chunks of at
most ``max_rows``. ``search.reference`` is the literal loop these must agree with.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.autograd.forward_ad as fwAD

from influence_patterns.attribution.gradients import ig_path, node_cotangents, position_mask
from influence_patterns.attribution.inputs import Batch
from influence_patterns.attribution.qoi import QoIFn
from influence_patterns.attribution.quadrature import Quadrature
from influence_patterns.graph.adapters import Adapter
from influence_patterns.graph.hooks import Interceptor, RecordAttention, intercept, restrict
from influence_patterns.search.common import (
    DEFAULT_MAX_ROWS,
    SourceSearch,
    causal_candidates,
    choose,
    choose_node,
    unpack_searches,
)


@dataclass(frozen=True)
class _SearchContext:
    """What every chunk of a search shares: the model, the batch, the quadrature and
    QoI, and the plain pass's ∂q/∂h^l (l = 0..L, each (B, A, n, d)) and g (B, n)."""

    adapter: Adapter
    batch: Batch
    quad: Quadrature
    qoi: QoIFn
    cot_h: list[torch.Tensor]
    g: torch.Tensor

    @property
    def weights(self) -> torch.Tensor:
        return self.quad.weights.to(self.batch.x)


class _Stage1(Interceptor):
    """Forward-mode pass choosing the stage-1 position at each layer, for the sources
    ``src`` of sentences ``sent`` (S,) searched with ``sign``; ``valid`` (S, n) marks
    real tokens."""

    def __init__(self, sc: _SearchContext, sent: torch.Tensor, src: torch.Tensor, sign: torch.Tensor,
                 valid: torch.Tensor) -> None:
        self.cot_h, self.sent, self.positions_source, self.sign = sc.cot_h, sent, src, sign
        self.target, self.valid, self.w = sc.batch.target_index[sent], valid, sc.weights
        self.A, self.L = len(sc.quad), sc.adapter.num_layers
        self.causal = sc.adapter.causal
        self.positions: list[torch.Tensor] = []  # per layer, (S,)
        self.scores: list[torch.Tensor] = []  # per layer, (S, n)

    def on_h(self, layer, h):
        S, A = self.sign.shape[0], self.A
        n = h.shape[1]
        if layer == 0:
            t = self.positions_source
        else:
            tangent = fwAD.unpack_dual(h).tangent.view(S, A, n, -1)
            cot = self.cot_h[layer][self.sent]  # (S, A, n, d)
            scores = torch.einsum("sant,a->sn", tangent * cot, self.w)  # (S, n)
            if layer < self.L:
                later = causal_candidates(self.causal, n, self.previous)
                t = choose(scores, self.sign, self.valid if later is None else self.valid & later)
            else:
                t = self.target
            self.scores.append(scores)
            self.positions.append(t)
        self.previous = t
        return restrict(h, position_mask(t.repeat_interleave(A), n, h.dtype))


class _Stage2Backward(RecordAttention):
    """Plain pass restricted to the stage-1 positions; keeps a^l and s^l for their gradients."""

    def __init__(self, positions: torch.Tensor, A: int) -> None:
        super().__init__()
        self.positions = positions  # (S, L+1)
        self.A = A

    def on_h(self, layer, h):
        t = self.positions[:, layer].repeat_interleave(self.A)
        return restrict(h, position_mask(t, h.shape[1], h.dtype))


class _Stage2Forward(Interceptor):
    """Forward-mode pass choosing the head or skip at each layer."""

    def __init__(self, positions: torch.Tensor, cot_c: list[torch.Tensor], cot_s: list[torch.Tensor],
                 sign: torch.Tensor, weights: torch.Tensor, A: int, H: int) -> None:
        self.positions, self.cot_c, self.cot_s = positions, cot_c, cot_s
        self.sign, self.w, self.A, self.H = sign, weights, A, H
        self.choices: list[torch.Tensor] = []  # per layer (S,): 0 skip, 1+j head j
        self.scores: list[torch.Tensor] = []  # per layer (S, H+1)

    def on_h(self, layer, h):
        t = self.positions[:, layer].repeat_interleave(self.A)
        return restrict(h, position_mask(t, h.shape[1], h.dtype))

    def on_attn(self, layer, context, skip):
        S, A, H = self.sign.shape[0], self.A, self.H
        R, n, hd = context.shape
        rows = torch.arange(R, device=context.device)
        t = self.positions[:, layer].repeat_interleave(A)  # (R,)
        tc = fwAD.unpack_dual(context).tangent[rows, t].view(S, A, H, -1)
        ts = fwAD.unpack_dual(skip).tangent[rows, t].view(S, A, -1)
        head_scores = torch.einsum("sahd,a->sh", tc * self.cot_c[layer - 1], self.w)  # (S, H)
        skip_scores = torch.einsum("sad,a->s", ts * self.cot_s[layer - 1], self.w)  # (S,)
        scores = torch.cat([skip_scores[:, None], head_scores], dim=1)  # (S, H+1)
        k = choose_node(scores, self.sign, self.positions[:, layer - 1] == self.positions[:, layer])
        self.choices.append(k)
        self.scores.append(scores)

        k_rows = k.repeat_interleave(A)
        is_head = (k_rows > 0).to(context.dtype)
        mc = torch.zeros(R, n, H, hd // H, dtype=context.dtype, device=context.device)
        mc[rows, t, (k_rows - 1).clamp(min=0)] = is_head[:, None]
        ms = torch.zeros(R, n, 1, dtype=skip.dtype, device=skip.device)
        ms[rows, t, 0] = 1 - is_head
        return restrict(context, mc.view(R, n, hd)), restrict(skip, ms)


def plain_gradients(
    adapter: Adapter, batch: Batch, quad: Quadrature, qoi: QoIFn, max_rows: int = DEFAULT_MAX_ROWS
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """∂q/∂h^l for l = 0..L, each (B, A, n, d), and g(x_i) for every token (B, n)."""
    cot, g = node_cotangents(adapter, batch, quad, qoi, max_rows, kinds=("h",))
    return cot["h"], g


def gpr_full_width(
    adapter: Adapter,
    batch: Batch,
    quad: Quadrature,
    qoi: QoIFn,
    max_rows: int = DEFAULT_MAX_ROWS,
    progress: Callable[[int], None] | None = None,
) -> list[list[SourceSearch]]:
    """GPR for every source token of every sentence in ``batch``; same results as
    :func:`influence_patterns.search.reference.gpr_reference`."""
    cot_h, g_all = plain_gradients(adapter, batch, quad, qoi, max_rows)
    sc = _SearchContext(adapter, batch, quad, qoi, cot_h, g_all)
    pairs = [(b, i) for b in range(len(batch)) for i in batch.sources[b]]
    per = max(1, max_rows // len(quad))
    results: dict[tuple[int, int], SourceSearch] = {}
    for start in range(0, len(pairs), per):
        chunk = pairs[start : start + per]
        for res in _search_chunk(sc, chunk):
            results[(res.sentence, res.source_index)] = res
        if progress is not None:
            progress(len(chunk))
    return [[results[(b, i)] for i in batch.sources[b]] for b in range(len(batch))]


def _search_chunk(sc: _SearchContext, chunk: list[tuple[int, int]]) -> list[SourceSearch]:
    """Both stages for the (sentence, source) pairs of ``chunk``, all α steps at once."""
    adapter, batch, qoi = sc.adapter, sc.batch, sc.qoi
    L, H, A = adapter.num_layers, adapter.num_heads, len(sc.quad)
    device, w = batch.x.device, sc.weights
    S = len(chunk)
    sent = torch.tensor([b for b, _ in chunk], device=device)
    src = torch.tensor([i for _, i in chunk], device=device)
    g = sc.g[sent, src]  # (S,)
    sign = torch.where(g >= 0, 1.0, -1.0).to(batch.x.dtype)
    n = batch.x.shape[1]
    path = ig_path(batch.x[sent], batch.baseline[sent], sc.quad).flatten(0, 1).detach()  # (S*A, n, d)
    am = batch.attention_mask[sent].repeat_interleave(A, 0)
    target = batch.target_index[sent]
    target_rows = target.repeat_interleave(A)
    classes = batch.classes[sent].repeat_interleave(A, 0)
    tangent = torch.zeros_like(path).view(S, A, n, -1)
    delta = (batch.x - batch.baseline)[sent, src]  # (S, d)
    tangent[torch.arange(S, device=device), :, src] = delta[:, None]
    tangent = tangent.view_as(path)

    # Stage 1: token level, one forward-mode pass.
    st1 = _Stage1(sc, sent, src, sign, batch.attention_mask[sent].bool())
    with torch.no_grad(), fwAD.dual_level(), intercept(adapter, st1):
        adapter.logits(fwAD.make_dual(path, tangent), am, target_rows)
    positions = torch.stack([src] + st1.positions, dim=1)  # (S, L+1)

    # Stage 2: cotangents under the stage-1 restriction, then one forward-mode pass.
    p = path.clone().requires_grad_(True)
    back = _Stage2Backward(positions, A)
    with intercept(adapter, back):
        q = qoi(adapter.logits(p, am, target_rows), classes)
    grads = torch.autograd.grad(q.sum(), back.context + back.skip)
    rows = torch.arange(S * A, device=device)
    cot_c, cot_s = [], []
    for l in range(L):
        t = positions[:, l + 1].repeat_interleave(A)
        cot_c.append(grads[l][rows, t].view(S, A, H, -1))
        cot_s.append(grads[L + l][rows, t].view(S, A, -1))
    del grads, back, q
    st2 = _Stage2Forward(positions, cot_c, cot_s, sign, w, A, H)
    with torch.no_grad(), fwAD.dual_level(), intercept(adapter, st2):
        adapter.logits(fwAD.make_dual(path, tangent), am, target_rows)
    choices = torch.stack(st2.choices, dim=1)  # (S, L)

    ar = torch.arange(S, device=device)
    return unpack_searches(
        chunk, batch.tokens, sign=sign, g=g, positions=positions, choices=choices,
        influence_token=st1.scores[-1][ar, target], influence_head=st2.scores[-1][ar, choices[:, -1]],
        token_scores=st1.scores, head_scores=st2.scores,
    )
