"""What a GPR search returns for one source token, before it becomes a ``Pattern``."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class SourceSearch:
    """GPR output for one source token (scores on the original QoI's scale).

    ``token_scores[l-1]``: stage-1 scores of every position at layer l (l = 1..L-1;
    the last entry is layer L's, with only the target defined, others NaN).
    ``head_scores[l-1]``: stage-2 scores at layer l, index 0 the skip, 1+j head j.
    """

    sentence: int
    source: int
    sign: int
    g: float
    positions: list[int]
    heads: list[int | None]
    influence_token: float
    influence_head: float
    token_scores: list[torch.Tensor] = field(default_factory=list)
    head_scores: list[torch.Tensor] = field(default_factory=list)


def choose(scores: torch.Tensor, sign: int, valid: torch.Tensor | None = None) -> int:
    """Index of the best candidate for a search with ``sign * q``; ties go to the first
    (the skip, in stage 2). ``valid`` masks candidates out."""
    s = scores * sign
    if valid is not None:
        s = torch.where(valid, s, torch.full_like(s, float("-inf")))
    return int(torch.argmax(s))
