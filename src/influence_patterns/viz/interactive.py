"""An interactive view of one explanation: a self-contained HTML page (Plotly, offline).

Like the static figure (tokens across, layers up), drawn with Plotly and embedded
whole in the page (no network). On the page:

- hover a token (the row of token names under ``h0``) or any node of a path: that
  source's token- and head-level path is highlighted, the others fade; click to pin
  the highlight, click the background or double-click to release it;
- the tooltip of a node gives the step (``L2 H1@[MASK]``), the graph node
  (``L2.H1@6``) and the pattern's influence I(π^a), I(π^e) and g;
- the legend toggles sources (click) or isolates one (double-click).

The page fills the window's width (responsive; the legend stays in view) and embeds the
scatter-only plotly.js bundle shipped in ``viz/static`` (about 1.2 MB, MIT; see its
README) instead of the full 4.8 MB one. The legend gives each source's sign and I(π^a).

The page reports its state in the DOM for tests: ``<body data-highlighted="2">``.
A URL fragment ``#hover=2`` dispatches a hover on token 2's marker after loading
(the same event a mouse sends), which headless tests use.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from influence_patterns.fileio import write_text
from influence_patterns.result import Explanation, Pattern, head_name, position_label
from influence_patterns.viz.patterns import _check, _offsets, _select, pattern_sign, qoi_title, source_colours

#: The vendored plotly.js bundle (scatter, bar, pie: all these pages draw), package data.
PLOTLY_BUNDLE = "plotly-basic.min.js"
_CONFIG = {"displaylogo": False, "responsive": True}

FADED = 0.12

_SCRIPT = """
var gd = document.getElementById('{plot_id}');
var pinned = null;
function highlight(src) {
  var op = gd.data.map(function (t) {
    if (!t.meta || t.meta.source === undefined) { return 1; }
    return (src === null || t.meta.source === src) ? 1 : %(faded)s;
  });
  Plotly.restyle(gd, {opacity: op});
  document.body.setAttribute('data-highlighted', src === null ? '' : String(src));
}
function sourceOf(ev) {
  var p = ev && ev.points && ev.points[0];
  if (!p || p.customdata === undefined || p.customdata === null || p.customdata < 0) { return null; }
  return p.customdata;
}
gd.on('plotly_hover', function (ev) { var s = sourceOf(ev); if (s !== null && pinned === null) { highlight(s); } });
gd.on('plotly_unhover', function () { if (pinned === null) { highlight(null); } });
gd.on('plotly_click', function (ev) { var s = sourceOf(ev); pinned = (s === pinned) ? null : s; highlight(pinned); });
gd.on('plotly_doubleclick', function () { pinned = null; highlight(null); });
document.body.setAttribute('data-highlighted', '');
var m = /hover=(\\d+)/.exec(window.location.hash);
if (m) {
  // A mouse hover, as the browser would send it: a mousemove over the token's marker.
  setTimeout(function () {
    var want = parseInt(m[1], 10);
    var tokens = gd.data.filter(function (t) { return t.meta && t.meta.kind === 'tokens'; })[0];
    var k = tokens.customdata.indexOf(want);
    var point = gd.querySelectorAll('.tracetokens .point')[k];
    var drag = gd.querySelector('.nsewdrag');
    if (!point || !drag) { return; }
    var r = point.getBoundingClientRect();
    drag.dispatchEvent(new MouseEvent('mousemove', {
      clientX: r.left + r.width / 2, clientY: r.top + r.height / 2, bubbles: true, view: window
    }));
  }, 50);
}
"""


def _hover(expl: Explanation, p: Pattern, layer: int) -> str:
    name = f"<b>{html.escape(p.source_token)} ({p.source_index})</b>"
    if layer == 0:
        step = "source embedding h0"
        node = f"x{p.source_index}"
    else:
        (kind, where) = p.path_steps(expl.tokens)[layer - 1]
        step = f"L{layer} {kind}" + ("" if where is None else f"@{html.escape(where)}")
        node = p.node_names()[layer]
    return (
        f"{name}<br>step: {step}<br>node: {html.escape(node)}<br>"
        f"I(π<sup>a</sup>) = {p.influence_head:+.4g} · I(π<sup>e</sup>) = {p.influence_token:+.4g} · g = {p.g:+.4g}<br>"
        f"pattern: {html.escape(p.text(expl.tokens))}"
    )


def interactive_figure(expl: Explanation, sources: Sequence[int] | None = None) -> Any:
    """The Plotly figure of :func:`write_interactive` (traces carry ``meta.source``)."""
    import plotly.graph_objects as go

    _check(expl)
    chosen = _select(expl, sources)
    L, n = expl.num_layers, len(expl.tokens)
    max_abs = max((abs(p.influence_head) for p in chosen), default=0.0)
    fig = go.Figure()
    colours = source_colours(chosen)
    for p, dx in zip(chosen, _offsets(len(chosen))):
        colour = colours[p.source_index]
        width = 2.0 + 4.0 * (abs(p.influence_head) / max_abs if max_abs > 0 else 1.0)
        group, meta = str(p.source_index), {"source": p.source_index, "kind": "path"}
        label = f"{p.source_token} ({p.source_index}) {'▲' if pattern_sign(p) > 0 else '▼'} {p.influence_head:+.3g}"
        any_head = any(h is not None for h in p.heads)
        for kind, dash in (("head", "solid"), ("skip", "dash")):
            xs: list[float | None] = []
            ys: list[float | None] = []
            for layer in range(1, L + 1):
                if (p.heads[layer - 1] is None) == (kind == "skip"):
                    xs += [p.positions[layer - 1] + dx, p.positions[layer] + dx, None]
                    ys += [layer - 1, layer, None]
            fig.add_trace(go.Scatter(
                x=xs, y=ys, mode="lines", line={"color": colour, "width": width, "dash": dash},
                name=label, legendgroup=group, showlegend=(kind == "head") == any_head, hoverinfo="skip",
                meta=meta, uid=f"{kind}-{p.source_index}",
            ))
        fig.add_trace(go.Scatter(
            x=[t + dx for t in p.positions], y=list(range(L + 1)), mode="markers+text",
            marker={"color": colour, "size": 11, "line": {"color": "white", "width": 1},
                    "symbol": "triangle-up" if pattern_sign(p) > 0 else "triangle-down"},
            text=[""] + [head_name(h) if h is not None else "" for h in p.heads],
            textposition="middle right", textfont={"color": colour, "size": 11},
            hovertext=[_hover(expl, p, layer) for layer in range(L + 1)], hoverinfo="text",
            customdata=[p.source_index] * (L + 1), name=label, legendgroup=group,
            showlegend=False, meta={"source": p.source_index, "kind": "nodes"},
            uid=f"nodes-{p.source_index}",
        ))
    by_source = {p.source_index: p for p in chosen}
    fig.add_trace(go.Scatter(
        x=list(range(n)), y=[-0.7] * n, mode="markers+text", text=expl.tokens,
        textposition="bottom center", textfont={"size": 13},
        marker={"size": 14, "symbol": "square",
                "color": [colours[i] if i in by_source else "#DDDDDD" for i in range(n)]},
        customdata=[i if i in by_source else -1 for i in range(n)],
        hovertext=[
            f"{html.escape(tok)} ({i}): " + (html.escape(by_source[i].text(expl.tokens)) if i in by_source
                                             else "not a source token")
            for i, tok in enumerate(expl.tokens)
        ],
        hoverinfo="text", showlegend=False, meta={"kind": "tokens"}, uid="tokens",
    ))
    fig.add_trace(go.Scatter(
        x=[expl.target_index, expl.target_index], y=[L, L + 1], mode="lines+markers+text",
        line={"color": "#222222", "width": 2}, marker={"symbol": "square", "size": [0, 13],
                                                      "color": "#222222"},
        text=["", "y"], textposition="middle right", hoverinfo="text",
        hovertext=["", f"output y: QoI {html.escape(expl.qoi_name)} = {expl.qoi_value:+.4f}"],
        showlegend=False, meta={"kind": "output"}, uid="output",
    ))
    fig.update_layout(
        title={"text": f"“{html.escape(expl.text)}”<br><sup>{html.escape(qoi_title(expl))} · hover or click "
                       f"a token to highlight its path; click the legend to toggle sources</sup>",
               "x": 0.01},
        xaxis={"tickmode": "array", "tickvals": list(range(n)), "ticktext": expl.tokens,
               "side": "top", "range": [-0.7, n - 0.3], "showgrid": True, "zeroline": False},
        yaxis={"tickmode": "array", "tickvals": list(range(-1, L + 2)),
               "ticktext": ["token"] + ["h0"] + [f"L{l}" for l in range(1, L + 1)] + ["y"],
               "range": [-1.3, L + 1.5], "zeroline": False, "title": "layer"},
        legend={"title": {"text": "source (position), sign, I(π<sup>a</sup>)"}, "itemclick": "toggle"},
        hovermode="closest", plot_bgcolor="white", autosize=True,  # the window's width
        height=max(110 + 62 * (L + 3), 200 + 22 * len(chosen)),  # the legend fits without scrolling
        margin={"t": 130},
    )
    fig.update_xaxes(gridcolor="#EEEEEE")
    fig.update_yaxes(gridcolor="#F4F4F4")
    return fig


def plotly_script() -> str:
    """``<script>`` with the vendored plotly.js bundle (:data:`PLOTLY_BUNDLE`), for offline pages."""
    from importlib.resources import files

    code = files("influence_patterns.viz").joinpath("static", PLOTLY_BUNDLE).read_text(encoding="utf-8")
    return f'<script type="text/javascript">{code}</script>'


def interactive_div(
    expl: Explanation, sources: Sequence[int] | None = None, include_plotlyjs: bool = True
) -> str:
    """The view as an HTML fragment (a ``<div>`` and its script) to place in a larger page,
    such as the report's (``viz.html`` sections take it under ``"html"``). Give
    ``include_plotlyjs=False`` to all but the first view of a page."""
    fig = interactive_figure(expl, sources)
    div = fig.to_html(include_plotlyjs=False, full_html=False, post_script=_SCRIPT.replace("%(faded)s", str(FADED)),
                      config=_CONFIG, default_width="100%", default_height=f"{fig.layout.height}px")
    return (plotly_script() + div) if include_plotlyjs else div


def interactive_html(expl: Explanation, sources: Sequence[int] | None = None) -> str:
    """The whole page as text: plotly.js embedded, no network access needed, as wide as the window."""
    title = f"<title>Influence patterns: {html.escape(expl.text)}</title>"
    return (f'<!DOCTYPE html>\n<html>\n<head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">{title}'
            f"<style>body {{ margin: 0 12px; font-family: sans-serif; }}</style>{plotly_script()}</head>\n"
            f"<body>{interactive_div(expl, sources, include_plotlyjs=False)}</body>\n</html>\n")


def write_interactive(expl: Explanation, path: str | Path, sources: Sequence[int] | None = None) -> Path:
    """Write the interactive page of ``expl`` to ``path`` (one self-contained .html file)."""
    path = Path(path)
    write_text(path, interactive_html(expl, sources))  # atomic; creates missing parents
    return path


__all__ = ["interactive_div", "interactive_figure", "interactive_html", "write_interactive"]
