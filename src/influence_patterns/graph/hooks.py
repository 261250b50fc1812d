"""Hooks on the real Hugging Face modules that expose the graph's nodes.

An :class:`Interceptor` sees every node tensor as the model computes it and may
return a replacement (same values; a different gradient or tangent path, or an
ablation). Layers are numbered 1..L; ``on_h(0, ·)`` is the embedding output h^0.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch

from influence_patterns.graph.adapters import Adapter


class Interceptor:
    """Identity interceptor; subclass and override what you need."""

    def on_h(self, layer: int, h: torch.Tensor) -> torch.Tensor:
        """h^layer, shape (rows, seq, hidden)."""
        return h

    def on_attn(self, layer: int, context: torch.Tensor, skip: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """a^{layer,·} as (rows, seq, heads*head_dim), heads concatenated, and s^layer (rows, seq, hidden)."""
        return context, skip


class RecordAttention(Interceptor):
    """Keeps a^l and s^l of every layer (``self.context``, ``self.skip``) as fresh views,
    so their gradients can be taken. The skip tensor is also the attention's input;
    the fresh view makes only this use of it the node s^l."""

    def __init__(self) -> None:
        self.context: list[torch.Tensor] = []
        self.skip: list[torch.Tensor] = []

    def on_attn(self, layer: int, context: torch.Tensor, skip: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        context, skip = context.view_as(context), skip.view_as(skip)
        self.context.append(context)
        self.skip.append(skip)
        return context, skip


@contextmanager
def intercept(adapter: Adapter, interceptor: Interceptor) -> Iterator[None]:
    """Install the adapter's hooks for the duration of the ``with`` block."""
    handles = adapter.install_hooks(interceptor)
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def restrict(v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Same values as ``v``; gradient and tangent pass only where ``mask`` is 1."""
    return mask * v + (1 - mask) * v.detach()
