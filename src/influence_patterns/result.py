"""Result dataclasses: what an explanation returns, and its JSON form.

Compute code builds these; plotting code reads them. Nothing here imports plotting.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from influence_patterns.fileio import write_json


@dataclass
class Pattern:
    """The influence pattern of one source token (DESIGN §4).

    ``positions[0]`` is the source index and ``positions[-1]`` the target index
    (``num_layers + 1`` entries). ``heads[l]`` is the head chosen at layer ``l + 1``,
    ``None`` for the skip connection. Scores are on the original QoI's scale.
    """

    source_index: int
    source_token: str
    sign: int
    g: float
    positions: list[int]
    heads: list[int | None]
    influence_token: float
    influence_head: float

    def token_path(self) -> str:
        """``x2 → L1@3 → L2@3 …`` : the token-level pattern as text."""
        steps = [f"x{self.positions[0]}"]
        steps += [f"L{l}@{t}" for l, t in enumerate(self.positions[1:], start=1)]
        return " → ".join(steps)

    def head_path(self) -> str:
        """``L1.H3 → L2.skip → …`` : the head-level pattern as text."""
        return " → ".join(
            f"L{l}.skip" if h is None else f"L{l}.H{h}" for l, h in enumerate(self.heads, start=1)
        )

    def node_names(self) -> list[str]:
        """Printable node names of the head-level pattern, e.g. ``L2.H7@5``, ``L3.skip@5``."""
        names = [f"x{self.positions[0]}"]
        for l, (t, h) in enumerate(zip(self.positions[1:], self.heads), start=1):
            names.append(f"L{l}.skip@{t}" if h is None else f"L{l}.H{h}@{t}")
        return names

    def to_dict(self) -> dict[str, Any]:
        return {
            "source_index": self.source_index,
            "source_token": self.source_token,
            "sign": self.sign,
            "g": self.g,
            "positions": list(self.positions),
            "heads": list(self.heads),
            "influence_token": self.influence_token,
            "influence_head": self.influence_head,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Pattern":
        return cls(
            source_index=int(d["source_index"]),
            source_token=d["source_token"],
            sign=int(d["sign"]),
            g=float(d["g"]),
            positions=[int(p) for p in d["positions"]],
            heads=[None if h is None else int(h) for h in d["heads"]],
            influence_token=float(d["influence_token"]),
            influence_head=float(d["influence_head"]),
        )


@dataclass
class Explanation:
    """Influence patterns of every source token of one text, plus the QoI."""

    model: str
    text: str
    tokens: list[str]
    target_index: int
    num_layers: int
    num_heads: int
    steps: int
    baseline: str
    qoi_name: str
    qoi_value: float
    qoi_baseline_value: float
    patterns: list[Pattern]
    targets: list[str] | None = None
    label: int | None = None
    quadrature: str = "riemann"
    method: str = "fast"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def correct(self) -> bool:
        """The model gets this instance right: QoI > 0 (DESIGN §2)."""
        return self.qoi_value > 0

    def pattern_for(self, source_index: int) -> Pattern:
        for p in self.patterns:
            if p.source_index == source_index:
                return p
        raise KeyError(f"no pattern for source index {source_index}")

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "model": self.model,
            "text": self.text,
            "tokens": list(self.tokens),
            "target_index": self.target_index,
            "num_layers": self.num_layers,
            "num_heads": self.num_heads,
            "steps": self.steps,
            "baseline": self.baseline,
            "quadrature": self.quadrature,
            "method": self.method,
            "targets": list(self.targets) if self.targets is not None else None,
            "label": self.label,
            "qoi": {
                "name": self.qoi_name,
                "value": self.qoi_value,
                "baseline_value": self.qoi_baseline_value,
            },
            "patterns": [p.to_dict() for p in self.patterns],
        }
        d.update(self.extra)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Explanation":
        known = {
            "model", "text", "tokens", "target_index", "num_layers", "num_heads", "steps",
            "baseline", "quadrature", "method", "targets", "label", "qoi", "patterns",
        }
        return cls(
            model=d["model"],
            text=d["text"],
            tokens=list(d["tokens"]),
            target_index=int(d["target_index"]),
            num_layers=int(d["num_layers"]),
            num_heads=int(d["num_heads"]),
            steps=int(d["steps"]),
            baseline=d["baseline"],
            qoi_name=d["qoi"]["name"],
            qoi_value=float(d["qoi"]["value"]),
            qoi_baseline_value=float(d["qoi"]["baseline_value"]),
            patterns=[Pattern.from_dict(p) for p in d["patterns"]],
            targets=d.get("targets"),
            label=d.get("label"),
            quadrature=d.get("quadrature", "riemann"),
            method=d.get("method", "fast"),
            extra={k: v for k, v in d.items() if k not in known},
        )

    def save(self, path: str | Path) -> None:
        """Write the JSON form atomically (strict JSON; ``OutputError`` on a failed write)."""
        write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> "Explanation":
        return cls.from_dict(json.loads(Path(path).read_text()))

    def show(self) -> None:
        """Print the per-token table (rich) to the terminal."""
        from influence_patterns.display import print_explanation

        print_explanation(self)
