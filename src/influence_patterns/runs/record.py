"""One line of ``results.jsonl``, typed: an :class:`Explanation` plus where it came from.

The JSON form is ``Explanation.to_dict()`` with ``index`` first and ``task``,
``condition``, ``roles`` (role -> TOKEN index), ``correct`` and the model's fingerprint
(``weights_sha256``, ``config_sha256``) after it; older lines without some of the extra
keys still read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from influence_patterns.result import Explanation, Pattern

#: Keys a record adds to the explanation's own.
RECORD_KEYS = ("index", "task", "condition", "roles", "correct", "weights_sha256", "config_sha256")


@dataclass
class RunRecord:
    """One explained instance of a run."""

    index: int
    explanation: Explanation
    task: str | None = None
    condition: str | None = None
    roles: dict[str, int] = field(default_factory=dict)
    correct: bool | None = None
    weights_sha256: str | None = None  # the model that computed it (models.base.fingerprint)
    config_sha256: str | None = None

    @property
    def q(self) -> float:
        """The QoI on the real input (``explanation.qoi_value``)."""
        return self.explanation.qoi_value

    @property
    def is_correct(self) -> bool:
        """``correct`` as recorded, or QoI > 0 for a line that does not record it."""
        return self.explanation.correct if self.correct is None else bool(self.correct)

    @property
    def patterns(self) -> list[Pattern]:
        return self.explanation.patterns

    def pattern_of(self, source_index: int) -> Pattern | None:
        """The pattern of the token at ``source_index``; ``None`` when it has none."""
        return next((p for p in self.explanation.patterns if p.source_index == source_index), None)

    def role_pattern(self, role: str) -> Pattern | None:
        """The pattern of the ``role`` token; ``None`` without that role or its pattern."""
        index = self.roles.get(role)
        return None if index is None else self.pattern_of(index)

    def to_dict(self) -> dict[str, Any]:
        """The ``results.jsonl`` line (as a dict): ``index``, the explanation, then the rest."""
        return {
            "index": self.index,
            **self.explanation.to_dict(),
            "task": self.task,
            "condition": self.condition,
            "roles": dict(self.roles),
            "correct": self.correct,
            "weights_sha256": self.weights_sha256,
            "config_sha256": self.config_sha256,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RunRecord":
        """Parse a line; raises ``KeyError``/``TypeError``/``ValueError`` when it is malformed
        (the reader turns those into a ``DataError`` naming file and line)."""
        if not isinstance(d, dict):
            raise TypeError("expected a JSON object")
        index = d["index"]
        if isinstance(index, bool) or not isinstance(index, int):
            raise ValueError(f"index must be an integer, got {index!r}")
        explanation = Explanation.from_dict({k: v for k, v in d.items() if k not in RECORD_KEYS})
        roles = d.get("roles") or {}
        if not isinstance(roles, dict):
            raise ValueError(f"roles must be an object, got {roles!r}")
        correct = d.get("correct")
        for key in ("weights_sha256", "config_sha256"):
            if d.get(key) is not None and not isinstance(d[key], str):
                raise ValueError(f"{key} must be a string, got {d[key]!r}")
        return cls(
            index=index,
            explanation=explanation,
            task=d.get("task"),
            condition=d.get("condition"),
            roles={str(k): int(v) for k, v in roles.items()},
            correct=None if correct is None else bool(correct),
            weights_sha256=d.get("weights_sha256"),
            config_sha256=d.get("config_sha256"),
        )
