"""One self-contained HTML page from sections of text, tables and figures.

No network, no external CSS or JavaScript: figures are embedded as base64 PNG (or
inline SVG), the style sheet is inline. The report command fills the sections; this
module only lays them out.

A section is a dict::

    {"title": str, "text": str | None,
     "markdown": str (optional: prose in inline Markdown, see :func:`inline_html`),
     "tables": [{"columns": [...], "rows": [[...], ...], "caption": str (optional),
                 "format": callable (optional: a cell's text, e.g. the Markdown report's)}],
     "figures": [matplotlib Figure, ...],
     "html": [str, ...] (optional: trusted fragments, e.g. ``viz.interactive.interactive_div``)}

``text`` is shown as it is (every character escaped); ``markdown`` renders code spans,
superscripts and lists, with everything else escaped too, so data set in it (escaped
for Markdown, as ``viz.report_html.md_text`` does) stays inert text.
"""

from __future__ import annotations

import base64
import html
import io
import math
import numbers
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from influence_patterns.errors import InputError
from influence_patterns.fileio import write_text
from influence_patterns.viz import DEFAULT_DPI

_CSS = """
:root { color-scheme: light; }
body { margin: 0; background: #fafafa; color: #222;
  font: 15px/1.5 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1100px; margin: 0 auto; padding: 24px 28px 48px; background: #fff;
  min-height: 100vh; box-sizing: border-box; }
h1 { font-size: 1.6em; margin: 0.2em 0 0.6em; }
h2 { font-size: 1.25em; margin: 1.8em 0 0.5em; padding-bottom: 0.2em;
  border-bottom: 1px solid #ddd; }
nav ol { margin: 0 0 1em; padding-left: 1.4em; }
nav a, h2 a { color: #0b5394; text-decoration: none; }
p { margin: 0.5em 0; max-width: 75ch; }
.table-wrap { overflow-x: auto; margin: 0.8em 0 1.2em; }
table { border-collapse: collapse; font-size: 0.92em; }
caption { caption-side: top; text-align: left; color: #555; padding-bottom: 0.3em; }
th, td { padding: 4px 10px; border-bottom: 1px solid #e4e4e4; text-align: left;
  vertical-align: top; }
th { border-bottom: 2px solid #bbb; background: #f5f5f5; font-weight: 600; }
td.ci { white-space: nowrap; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tbody tr:nth-child(even) { background: #fbfbfb; }
figure { margin: 1em 0 1.6em; }
figure img, figure svg { max-width: 100%; height: auto; display: block; }
figcaption { color: #555; font-size: 0.9em; margin-top: 0.3em; }
code { font-family: ui-monospace, "SF Mono", Menlo, Consolas, monospace; font-size: 0.9em;
  background: #f2f2f2; padding: 0 0.25em; border-radius: 3px; }
ul { margin: 0.5em 0; padding-left: 1.4em; max-width: 75ch; }
footer { margin-top: 3em; color: #888; font-size: 0.85em; }
"""


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Number) and not isinstance(value, bool)


def _format(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, numbers.Integral):
        return f"{int(value):,}".replace(",", "\u2009")
    if isinstance(value, numbers.Real):
        x = float(value)
        if math.isnan(x):
            return "–"
        if x != 0 and (abs(x) >= 1e5 or abs(x) < 1e-3):
            return f"{x:.3e}"
        return f"{x:.4g}" if abs(x) >= 1 else f"{x:.3f}"
    return str(value)


def _slug(text: str, used: set[str]) -> str:
    base = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "section"
    slug, k = base, 2
    while slug in used:
        slug, k = f"{base}-{k}", k + 1
    used.add(slug)
    return slug


def _text(text: str | None) -> str:
    if not text:
        return ""
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]
    return "\n".join(f"<p>{html.escape(p).replace(chr(10), '<br>')}</p>" for p in paragraphs)


# Inline Markdown, the subset the report's prose uses: a backslash escape of ASCII punctuation,
# an entity reference (kept: it cannot open a tag), a `code span`, a superscript (π^a).
_INLINE = re.compile(
    r"\\(?P<escaped>[!-/:-@\[-`{-~])"
    r"|(?P<entity>&(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});)"
    r"|(?P<ticks>`+)(?P<code>.+?)(?P=ticks)(?!`)"
    r"|(?<=\S)\^(?P<sup>[A-Za-z0-9]+)",
    re.S,
)


def inline_html(text: str) -> str:
    """HTML of one line of inline Markdown: a code span (backticks) becomes ``<code>``,
    ``π^a`` becomes ``π<sup>a</sup>``, backslash-escaped punctuation and entity references
    (``&lt;``) show as the character; every other character is escaped, so no tag or
    attribute can come from the text."""
    out: list[str] = []
    at = 0
    for m in _INLINE.finditer(text):
        out.append(html.escape(text[at:m.start()]))
        if m["escaped"] is not None:
            out.append(html.escape(m["escaped"]))
        elif m["entity"] is not None:
            out.append(m["entity"])
        elif m["code"] is not None:
            out.append(f"<code>{html.escape(m['code'])}</code>")
        else:
            out.append(f"<sup>{html.escape(m['sup'])}</sup>")
        at = m.end()
    out.append(html.escape(text[at:]))
    return "".join(out)


