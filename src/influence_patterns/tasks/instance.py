"""The unit of work of a data set: one text to explain."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from influence_patterns.graph.kind import MASK  # noqa: F401 (how instances write the masked word)


@dataclass
class Instance:
    """One text to explain.

    For masked agreement tasks ``text`` holds exactly one ``[MASK]`` and ``targets``
    is ``(good, bad)``. For classification ``label`` is the gold class index.
    ``roles`` maps a role name (``subject``, ``attractor``, ``verb``, ...) to the index
    of that word in ``text.split()`` (whitespace words, not word pieces).
    ``counterfactual``: the same sentence with the answer flipped (agreement: the
    subject's number flipped, the attractor kept), read with the same ``targets``
    (its correct answer is ``targets[1]``); ``None`` where there is none.
    ``origin`` says where the instance was read (``FILE line N``, for error messages; not saved).
    """

    text: str
    targets: tuple[str, str] | None = None
    label: int | None = None
    task: str = ""
    condition: str = ""
    roles: dict[str, int] = field(default_factory=dict)
    counterfactual: str | None = None
    origin: str = field(default="", repr=False, compare=False)

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("origin")
        d["targets"] = list(self.targets) if self.targets is not None else None
        if d["counterfactual"] is None:
            del d["counterfactual"]
        return d

    def where(self) -> str:
        """``"FILE line N: "`` when the instance was read from a file, else ``""`` (error prefixes)."""
        return f"{self.origin}: " if self.origin else ""

    @classmethod
    def from_dict(cls, d: dict) -> "Instance":
        targets = d.get("targets")
        return cls(
            text=d["text"],
            targets=tuple(targets) if targets is not None else None,
            label=d.get("label"),
            task=d.get("task", ""),
            condition=d.get("condition", ""),
            roles=dict(d.get("roles") or {}),
            counterfactual=d.get("counterfactual"),
        )
