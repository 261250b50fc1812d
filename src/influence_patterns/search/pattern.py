"""What a head-level influence pattern is, as a search finds it (no torch here, so
``result`` can build on it without loading torch)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class PatternFields:
    """The influence pattern of one source token (docs/method.md#guided-pattern-refinement).

    ``positions[0]`` is the source index and ``positions[-1]`` the target index
    (``num_layers + 1`` entries). ``heads[l]`` is the head chosen at layer ``l + 1``,
    ``None`` for the skip connection. Scores are on the original QoI's scale.
    ``result.Pattern`` adds its printed forms and JSON; ``search.common.SourceSearch``
    the candidate scores behind each choice.
    """

    source_index: int
    source_token: str
    sign: int
    g: float
    positions: list[int]
    heads: list[int | None]
    influence_token: float
    influence_head: float
