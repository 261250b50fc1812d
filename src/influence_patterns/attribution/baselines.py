"""Integrated-Gradients baselines for the word-piece embeddings (DESIGN §3)."""

from __future__ import annotations

import torch

BASELINES = ("mask", "zero", "pad")


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
    """The baseline ``b`` with the shape of ``embeddings`` (batch, seq, hidden).

    ``mask``: every word piece's embedding replaced by the ``[MASK]`` embedding;
    ``zero``: zeros; ``pad``: the ``[PAD]`` embedding. With ``keep_special`` the rows
    of special tokens (``[CLS]``, ``[SEP]``, ``[PAD]``) stay real.
    """
    if kind == "zero":
        base = torch.zeros_like(embeddings)
    elif kind in ("mask", "pad"):
        token = mask_id if kind == "mask" else pad_id
        if token is None:
            raise ValueError(f"the tokenizer has no {'[MASK]' if kind == 'mask' else '[PAD]'} token")
        row = word_embeddings.weight[token].detach().to(embeddings.dtype)
        base = row.expand_as(embeddings).clone()
    else:
        raise ValueError(f"unknown baseline {kind!r}; choose one of {', '.join(BASELINES)}")
    if keep_special:
        special = torch.zeros_like(input_ids, dtype=torch.bool)
        for sid in special_ids:
            special |= input_ids == sid
        base = torch.where(special.unsqueeze(-1), embeddings, base)
    return base
