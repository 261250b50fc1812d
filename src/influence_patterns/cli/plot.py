"""``influence-patterns plot``: draw one explanation or a run's aggregate patterns.

matplotlib (and plotly, for ``.html``) is imported inside the command, so
``influence-patterns --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from influence_patterns.cli.app import app, user_errors
from influence_patterns.errors import InputError
from influence_patterns.fileio import atomic_path, check_writable
from influence_patterns.viz import DEFAULT_DPI

FORMATS = (".svg", ".png", ".pdf", ".html")
DPI_HELP = f"Resolution of a .png in dots per inch (default {DEFAULT_DPI}); .svg and .pdf are vector."


def check_image_path(out: Path, flag: str) -> None:
    """Fail early (before any work) on an output name we cannot write."""
    if out.suffix.lower() not in FORMATS:
        raise InputError(f"cannot write {out.name!r} ({flag}): the file must end in .svg, .png, .pdf or .html")


def parse_sources(text: str | None, flag: str = "--sources") -> list[int] | None:
    """``"2,5"`` → ``[2, 5]``: word-piece positions ([CLS] is 0)."""
    if text is None:
        return None
    try:
        positions = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise InputError(f"{flag} takes word-piece positions, comma-separated, such as 2,5; got {text!r}") from None
    if not positions:
        raise InputError(f"no sources given: {flag} is empty; give word-piece positions such as 2,5")
    return positions


def write_figure(fig: Any, out: Path, dpi: int = DEFAULT_DPI) -> None:
    """Save a matplotlib figure atomically (``fileio.atomic_path``): a full disk or a
    refused write leaves the earlier file whole and no partial one, with one line."""
    import matplotlib.pyplot as plt

    try:
        with atomic_path(out) as tmp:
            fig.savefig(tmp, format=out.suffix[1:].lower(), dpi=dpi, bbox_inches="tight", facecolor="white")
    finally:
        plt.close(fig)


def save_figure(expl: Any, out: Path, dpi: int = DEFAULT_DPI, sources: list[int] | None = None) -> None:
    """Write one explanation's picture: a static figure, or the interactive page for .html."""
    if out.suffix.lower() == ".html":
        from influence_patterns.viz.interactive import write_interactive

        write_interactive(expl, out, sources=sources)
        return
    from influence_patterns.viz.patterns import plot_explanation

    write_figure(plot_explanation(expl, sources=sources), out, dpi)


@app.command("plot")
@user_errors
def plot(
    source: Path = typer.Argument(
        ..., help="An explanation (RESULT.json from explain --json) or a run directory holding results.jsonl."
    ),
    out: Path = typer.Option(
        ..., "--out", "-o",
        help="File to write: .svg, .png or .pdf; or .html for an interactive page (one explanation).",
    ),
    sources: Optional[str] = typer.Option(
        None, "--sources", "-s",
        help="Only these source tokens, by word-piece position, comma-separated ([CLS] is 0), e.g. 2,5.",
    ),
    tokens: Optional[str] = typer.Option(None, "--tokens", hidden=True, help="Old name of --sources."),
    role: str = typer.Option(
        "subject", "--role",
        help="Run directory: the role to aggregate, i.e. which word of each sentence is the source "
             "(subject, attractor, ...; see the task).",
    ),
    task: Optional[str] = typer.Option(
        None, "--task", help="Run directory: the task to draw, when the run holds several."
    ),
    dpi: int = typer.Option(DEFAULT_DPI, "--dpi", min=30, max=1200, help=DPI_HELP),
) -> None:
    """Draw influence patterns: one explanation (RESULT.json) or a whole run (RUN_DIR), by role.

    An .html output is a self-contained interactive page: hover or click a token to
    highlight its path, toggle sources in the legend.
    """
    check_image_path(out, "--out")
    if not source.exists():
        raise InputError(f"no such file or directory: {source}")
    check_writable(out, "--out")
    if sources is not None and tokens is not None:
        raise InputError("give --sources only (--tokens is its old name)")
    flag = "--tokens" if tokens is not None else "--sources"
    chosen = parse_sources(tokens if tokens is not None else sources, flag)

    if source.is_dir() or source.suffix == ".jsonl":
        if chosen is not None:
            raise InputError(f"{flag} applies to one explanation (RESULT.json), not to a run")
        if out.suffix.lower() == ".html":
            raise InputError("the interactive .html view draws one explanation (RESULT.json), not a run")
        from influence_patterns.viz.aggregate import plot_run

        write_figure(plot_run(source, role=role, task=task), out, dpi)
    else:
        from influence_patterns.result import Explanation

        expl = Explanation.load(source)  # one DataError line for anything that is not an explanation
        save_figure(expl, out, dpi=dpi, sources=chosen)
    typer.echo(f"Wrote {out}")
