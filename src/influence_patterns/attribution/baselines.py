"""Integrated-Gradients baselines for the word-piece embeddings
(docs/method.md#pattern-influence).

:data:`BASELINES` maps a name to a :data:`BaselineFn`, the function that builds the
baseline; registering a new one is one ``BASELINES.register`` call and it is then
accepted by ``ExplainConfig.baseline`` and ``--baseline``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from influence_patterns.registry import Registry

if TYPE_CHECKING:  # torch loads with make_baseline: the CLI lists the baselines in its help
    import torch


@dataclass(frozen=True)
class BaselineInputs:
    """What a baseline function may read: the batch's ``input_ids`` (batch, seq), its
    word-piece ``embeddings`` (batch, seq, hidden), the model's embedding table and the
    tokenizer's ``[MASK]`` / ``[PAD]`` ids (``None`` where it has none)."""

    input_ids: torch.Tensor
    embeddings: torch.Tensor
    word_embeddings: torch.nn.Embedding
    mask_id: int | None
    pad_id: int | None


#: A baseline: :class:`BaselineInputs` → a tensor shaped like ``embeddings``.
BaselineFn = Callable[[BaselineInputs], "torch.Tensor"]


def _token_row(token: str) -> BaselineFn:
    """The baseline that puts the embedding of ``token`` ("mask", "pad" or "eos") at every row."""

    def baseline(inputs: BaselineInputs) -> torch.Tensor:
        token_id = {"mask": inputs.mask_id, "pad": inputs.pad_id}.get(token)  # an encoder has no EOS id here
        if token_id is None:
            raise ValueError(f"the tokenizer has no [{token.upper()}] token")
        row = inputs.word_embeddings.weight[token_id].detach().to(inputs.embeddings.dtype)
        return row.expand_as(inputs.embeddings).clone()

    return baseline


def _zeros(inputs: BaselineInputs) -> torch.Tensor:
    import torch

    return torch.zeros_like(inputs.embeddings)


BASELINES: Registry[BaselineFn] = Registry("baseline")
BASELINES.register("mask", _token_row("mask"), "the [MASK] embedding at every word piece")
BASELINES.register("zero", _zeros, "zeros")
BASELINES.register("pad", _token_row("pad"), "the [PAD] embedding")
# Decoders build their baseline from the name (attribution.prefix.decoder_baseline).
BASELINES.register("eos", _token_row("eos"), "the EOS embedding; on a decoder, mask means the pad embedding, else EOS")


def make_baseline(
    input_ids: torch.Tensor,
    embeddings: torch.Tensor,
    word_embeddings: torch.nn.Embedding,
    kind: str,
    special_ids: set[int],
    mask_id: int | None,
    pad_id: int | None,
    keep_special: bool = False,
) -> torch.Tensor:
    """The baseline ``b`` of kind ``kind`` (a name in :data:`BASELINES`) with the shape of
    ``embeddings`` (batch, seq, hidden). With ``keep_special`` the rows of special tokens
    (``[CLS]``, ``[SEP]``, ``[PAD]``) stay real."""
    import torch

    base = BASELINES.lookup(kind)(BaselineInputs(input_ids, embeddings, word_embeddings, mask_id, pad_id))
    if keep_special:
        special = torch.zeros_like(input_ids, dtype=torch.bool)
        for sid in special_ids:
            special |= input_ids == sid
        base = torch.where(special.unsqueeze(-1), embeddings, base)
    return base
