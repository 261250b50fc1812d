"""influence-patterns: gradient-based influence patterns through BERT-style encoders.

``Explainer.from_pretrained("default-mlm").explain("the boy [MASK] here", targets=("is", "are"))``

Importing the package is cheap: torch and transformers load on first use of a name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_LAZY = {
    "Explainer": "influence_patterns.explainer",
    "ExplainConfig": "influence_patterns.config",
    "Query": "influence_patterns.attribution.inputs",
    "Explanation": "influence_patterns.result",
    "Pattern": "influence_patterns.result",
}

__all__ = [*_LAZY, "__version__"]

if TYPE_CHECKING:  # pragma: no cover
    from influence_patterns.attribution.inputs import Query
    from influence_patterns.config import ExplainConfig
    from influence_patterns.explainer import Explainer
    from influence_patterns.result import Explanation, Pattern


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'influence_patterns' has no attribute {name!r}")
