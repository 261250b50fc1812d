"""Notebook views: an explanation as HTML (its table and its picture as inline SVG).

``Explanation._repr_html_`` calls :func:`explanation_html`, so a notebook cell that
ends with an explanation shows both.
"""

from __future__ import annotations

import html
import io

from influence_patterns.result import Explanation
from influence_patterns.viz.terminal import EXPLANATION_LEGEND, explanation_title

_STYLE = (
    "<style>.ip-expl table{border-collapse:collapse;font-size:0.92em}"
    ".ip-expl th,.ip-expl td{padding:2px 8px;border-bottom:1px solid #e4e4e4;text-align:left}"
    ".ip-expl td.num{text-align:right;font-variant-numeric:tabular-nums}"
    ".ip-expl .pos{color:#1a7f37}.ip-expl .neg{color:#c0392b}"
    ".ip-expl svg{max-width:100%;height:auto}</style>"
)


def _num(v: float) -> str:
    cls = "pos" if v > 0 else "neg" if v < 0 else ""
    return f'<td class="num {cls}">{v:+.4f}</td>'


def explanation_table_html(expl: Explanation) -> str:
    """The per-token table as an HTML ``<table>``: token, g, I(π^e), I(π^a), pattern."""
    head = "".join(f"<th>{h}</th>" for h in ("token", "g", "I(π^e)", "I(π^a)", "pattern"))
    rows = "".join(
        f"<tr><td>{html.escape(p.source_token)}@{p.source_index}</td>{_num(p.g)}"
        f"{_num(p.influence_token)}{_num(p.influence_head)}<td>{html.escape(p.text(expl.tokens))}</td></tr>"
        for p in expl.patterns
    )
    caption = "<br>".join(html.escape(line) for line in explanation_title(expl).splitlines())
    return (f"<table><caption style='text-align:left'>{caption}</caption>"
            f"<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"
            f"<p style='color:#666;font-size:0.85em'>{html.escape(EXPLANATION_LEGEND)}</p>")


def explanation_svg(expl: Explanation) -> str:
    """The picture of :func:`~influence_patterns.viz.patterns.plot_explanation` as inline SVG."""
    from influence_patterns.viz.patterns import plot_explanation

    buffer = io.StringIO()
    plot_explanation(expl).savefig(buffer, format="svg", bbox_inches="tight")
    svg = buffer.getvalue()
    return svg[svg.index("<svg"):]  # drop the XML prolog and DOCTYPE


def explanation_html(expl: Explanation) -> str:
    """Table plus inline SVG, for ``_repr_html_``."""
    return f'<div class="ip-expl">{_STYLE}{explanation_table_html(expl)}{explanation_svg(expl)}</div>'
