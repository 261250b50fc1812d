"""Stable, printable names for the nodes of the graph (docs/method.md#the-graph).

``x3`` word embedding of token 3 · ``L0@3`` embedding output h^0_3 · ``L2@5`` layer
output h^2_5 · ``L2.H7@5`` head 7's context a^{2,7}_5 · ``L2.skip@5`` skip s^2_5 · ``y``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_PATTERN = re.compile(r"^(?:x(?P<x>\d+)|y|L(?P<l>\d+)(?:\.(?:H(?P<h>\d+)|(?P<skip>skip)))?@(?P<t>\d+))$")


@dataclass(frozen=True)
class Node:
    """A graph node. ``kind`` is one of ``x``, ``h``, ``head``, ``skip``, ``y``."""

    kind: str
    layer: int | None = None
    position: int | None = None
    head: int | None = None

    def __str__(self) -> str:
        if self.kind == "x":
            return f"x{self.position}"
        if self.kind == "y":
            return "y"
        if self.kind == "h":
            return f"L{self.layer}@{self.position}"
        if self.kind == "skip":
            return f"L{self.layer}.skip@{self.position}"
        return f"L{self.layer}.H{self.head}@{self.position}"


def parse_node(name: str) -> Node:
    """Inverse of ``str(Node)``: ``parse_node("L2.H7@5") == Node("head", 2, 5, 7)``."""
    m = _PATTERN.match(name.strip())
    if not m:
        raise ValueError(f"not a node name: {name!r} (expected x3, L2@5, L2.H7@5, L2.skip@5 or y)")
    if m["x"] is not None:
        return Node("x", position=int(m["x"]))
    if m["l"] is None:
        return Node("y")
    layer, pos = int(m["l"]), int(m["t"])
    if m["h"] is not None:
        return Node("head", layer, pos, int(m["h"]))
    if m["skip"]:
        return Node("skip", layer, pos)
    return Node("h", layer, pos)
