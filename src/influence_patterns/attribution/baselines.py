"""Integrated-Gradients baselines for the word-piece embeddings (DESIGN §3)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from influence_patterns.registry import Registry

if TYPE_CHECKING:  # torch loads with make_baseline: the CLI lists the baselines in its help
    import torch

#: Baseline name → the special token whose embedding fills every row (``None``: zeros).
BASELINES: Registry[str | None] = Registry("baseline")
BASELINES.register("mask", "mask", "the [MASK] embedding at every word piece")
BASELINES.register("zero", None, "zeros")
BASELINES.register("pad", "pad", "the [PAD] embedding")
BASELINES.register("eos", "eos", "the EOS embedding; on a decoder, mask means the pad embedding, else EOS")


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
    import torch

    special_token = BASELINES.lookup(kind)
    if special_token is None:
        base = torch.zeros_like(embeddings)
    else:
        token = {"mask": mask_id, "pad": pad_id}.get(special_token)
        if token is None:
            raise ValueError(f"the tokenizer has no [{special_token.upper()}] token")
        row = word_embeddings.weight[token].detach().to(embeddings.dtype)
        base = row.expand_as(embeddings).clone()
    if keep_special:
        special = torch.zeros_like(input_ids, dtype=torch.bool)
        for sid in special_ids:
            special |= input_ids == sid
        base = torch.where(special.unsqueeze(-1), embeddings, base)
    return base
