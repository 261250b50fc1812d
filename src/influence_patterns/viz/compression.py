"""The compression figure of the report: methods × metric, each value with its 95% CI.

One panel per metric (accuracy retained, QoI retained: keep only a method's nodes,
replace the rest), one row per method (grouped as the ablation groups them, patterns
first), a dot at the value and a bar over its paired-bootstrap CI; the floor (no node
kept) as a dotted line. Artists carry ``gid`` s ``compression:<metric>:<method>`` for tests.
"""

from __future__ import annotations

from typing import Any

from matplotlib.figure import Figure

from influence_patterns.viz.patterns import SOURCE_COLOURS

#: The metrics drawn, with their axis labels.
METRICS = (("accuracy_retained", "accuracy retained"), ("qoi_retained", "QoI retained"))


def _estimate(entry: Any) -> tuple[float | None, float | None, float | None]:
    if not isinstance(entry, dict) or entry.get("value") is None:
        return None, None, None
    lo, hi = (entry.get("ci") or [None, None])[:2]
    return float(entry["value"]), lo, hi


def plot_compression(summary: dict[str, Any], title: str | None = None) -> Figure:
    """The figure of an ablation summary (``analysis.ablation`` pooled result: ``methods``
    with ``name``, ``group``, ``nodes`` and ``{"value", "ci"}`` per metric; ``floor``)."""
    methods = list(summary.get("methods") or [])
    groups = list(dict.fromkeys(str(m.get("group", "")) for m in methods))
    colour = {g: SOURCE_COLOURS[k % len(SOURCE_COLOURS)] for k, g in enumerate(groups)}
    fig = Figure(figsize=(9.0, 1.2 + 0.42 * max(len(methods), 1)), layout="constrained")
    axes = fig.subplots(1, len(METRICS), sharey=True)
    labels = [f"{m['name']} ({m.get('nodes', 0):.1f} nodes)" for m in methods]
    for ax, (key, label) in zip(axes, METRICS):
        for row, m in enumerate(methods):
            value, lo, hi = _estimate(m.get(key))
            if value is None:
                continue
            c = colour[str(m.get("group", ""))]
            if lo is not None and hi is not None:
                ax.plot([lo, hi], [row, row], color=c, lw=2.2, solid_capstyle="butt", zorder=2)
            ax.plot([value], [row], ls="none", marker="o", ms=7, color=c, mec="white", zorder=3,
                    gid=f"compression:{key}:{m['name']}")
        floor, _, _ = _estimate((summary.get("floor") or {}).get(key))
        if floor is not None:
            ax.axvline(floor, color="#777777", ls=":", lw=1.2, zorder=1, label="no node kept (floor)")
            ax.legend(loc="lower right", fontsize=8, frameon=False)
        ax.axvline(1.0, color="#BBBBBB", lw=0.8, zorder=0)
        ax.set_xlabel(f"{label} (value, 95% CI)", fontsize=9)
        ax.grid(axis="x", color="#EEEEEE", lw=0.6)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
    axes[0].set_yticks(range(len(methods)))
    axes[0].set_yticklabels(labels, fontsize=9)
    axes[0].invert_yaxis()
    for label, m in zip(axes[0].get_yticklabels(), methods):
        label.set_color(colour[str(m.get("group", ""))])
    fig.suptitle(title or f"Compression: keep only each method's nodes ({summary.get('instances', '?')} instances)",
                 fontsize=11, x=0.01, ha="left")
    return fig
