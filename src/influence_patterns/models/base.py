"""What every model module shares: the loaded-model record and putting a model in eval mode.

It sits below both ``models.loading`` (which resolves names, default ones included)
and ``models.defaults`` (which builds the defaults and measures them), so neither has
to import the other to get these.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class LoadedModel:
    """A model in eval mode with eager attention, its tokenizer and what kind of head it has."""

    model: Any
    tokenizer: Any
    name: str
    kind: str  # "mlm" or "classification"


def prepare(model: Any) -> Any:
    """Eval mode, eager attention (fused attention has no forward-mode AD)."""
    model.eval()
    model.config._attn_implementation = "eager"
    for module in model.modules():
        cfg = getattr(module, "config", None)
        if cfg is not None and hasattr(cfg, "_attn_implementation"):
            cfg._attn_implementation = "eager"
    return model
