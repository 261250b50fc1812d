"""What every GPR scorer shares: the choice rule (:func:`choose`, :func:`choose_node`),
what a search returns for one source token before it becomes a ``Pattern``
(:class:`SourceSearch`), and the default chunk size."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from influence_patterns.search.pattern import PatternFields

#: Rows per backward pass when the caller gives no ``max_rows``.
DEFAULT_MAX_ROWS = 2048


@dataclass
class SourceSearch(PatternFields):
    """GPR output for one source token of sentence ``sentence``: its pattern (fields of
    :class:`PatternFields`) and the candidate scores behind each choice (on the
    original QoI's scale).

    ``token_scores[l-1]``: stage-1 scores of every position at layer l (l = 1..L-1;
    the last entry is layer L's, with only the target defined, others NaN).
    ``head_scores[l-1]``: stage-2 scores at layer l, index 0 the skip, 1+j head j.
    """

    sentence: int = field(kw_only=True)
    token_scores: list[torch.Tensor] = field(default_factory=list)
    head_scores: list[torch.Tensor] = field(default_factory=list)


def unpack_searches(
    pairs: Sequence[tuple[int, int]],
    tokens: Sequence[Sequence[str]],
    *,
    sign: torch.Tensor,
    g: torch.Tensor,
    positions: torch.Tensor,
    choices: torch.Tensor,
    influence_token: torch.Tensor,
    influence_head: torch.Tensor,
    token_scores: Sequence[torch.Tensor],
    head_scores: Sequence[torch.Tensor],
) -> list[SourceSearch]:
    """One :class:`SourceSearch` per ``(sentence, source)`` of ``pairs`` from a batched
    search, row s for ``pairs[s]``: ``sign``, ``g``, ``influence_*`` (S,), ``positions``
    (S, L+1), ``choices`` (S, L) with 0 the skip and 1+j head j, and per layer
    ``token_scores`` (S, n) (cut to the sentence's length, that of ``tokens[sentence]``) and
    ``head_scores`` (S, H+1)."""
    return [
        SourceSearch(
            sentence=b,
            source_index=i,
            source_token=tokens[b][i],
            sign=int(sign[s]),
            g=float(g[s]),
            positions=[int(v) for v in positions[s]],
            heads=[None if int(k) == 0 else int(k) - 1 for k in choices[s]],
            influence_token=float(influence_token[s]),
            influence_head=float(influence_head[s]),
            token_scores=[sc[s, : len(tokens[b])].double() for sc in token_scores],
            head_scores=[sc[s].double() for sc in head_scores],
        )
        for s, (b, i) in enumerate(pairs)
    ]


def choose(scores: torch.Tensor, sign: torch.Tensor | float, valid: torch.Tensor | None = None) -> torch.Tensor:
    """The GPR choice: per row of ``scores`` (..., K), the index of the candidate with the
    largest sign-aligned score ``sign * score`` (a search follows the sign of g(x_i));
    ties go to the first candidate. ``sign``: a number or one per row (...,); ``valid``
    (..., K) masks candidates out. Returns (...,) indices (a 0-d tensor for one row).

    Every scorer (``search.reference``, ``search.fast``, ``search.full_width``) and the
    layer baselines of the ablation choose through this function, so that they agree."""
    sign = torch.as_tensor(sign, dtype=scores.dtype, device=scores.device)
    s = scores * sign.unsqueeze(-1) if sign.dim() else scores * sign
    if valid is not None:
        s = torch.where(valid, s, torch.full_like(s, float("-inf")))
    return s.argmax(dim=-1)  # ties: the first maximal index


def causal_candidates(causal: bool, n: int, previous: torch.Tensor | int) -> torch.Tensor | None:
    """Stage 1's candidates on a causal decoder: positions t ≥ ``previous`` (a query reads
    keys t' ≤ t only, so a pattern never moves left), as a (..., n) mask for :func:`choose`;
    ``None`` (every position) on an encoder."""
    if not causal:
        return None
    previous = torch.as_tensor(previous)
    return torch.arange(n, device=previous.device) >= previous.unsqueeze(-1)


def choose_node(scores: torch.Tensor, sign: torch.Tensor | float, continues: torch.Tensor | bool) -> torch.Tensor:
    """Stage 2's choice at one layer: ``scores`` (..., H+1) hold the skip (index 0) then
    head j (index 1+j). The skip is a candidate only where the pattern's position
    continues (``continues`` (...,): t_l = t_{l-1}); ties go to the skip."""
    continues = torch.as_tensor(continues, device=scores.device)
    valid = torch.ones(scores.shape, dtype=torch.bool, device=scores.device)
    valid[..., 0] = continues
    return choose(scores, sign, valid)
