"""Notebook views: an explanation as HTML (its table and its picture as inline SVG),
figures that display themselves, and short summaries of runs and analyses.

``Explanation._repr_html_`` calls :func:`explanation_html`, so a notebook cell that
ends with an explanation shows both; ``Run._repr_html_`` calls :func:`run_html` and an
analysis result :func:`analysis_html` (a table: task, n, accuracy, skip share, top
pattern). Figures from ``Explanation.plot()`` get a PNG view (:func:`displayable`), so
they show without ``%matplotlib inline``.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any

from influence_patterns.result import Explanation
from influence_patterns.viz.terminal import EXPLANATION_LEGEND, explanation_title

#: Resolution of the pictures a notebook shows (PNG).
NOTEBOOK_DPI = 80

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
    head = "".join(f"<th>{h}</th>" for h in ("token", "g", "I(π<sup>e</sup>)", "I(π<sup>a</sup>)", "pattern"))
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


def explanation_png(expl: Explanation, dpi: int = NOTEBOOK_DPI) -> str:
    """The picture of :func:`~influence_patterns.viz.patterns.plot_explanation` as an
    ``<img>`` holding a PNG (smaller than SVG, and shown by every notebook viewer)."""
    from influence_patterns.viz.patterns import plot_explanation

    data = base64.b64encode(_png(plot_explanation(expl), dpi)).decode("ascii")
    alt = html.escape(f"influence patterns of: {expl.text}")
    return f'<img alt="{alt}" src="data:image/png;base64,{data}"/>'


def explanation_html(expl: Explanation) -> str:
    """Table plus the picture (a PNG), for ``_repr_html_``."""
    return f'<div class="ip-expl">{_STYLE}{explanation_table_html(expl)}{explanation_png(expl)}</div>'


def _png(fig: Any, dpi: int) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight", facecolor="white")
    return buffer.getvalue()


def displayable(fig: Any, dpi: int = NOTEBOOK_DPI) -> Any:
    """``fig`` (a matplotlib ``Figure`` made without pyplot) with a PNG view for notebooks,
    so that a cell ending with it shows the picture, with or without ``%matplotlib inline``."""
    fig._repr_png_ = lambda: _png(fig, dpi)
    return fig


def _summary_table(rows: list[dict[str, Any]], caption: str) -> str:
    head = "".join(f"<th>{h}</th>" for h in ("task", "n", "accuracy", "skip share", "top pattern (share)"))
    body = "".join(
        f"<tr><td>{html.escape(str(r['task']))}</td><td class='num'>{r['n']}</td>"
        f"<td class='num'>{_fmt(r['accuracy'])}</td><td class='num'>{_fmt(r['skip_share'])}</td>"
        f"<td>{html.escape(str(r['top_pattern'] or '–'))}"
        + (f" ({_fmt(r['top_share'], 2)})" if r.get("top_share") is not None else "") + "</td></tr>"
        for r in rows
    )
    return (f'<div class="ip-expl">{_STYLE}<table><caption style="text-align:left">{html.escape(caption)}'
            f"</caption><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>")


def _fmt(v: Any, digits: int = 3) -> str:
    return "–" if v is None else f"{v:.{digits}f}"


def run_summary(run: Any) -> list[dict[str, Any]]:
    """Per task of a :class:`~influence_patterns.runs.Run`: n, accuracy, skip share of the
    pattern steps, and the most common head-level pattern of the role ``subject`` (when
    the run has it, else over every source) with its share."""
    from collections import Counter

    from influence_patterns.analysis.consistency import key_text, pattern_key

    out = []
    for task in dict.fromkeys(r.task or "" for r in run.records):
        records = [r for r in run.records if (r.task or "") == task]
        steps = [h for r in records for p in r.patterns for h in p.heads]
        role = "subject" if any("subject" in r.roles for r in records) else None
        chosen = [(r, r.role_pattern(role)) for r in records] if role else [(r, p) for r in records for p in r.patterns]
        keys = Counter(pattern_key(r, p) for r, p in chosen if p is not None)
        top = keys.most_common(1)
        out.append({
            "task": (task or run.setting("task") or "–") + (f" ({role})" if role else ""),
            "n": len(records),
            "accuracy": sum(r.is_correct for r in records) / len(records),
            "skip_share": sum(h is None for h in steps) / len(steps) if steps else None,
            "top_pattern": key_text(top[0][0]) if top else None,
            "top_share": top[0][1] / sum(keys.values()) if top else None,
        })
    return out


def run_html(run: Any) -> str:
    """A run directory in a notebook: where it is, its model, one summary row per task."""
    model = run.setting("model") or "?"
    return _summary_table(run_summary(run), f"{run.path} · {model} · {len(run)} instances")


def analysis_html(result: dict[str, Any]) -> str:
    """An analysis (``analyze_runs``) in a notebook: one row per run and task."""
    role = result.get("role")
    rows = []
    for a in result.get("runs", []):
        c = (a.get("consistency") or {}).get(role) or {}
        rows.append({"task": f"{a.get('task')} ({Path(str(a.get('run') or '')).name})", "n": a.get("instances"),
                     "accuracy": a.get("accuracy"), "skip_share": a.get("skip_share"),
                     "top_pattern": c.get("top_pattern"), "top_share": c.get("top_frequency")})
    return _summary_table(rows, f"analysis of {len(rows)} run(s); top pattern of the role {role}")
