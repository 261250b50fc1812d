"""Everything that prints or draws: terminal tables, pictures, HTML pages.

Compute code never imports this package. The plotting entry points load matplotlib on
first use (``from influence_patterns.viz import plot_explanation``), so the terminal
tables (:mod:`influence_patterns.viz.terminal`) stay light.
"""

from __future__ import annotations

import importlib
from typing import Any

#: Resolution of every raster the package writes (``explain --plot``, ``plot``, the
#: figures embedded in HTML pages), in dots per inch.
DEFAULT_DPI = 200

_LAZY = {
    "plot_explanation": "influence_patterns.viz.patterns",
    "plot_run": "influence_patterns.viz.aggregate",
    "render_html": "influence_patterns.viz.html",
    "write_html": "influence_patterns.viz.html",
    "write_interactive": "influence_patterns.viz.interactive",
    "print_explanation": "influence_patterns.viz.terminal",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["DEFAULT_DPI", *sorted(_LAZY)]
