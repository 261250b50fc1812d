"""One gradient core (issue 12): the IG path, position masks and the plain pass's node
cotangents, shared by the fast searches (``search.fast``, ``search.full_width``) and
the layer baselines of the ablation (``analysis.methods``: internal influence,
layer conductance).

Restricting gradients changes no forward value, so every fast scorer starts from the
same plain forward + backward along the IG path: per row (sentence × α) the
cotangents ∂q/∂h^l, ∂q/∂a^l, ∂q/∂s^l of the graph's nodes (docs/method.md#the-graph) and the
gradient at the input, from which plain IG g(x_i) follows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch

from influence_patterns.attribution.inputs import Batch
from influence_patterns.attribution.qoi import QoIFn
from influence_patterns.attribution.quadrature import Quadrature
from influence_patterns.graph.adapters import Adapter
from influence_patterns.graph.hooks import RecordAttention, intercept

NODE_KINDS = ("h", "context", "skip")


def ig_path(x: torch.Tensor, baseline: torch.Tensor, quad: Quadrature) -> torch.Tensor:
    """The IG path's points ``b + α_k (x - b)`` for every quadrature point α_k: inputs
    ``x`` and ``baseline`` (..., n, d) give (..., A, n, d). The one place the path is
    written: the reference (``attribution.influence``), every scorer and the layer
    baselines interpolate through it."""
    alphas = quad.alphas.to(x.device, x.dtype).view(-1, 1, 1)
    return baseline.unsqueeze(-3) + alphas * (x - baseline).unsqueeze(-3)


def position_mask(positions: torch.Tensor, n: int, dtype: torch.dtype) -> torch.Tensor:
    """(R,) positions → (R, n, 1) one-hot (for ``graph.hooks.restrict``)."""
    m = torch.zeros(positions.shape[0], n, 1, dtype=dtype, device=positions.device)
    m[torch.arange(positions.shape[0], device=positions.device), positions] = 1
    return m


class RecordNodes(RecordAttention):
    """Keeps h^0..h^L and fresh views of a^l, s^l (see ``RecordAttention``): the nodes of
    one pass, for gradients, forward-mode tangents (``torch.func.jvp``) or values."""

    def __init__(self) -> None:
        super().__init__()
        self.h: list[torch.Tensor] = []

    def on_h(self, layer, h):
        self.h.append(h)
        return h


@dataclass
class PlainPass:
    """What one plain pass over some rows gives. Lists are per layer; each tensor is
    (rows, n, ·). ``h`` holds l = 0..L, ``context``/``skip`` l = 1..L (index l-1);
    only the kinds asked for are filled. ``skip_values`` are s^l = h^{l-1} (values)."""

    input_grad: torch.Tensor
    h: list[torch.Tensor] = field(default_factory=list)
    context: list[torch.Tensor] = field(default_factory=list)
    skip: list[torch.Tensor] = field(default_factory=list)
    skip_values: list[torch.Tensor] = field(default_factory=list)


def plain_pass(
    adapter: Adapter,
    qoi: QoIFn,
    path: torch.Tensor,
    attention_mask: torch.Tensor,
    target_index: torch.Tensor,
    classes: torch.Tensor,
    *,
    kinds: Sequence[str] = NODE_KINDS,
    max_rows: int | None = None,
    keep_skip_values: bool = False,
) -> PlainPass:
    """One forward + backward of ``q`` for every row of ``path`` (R, n, d_x) (with its
    own mask, target and classes), in chunks of at most ``max_rows`` rows: ∂q/∂x and
    the cotangents of the node kinds in ``kinds``."""
    unknown = set(kinds) - set(NODE_KINDS)
    if unknown:
        raise ValueError(f"unknown node kinds {sorted(unknown)}; known: {', '.join(NODE_KINDS)}")
    R = path.shape[0]
    step = R if max_rows is None else max(1, max_rows)
    parts: list[dict[str, list[torch.Tensor]]] = []
    input_grads = []
    for r0 in range(0, R, step):
        rows = slice(r0, min(R, r0 + step))
        p = path[rows].detach().requires_grad_(True)
        rec = RecordNodes()
        with torch.enable_grad(), intercept(adapter, rec):
            q = qoi(adapter.logits(p, attention_mask[rows], target_index[rows]), classes[rows])
        wanted = {"h": rec.h, "context": rec.context, "skip": rec.skip}
        inputs = [p] + [t for k in NODE_KINDS if k in kinds for t in wanted[k]]
        grads = list(torch.autograd.grad(q.sum(), inputs))
        input_grads.append(grads.pop(0))
        part: dict[str, list[torch.Tensor]] = {}
        for k in NODE_KINDS:
            if k in kinds:
                part[k], grads = grads[: len(wanted[k])], grads[len(wanted[k]) :]
        if keep_skip_values:
            part["skip_values"] = [s.detach() for s in rec.skip]
        parts.append(part)
        del rec, q
    cat = lambda ts: ts[0] if len(ts) == 1 else torch.cat(ts)  # noqa: E731
    out = PlainPass(cat(input_grads))
    for k in parts[0]:
        setattr(out, k, [cat([p[k][l] for p in parts]) for l in range(len(parts[0][k]))])
    return out


def node_cotangents(
    adapter: Adapter,
    batch: Batch,
    quad: Quadrature,
    qoi: QoIFn,
    max_rows: int | None = None,
    kinds: Sequence[str] = NODE_KINDS,
) -> tuple[dict[str, list[torch.Tensor]], torch.Tensor]:
    """For every sentence of ``batch`` on the IG path: the node cotangents of ``kinds``,
    each (B, A, n, ·) per layer (``h``: l = 0..L; ``context``, ``skip``: l = 1..L), and
    plain IG g(x_i) of every token (B, n). Rows (sentence × α) go in chunks of at most
    ``max_rows``; a sentence's α steps may be split across chunks."""
    B, A = len(batch), len(quad)
    sent = torch.arange(B, device=batch.x.device)
    path = ig_path(batch.x, batch.baseline, quad).flatten(0, 1)  # (B·A, n, d), sentence-major
    rep = lambda t: t.repeat_interleave(A, 0)  # noqa: E731
    out = plain_pass(adapter, qoi, path, rep(batch.attention_mask), rep(batch.target_index), rep(batch.classes),
                     kinds=kinds, max_rows=max_rows)
    w = quad.weights.to(batch.x)
    grad = out.input_grad.view(B, A, *out.input_grad.shape[1:])
    g = torch.einsum("band,bnd,a->bn", grad, batch.x - batch.baseline, w)
    shape = lambda t: t.view(B, A, *t.shape[1:])  # noqa: E731
    return {k: [shape(t) for t in getattr(out, k)] for k in kinds}, g
