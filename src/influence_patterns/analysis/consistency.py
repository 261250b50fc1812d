"""Consistency (docs/method.md#analyses): how often instances of a task share the same pattern.

Sentences differ in length, so a pattern is compared through a *key* that names
positions by what they are rather than by index. For layer l = 1..L the key holds
``(node, move)``:

- ``node``: ``skip`` or ``H<j>`` (the head-level choice at layer l);
- ``move``: where position t_l lies relative to t_{l-1}: ``stay`` when
  t_l = t_{l-1}; otherwise the instance's role at t_l (``subject``, ``verb`` ...),
  else the token itself when it is the target or a special token (``[MASK]``,
  ``[CLS]``, ``[SEP]``), else ``other`` (:func:`position_name`).

Printed in the one pattern notation, e.g. ``L1 skip → L2 H3@verb → L3 skip``: a role
name stands for a position only in views that aggregate over instances; a single
explanation names the token (``H3@[MASK]``). For each role (the pattern of the
role's token) and for ``all`` (every source token's pattern) we report the number of
patterns, the number of distinct keys, the frequency of the most common key
(``top_frequency``, share of patterns) and the Shannon entropy of the key
distribution in bits (0 = every instance takes the same pattern).
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any, Iterable, Sequence

from influence_patterns.analysis.skip import skip_statistics
from influence_patterns.result import Pattern, format_steps, head_name
from influence_patterns.runs import RunRecord

SPECIAL = ("[CLS]", "[SEP]", "<s>", "</s>")
Key = tuple[tuple[str, str], ...]


def position_name(t: int, record: RunRecord, by_index: dict[int, str]) -> str | None:
    """How a view that aggregates over instances names position ``t``: the instance's role
    there (``subject``, ``verb`` ...), else the target's or a special token's own text
    (``[MASK]``, ``[CLS]``, ``[SEP]``, as a single explanation prints it); ``None`` for
    any other word. One rule for ``analyze``, ``plot --role`` and the report's figures."""
    if t in by_index:
        return by_index[t]
    tokens = record.explanation.tokens
    if 0 <= t < len(tokens) and (t == record.explanation.target_index or tokens[t] in SPECIAL):
        return tokens[t]
    return None


def _move(t: int, prev: int, record: RunRecord, by_index: dict[int, str]) -> str:
    if t == prev:
        return "stay"
    return position_name(t, record, by_index) or "other"


def pattern_key(record: RunRecord, pattern: Pattern) -> Key:
    """The position-independent key of a head-level pattern (see the module doc)."""
    by_index: dict[int, str] = {}
    for role, index in record.roles.items():
        by_index.setdefault(index, role)
    pos = pattern.positions
    return tuple(
        (head_name(h), _move(pos[l + 1], pos[l], record, by_index))
        for l, h in enumerate(pattern.heads)
    )


def key_text(key: Key) -> str:
    """``L1 skip → L2 H3@verb → …`` (:func:`influence_patterns.result.format_steps`)."""
    return format_steps([(node, None if move == "stay" else move) for node, move in key])


def entropy(counts: Iterable[int]) -> float:
    """Shannon entropy in bits of a distribution given by counts."""
    counts = [c for c in counts if c > 0]
    total = sum(counts)
    return 0.0 + float(-sum(c / total * math.log2(c / total) for c in counts)) if total else 0.0


def distribution(keys: list[Key]) -> dict[str, Any]:
    """``n``, ``distinct``, ``top_frequency``, ``entropy`` (bits), ``top_pattern`` of keys."""
    if not keys:
        return {"n": 0, "distinct": 0, "top_frequency": None, "entropy": None, "top_pattern": None}
    counter = Counter(keys)
    top, top_count = min(counter.items(), key=lambda kv: (-kv[1], kv[0]))
    return {
        "n": len(keys),
        "distinct": len(counter),
        "top_frequency": top_count / len(keys),
        "entropy": entropy(counter.values()),
        "top_pattern": key_text(top),
    }


def role_patterns(records: Sequence[RunRecord]) -> dict[str, list[tuple[RunRecord, Pattern]]]:
    """``role -> [(record, pattern)]`` for every role whose token has a pattern, plus ``all``."""
    out: dict[str, list[tuple[RunRecord, Pattern]]] = {"all": []}
    for record in records:
        out["all"].extend((record, p) for p in record.patterns)
        for role in record.roles:
            p = record.role_pattern(role)
            if p is not None:
                out.setdefault(role, []).append((record, p))
    return out


def consistency(records: Sequence[RunRecord]) -> dict[str, dict[str, Any]]:
    """Per role (and ``all``): the key distribution's statistics and the role's skip share."""
    result: dict[str, dict[str, Any]] = {}
    num_layers = records[0].explanation.num_layers if records else 0
    for role, pairs in role_patterns(records).items():
        stats = distribution([pattern_key(record, p) for record, p in pairs])
        stats["skip_share"] = skip_statistics((p for _, p in pairs), num_layers)["skip_share"]
        result[role] = stats
    return result
