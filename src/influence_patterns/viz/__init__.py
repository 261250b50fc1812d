"""Pictures of explanations: one text (``plot_explanation``), a task (``plot_run``), HTML pages.

Plotting lives here only; compute code never imports this package (or matplotlib).
"""

from influence_patterns.viz.aggregate import plot_run, read_results
from influence_patterns.viz.html import render_html, write_html
from influence_patterns.viz.patterns import plot_explanation

__all__ = ["plot_explanation", "plot_run", "read_results", "render_html", "write_html"]
