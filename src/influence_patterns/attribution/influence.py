"""Pattern influence (docs/method.md#pattern-influence): Integrated Gradients restricted
to a pattern's paths.

This module is the slow, literal reference: one restricted IG per call, written the
way the definition reads. The fast scorers (``search.fast``, ``search.full_width``)
compute the same numbers with shared passes and are tested against it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, Union

import torch

from influence_patterns.attribution.gradients import ig_path
from influence_patterns.attribution.inputs import Batch
from influence_patterns.attribution.qoi import QoIFn
from influence_patterns.attribution.quadrature import Quadrature
from influence_patterns.graph.adapters import Adapter
from influence_patterns.graph.hooks import Interceptor, intercept, restrict

NodeKind = Union[str, int]  # "h" (layer output), "skip", or a head index


@dataclass(frozen=True)
class Constraint:
    """Where the pattern passes at one layer: ``position`` and ``node`` ("h", "skip" or head j)."""

    position: int
    node: NodeKind = "h"


class RestrictPaths(Interceptor):
    """Let gradient through the constrained nodes only; unconstrained layers are free."""

    def __init__(self, constraints: Sequence[Constraint | None], source: int, head_dim: int) -> None:
        self.constraints = list(constraints)  # index l-1 for layer l
        self.source = source
        self.head_dim = head_dim

    def _position_mask(self, v: torch.Tensor, t: int) -> torch.Tensor:
        m = torch.zeros(v.shape[:-1] + (1,), dtype=v.dtype, device=v.device)
        m[:, t] = 1
        return m

    def on_h(self, layer: int, h: torch.Tensor) -> torch.Tensor:
        t = self.source if layer == 0 else self._at(layer, "position")
        return h if t is None else restrict(h, self._position_mask(h, t))

    def on_attn(self, layer, context, skip):
        c = self.constraints[layer - 1]
        if c is None or c.node == "h":
            return context, skip
        if c.node == "skip":
            return context.detach(), restrict(skip, self._position_mask(skip, c.position))
        m = torch.zeros_like(context)
        j = int(c.node)
        m[:, c.position, j * self.head_dim : (j + 1) * self.head_dim] = 1
        return restrict(context, m), skip.detach()

    def _at(self, layer: int, field: str):
        c = self.constraints[layer - 1]
        return None if c is None else getattr(c, field)


def restricted_influence(
    adapter: Adapter,
    batch: Batch,
    b: int,
    source: int,
    constraints: Sequence[Constraint | None],
    quad: Quadrature,
    qoi: QoIFn,
) -> float:
    """I(x_source, π) for sentence ``b``: ``(x_i - b_i) · Σ_k w_k ∂_π q(b + α_k (x - b)) / ∂x_i``.

    ``constraints[l-1]`` says where π passes at layer l (``None``: anywhere).
    """
    n = batch.lengths[b]
    path = ig_path(batch.x[b, :n], batch.baseline[b, :n], quad).detach().requires_grad_(True)  # (A, n, d)
    rows = path.shape[0]
    am = batch.attention_mask[b, :n].expand(rows, n)
    target = batch.target_index[b].expand(rows)
    head_dim = adapter.hidden_size // adapter.num_heads
    with intercept(adapter, RestrictPaths(constraints, source, head_dim)):
        q = qoi(adapter.logits(path, am, target), batch.classes[b].expand(rows, 2))
    (grad,) = torch.autograd.grad(q.sum(), path)
    delta = (batch.x[b, source] - batch.baseline[b, source])  # (d,)
    per_alpha = grad[:, source] @ delta  # (A,)
    return float(per_alpha @ quad.weights.to(per_alpha))


def qoi_values(adapter: Adapter, batch: Batch, qoi: QoIFn) -> tuple[torch.Tensor, torch.Tensor]:
    """q(x) and q(b) for every sentence of the batch, shape (B,) each."""
    with torch.no_grad():
        both = torch.cat([batch.x, batch.baseline])
        am = batch.attention_mask.repeat(2, 1)
        logits = adapter.logits(both, am, batch.target_index.repeat(2))
        q = qoi(logits, batch.classes.repeat(2, 1))
    B = len(batch)
    return q[:B], q[B:]