def _markdown(text: str | None) -> str:
    """Paragraphs (split at blank lines) of inline Markdown; a paragraph of ``- `` lines is a list."""
    if not text:
        return ""
    out = []
    for p in (p.strip() for p in re.split(r"\n\s*\n", text)):
        lines = p.splitlines()
        if not p:
            continue
        if all(line.startswith("- ") for line in lines):
            out.append("<ul>" + "".join(f"<li>{inline_html(line[2:])}</li>" for line in lines) + "</ul>")
        else:
            out.append(f"<p>{'<br>'.join(inline_html(line) for line in lines)}</p>")
    return "\n".join(out)


#: a value with its CI, ``0.99 [0.98, 1.00]``: kept on one line
_CI = re.compile(r"^[-−]?[\d.]+ \[[-−]?[\d.]+, [-−]?[\d.]+\]$")


def _table(table: dict[str, Any]) -> str:
    columns = list(table.get("columns") or [])
    rows = [list(r) for r in table.get("rows") or []]
    width = max([len(columns)] + [len(r) for r in rows]) if (columns or rows) else 0
    # A column is numeric (right-aligned, header too) when every non-empty cell is a number.
    numeric = [
        any(c < len(r) and r[c] is not None for r in rows)
        and all(_is_number(r[c]) for r in rows if c < len(r) and r[c] is not None)
        for c in range(width)
    ]
    cell = table.get("format") or _format
    out = ['<div class="table-wrap"><table>']
    if table.get("caption"):
        out.append(f"<caption>{html.escape(str(table['caption']))}</caption>")
    if columns:
        cells = "".join(
            f'<th{" class=num" if numeric[c] else ""} scope="col">{html.escape(str(name))}</th>'
            for c, name in enumerate(columns)
        )
        out.append(f"<thead><tr>{cells}</tr></thead>")
    out.append("<tbody>")
    for row in rows:
        cells = "".join(
            f'<td{" class=num" if _is_number(value) else " class=ci" if _CI.match(text) else ""}>'
            f"{html.escape(text)}</td>"
            for value, text in ((value, cell(value)) for value in row)
        )
        out.append(f"<tr>{cells}</tr>")
    out.append("</tbody></table></div>")
    return "\n".join(out)


def _figure_alt(fig: Any) -> str:
    titles = [ax.get_title(loc="left") or ax.get_title() for ax in fig.get_axes()]
    suptitle = fig.get_suptitle() if hasattr(fig, "get_suptitle") else ""
    alt = suptitle or next((t for t in titles if t), "figure")
    return " ".join(alt.split())


def _figure(fig: Any, image_format: str, dpi: int) -> str:
    buffer = io.BytesIO()
    alt = html.escape(_figure_alt(fig))
    if image_format == "svg":
        fig.savefig(buffer, format="svg", bbox_inches="tight")
        svg = buffer.getvalue().decode("utf-8")
        svg = svg[svg.index("<svg"):]  # drop the XML prolog and DOCTYPE
        return f'<figure role="img" aria-label="{alt}">{svg}</figure>'
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight", facecolor="white")
    png = buffer.getvalue()
    # Show the figure at its size in inches (96 CSS px each), sharp on high-density screens.
    width_css = round(int.from_bytes(png[16:20], "big") * 96 / dpi)
    data = base64.b64encode(png).decode("ascii")
    return (
        f'<figure><img alt="{alt}" width="{width_css}" '
        f'src="data:image/png;base64,{data}"></figure>'
    )


def render_html(
    sections: Sequence[dict[str, Any]],
    title: str,
    image_format: str = "png",
    dpi: int = DEFAULT_DPI,
) -> str:
    """The HTML text of one self-contained page: a heading, a contents list, the sections.

    Figures are embedded as base64 PNG (``image_format="png"``, at ``dpi``) or inline
    SVG (``"svg"``). Numbers in tables are right-aligned and formatted to 4 digits
    (or by the table's ``format``).
    """
    if image_format not in ("png", "svg"):
        raise InputError(f"image_format must be 'png' or 'svg', not {image_format!r}")
    used: set[str] = set()
    body: list[str] = []
    toc: list[str] = []
    for number, section in enumerate(sections, start=1):
        if not isinstance(section, dict) or "title" not in section:
            raise InputError(f"section {number} must be a dict with a 'title'")
        heading = str(section["title"])
        slug = _slug(heading, used)
        toc.append(f'<li><a href="#{slug}">{html.escape(heading)}</a></li>')
        parts = [f'<section id="{slug}">', f'<h2><a href="#{slug}">{html.escape(heading)}</a></h2>']
        parts.append(_text(section.get("text")))
        parts.append(_markdown(section.get("markdown")))
        parts += [_table(t) for t in section.get("tables") or []]
        parts += [_figure(f, image_format, dpi) for f in section.get("figures") or []]
        parts += [str(fragment) for fragment in section.get("html") or []]
        parts.append("</section>")
        body.append("\n".join(p for p in parts if p))
    nav = f'<nav><ol>{"".join(toc)}</ol></nav>' if len(toc) > 1 else ""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n"
        f"<body>\n<main>\n<h1>{html.escape(title)}</h1>\n{nav}\n"
        + "\n".join(body)
        + "\n<footer>Made by influence-patterns.</footer>\n</main>\n</body>\n</html>\n"
    )


def write_html(
    path: str | Path,
    sections: Sequence[dict[str, Any]],
    title: str,
    image_format: str = "png",
    dpi: int = DEFAULT_DPI,
) -> Path:
    """Write :func:`render_html`'s page to ``path`` (UTF-8) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, render_html(sections, title, image_format=image_format, dpi=dpi))
    return path
