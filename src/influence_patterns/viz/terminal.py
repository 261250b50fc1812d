"""Terminal output (rich) that fits the terminal: explanations, tasks, models, accuracy.

Every table is drawn at the console's width (``$COLUMNS``, else the terminal's, else
80). A table that fits is printed whole. When it is wider than the terminal but the
long columns (a description, a pattern) still get :data:`LONG_MIN` characters each
beside the short ones, it stays a table with the long cells broken at word or arrow
boundaries inside their columns (a wide terminal is used, not left empty). Otherwise
(80 columns, the usual default) the *narrow layout* prints one block per row: the
short cells on one line, each long cell on its own indented line(s) below. Headers
are never cut; short headers come with a legend.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rich import box
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from influence_patterns.errors import printable

from influence_patterns.result import Explanation

ARROW = " → "
#: The fewest characters a long column is given in a table; narrower, the narrow layout.
LONG_MIN = 40

#: What the columns of the explanation table mean (printed under it).
EXPLANATION_LEGEND = (
    "g: the token's integrated gradient (its whole influence on the QoI); "
    "I(π^e): influence through its token-level pattern; I(π^a): through its head-level "
    "pattern. Pattern: per layer (L1 = first layer) the skip connection or head Hj "
    "(heads numbered from 0); @X is where a head moves the token."
)


@dataclass(frozen=True)
class Column:
    """A table column. ``long`` columns (free text) get their own line(s) when narrow."""

    header: str
    justify: str = "left"
    long: bool = False
    style: str | None = None


Cell = Any  # str or rich Text


def _text(cell: Cell) -> Text:
    """A cell as rich Text, control characters (ANSI escapes, bells) shown escaped: a text
    or token from the user or a data file never reaches the terminal raw."""
    if isinstance(cell, Text):
        return cell.copy() if _clean(cell.plain) else Text(printable(cell.plain), style=cell.style)
    return Text(printable(str(cell)))


def _clean(text: str) -> bool:
    return all(ch.isprintable() or ch == " " for ch in text)


def _safe_title(title: str) -> str:
    """The title's lines with control characters escaped (its own line breaks kept)."""
    return "\n".join(printable(line) for line in title.split("\n"))


def _wrap(text: str, width: int) -> list[str]:
    """Break at ``→`` when the text is a pattern, else at spaces; never mid-word."""
    width = max(width, 20)
    if ARROW not in text:
        return textwrap.wrap(text, width=width, break_long_words=False, break_on_hyphens=False) or [""]
    lines: list[str] = []
    line = ""
    for k, part in enumerate(text.split(ARROW)):
        piece = part if k == 0 else "→ " + part
        if line and len(line) + 1 + len(piece) > width:
            lines.append(line)
            line = piece
        else:
            line = piece if not line else f"{line} {piece}"
    lines.append(line)
    return lines


def _width(console: Console, renderable: Any) -> int:
    """The natural (unwrapped) width of ``renderable``."""
    wide = console.options.update(width=10_000, max_width=10_000)
    return Measurement.get(console, wide, renderable).maximum


def fits(console: Console, renderable: Any) -> bool:
    """Whether ``renderable`` fits the console's width at its natural (unwrapped) size."""
    return _width(console, renderable) <= console.width


def print_table(
    columns: Sequence[Column],
    rows: Sequence[Sequence[Cell]],
    title: str | None = None,
    console: Console | None = None,
    legend: str | None = None,
) -> None:
    """Print ``rows`` as a table when it fits the console, else in the narrow layout."""
    console = console or Console()
    title = _safe_title(title) if title else title
    table = _rich_table(columns, rows, title)
    if not fits(console, table):
        natural = [max([len(c.header)] + [len(_text(r[k]).plain) for r in rows]) for k, c in enumerate(columns)]
        rules = _width(console, table) - sum(natural)  # padding and separators
        widths = _long_widths(columns, natural, console.width - rules)
        table = _rich_table(columns, rows, title, widths) if widths else None
    if table is not None and fits(console, table):
        console.print(table)
    else:
        _print_narrow(columns, rows, title, console)
    if legend:
        for line in _wrap(legend, console.width):
            console.print(Text(line, style="dim"))


def _rich_table(columns: Sequence[Column], rows: Sequence[Sequence[Cell]], title: str | None,
                widths: dict[int, int] | None = None) -> Table:
    """The table; with ``widths`` (column index → characters) those columns' cells are
    broken at word or arrow boundaries to that width."""
    table = Table(title=Text(title) if title else None, title_justify="left", box=box.SIMPLE_HEAD,
                  pad_edge=False, show_edge=False)
    for col in columns:
        table.add_column(col.header, justify=col.justify, style=col.style, no_wrap=True)  # type: ignore[arg-type]
    for row in rows:
        cells = [_text(c) for c in row]
        for k, width in (widths or {}).items():
            cells[k] = Text("\n".join(_wrap(cells[k].plain, width)), style=cells[k].style)
        table.add_row(*cells)
    return table


def _long_widths(columns: Sequence[Column], natural: Sequence[int], width: int) -> dict[int, int] | None:
    """Widths of the long columns that fill ``width`` characters of cells beside the short
    columns at their ``natural`` widths (a long column up to its longest cell, the rest
    shared); ``None`` when a long column would get fewer than :data:`LONG_MIN`."""
    long = [k for k, c in enumerate(columns) if c.long]
    left = width - sum(natural[k] for k, c in enumerate(columns) if not c.long)
    if not long or left < LONG_MIN * len(long):
        return None
    widths: dict[int, int] = {}
    for k in sorted(long, key=lambda k: natural[k]):  # the shortest first: what it leaves goes to the rest
        widths[k] = min(natural[k], left // (len(long) - len(widths)))
        left -= widths[k]
    return widths


def _print_narrow(
    columns: Sequence[Column], rows: Sequence[Sequence[Cell]], title: str | None, console: Console
) -> None:
    if title:
        for line in title.splitlines():
            for piece in _wrap(line, console.width):
                console.print(Text(piece, style="italic"))
    console.print(_NarrowBlock(columns, rows, console.width))


class _NarrowBlock:
    """Rendered by hand: the short cells aligned in a row, long cells indented below."""

    def __init__(self, columns: Sequence[Column], rows: Sequence[Sequence[Cell]], width: int) -> None:
        self.short = [k for k, c in enumerate(columns) if not c.long]
        self.long = [k for k, c in enumerate(columns) if c.long]
        self.columns, self.rows, self.width = columns, rows, width

    def __rich_console__(self, console: Console, options: Any) -> Any:
        widths = []
        for k in self.short:
            cells = [self.columns[k].header] + [_text(r[k]).plain for r in self.rows]
            widths.append(max(len(c) for c in cells))
        header = Text()
        for i, k in enumerate(self.short):
            h = self.columns[k].header
            header.append(("  " if i else "") + (h.rjust(widths[i]) if self.columns[k].justify == "right"
                                                 else h.ljust(widths[i])), style="bold")
        yield header
        if self.long:
            yield Text("    ↳ " + " / ".join(self.columns[k].header for k in self.long), style="dim")
        yield Text("─" * min(self.width, max(len(header.plain), 1)), style="dim")
        for row in self.rows:
            line = Text()
            for i, k in enumerate(self.short):
                cell = _text(row[k])
                pad = widths[i] - len(cell.plain)
                if i:
                    line.append("  ")
                if self.columns[k].justify == "right":
                    line.append(" " * pad)
                    line.append_text(cell)
                else:
                    line.append_text(cell)
                    line.append(" " * pad)
            line.rstrip()
            yield line
            for j, k in enumerate(self.long):
                value = _text(row[k]).plain
                if not value:
                    continue
                for piece in _wrap(value, self.width - 4):
                    yield Text("    " + piece, style="dim" if j else "")


def _fixed(v: float | None) -> str:
    return "–" if v is None else f"{v:.3f}"


def _num(v: float) -> Text:
    colour = "green" if v > 0 else "red" if v < 0 else "white"
    return Text(f"{v:+.4f}", style=colour)


def explanation_title(expl: Explanation) -> str:
    """The sentence, the QoI and its value, the verdict."""
    target = expl.tokens[expl.target_index]
    if expl.targets:
        where = "of the next token after" if expl.extra.get("causal") else "at"
        about = (f"QoI = logit[{expl.targets[0]}] - logit[{expl.targets[1]}] {where} {target} "
                 f"(position {expl.target_index})")
    else:
        about = f"QoI = logit[{expl.label}] - logit[other] of the classifier"
    verdict = "correct" if expl.correct else "wrong"
    return (f"{expl.text}\n{about} = {expl.qoi_value:+.4f} ({verdict}); "
            f"at the baseline {expl.qoi_baseline_value:+.4f}")


EXPLANATION_COLUMNS = (
    Column("token", style="bold"),
    Column("g", justify="right"),
    Column("I(π^e)", justify="right"),
    Column("I(π^a)", justify="right"),
    Column("pattern", long=True),
)


def explanation_rows(expl: Explanation) -> list[list[Cell]]:
    """One row per source token: ``token@index``, g, I(π^e), I(π^a), the pattern."""
    return [
        [f"{p.source_token}@{p.source_index}", _num(p.g), _num(p.influence_token),
         _num(p.influence_head), p.text(expl.tokens)]
        for p in expl.patterns
    ]


def print_explanation(expl: Explanation, console: Console | None = None) -> None:
    """The per-token table, a legend of its columns and a line on completeness."""
    console = console or Console()
    print_table(EXPLANATION_COLUMNS, explanation_rows(expl), explanation_title(expl), console,
                legend=EXPLANATION_LEGEND)
    total = sum(p.g for p in expl.patterns)
    summary = (
        f"Σ g over source tokens {total:+.4f}; q(x) − q(b) = "
        f"{expl.qoi_value - expl.qoi_baseline_value:+.4f} (special tokens and the target make up "
        f"the rest). {expl.num_layers} layers × {expl.num_heads} heads, {expl.quadrature} with "
        f"{expl.steps} steps, baseline {expl.baseline}"
        + (f" ({expl.extra['baseline_fill']})." if expl.extra.get("baseline_fill") else ".")
    )
    for line in _wrap(summary, console.width):
        console.print(Text(line))


WORD_COLUMNS = (
    Column("word", style="bold"),
    Column("pieces"),
    Column("g", justify="right"),
    Column("I(π^e)", justify="right"),
    Column("I(π^a)", justify="right"),
    Column("pattern (first piece)", long=True),
)
WORD_LEGEND = ("One row per word: g, I(π^e) and I(π^a) summed over its pieces (listed with their "
               "positions); the pattern is its first piece's.")


def print_words(expl: Explanation, console: Console | None = None) -> None:
    """The per-word table (:meth:`Explanation.by_word`)."""
    console = console or Console()
    rows = [[w["word"], " ".join(f"{t}@{i}" for t, i in zip(w["pieces"], w["source_indices"])),
             _num(w["g"]), _num(w["influence_token"]), _num(w["influence_head"]), w["pattern"]]
            for w in expl.by_word()]
    print_table(WORD_COLUMNS, rows, explanation_title(expl), console, legend=WORD_LEGEND)


TASK_COLUMNS = (
    Column("task", style="bold"),
    Column("kind"),
    Column("description", long=True),
    Column("example", long=True),
)


def print_tasks(tasks: Sequence[Any], console: Console | None = None) -> None:
    """Every task (``TaskSpec``-like: name, kind, description, example, example_targets)."""
    rows = []
    for spec in tasks:
        example = spec.example
        if spec.example_targets is not None:
            example += f"  ({spec.example_targets[0]} / {spec.example_targets[1]})"
        rows.append([spec.name, spec.kind, spec.description, example])
    print_table(TASK_COLUMNS, rows, "Tasks", console)


MODEL_COLUMNS = (
    Column("name", style="bold"),
    Column("built"),
    Column("measured accuracy", long=True),
    Column("path", long=True),
)


def print_models(rows: Sequence[Sequence[str]], title: str, console: Console | None = None) -> None:
    """The default models: rows of (name, built, measured accuracy, path)."""
    print_table(MODEL_COLUMNS, rows, title, console)


def print_accuracy(rows: Sequence[tuple[str, Any, bool]], mean: float | None, title: str,
                   console: Console | None = None, first: str = "task") -> None:
    """Accuracy rows ``(label, result, dim)`` (result with n, skipped, accuracy, mean_qoi;
    ``None`` figures print as "–") and the mean over tasks when given."""
    columns = (Column(first), Column("n", justify="right"), Column("skipped", justify="right"),
               Column("accuracy", justify="right"), Column("mean QoI", justify="right"))
    table: list[list[Cell]] = []
    for label, r, dim in rows:
        cells: list[Cell] = [label, str(r.n), str(getattr(r, "skipped", 0)), _fixed(r.accuracy), _fixed(r.mean_qoi)]
        table.append([Text(c, style="dim") if dim and isinstance(c, str) else c for c in cells])
    if mean is not None:
        table.append([Text("mean over tasks", style="bold"), str(sum(r.n for _, r, dim in rows if not dim)), "",
                      _fixed(mean), ""])
    print_table(columns, table, title, console,
                legend="accuracy: share of instances with QoI > 0; QoI: logit of the right "
                       "answer minus the wrong one (a margin in logits).")
