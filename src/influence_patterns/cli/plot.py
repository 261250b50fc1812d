"""``influence-patterns plot``: draw one explanation or a run's aggregate patterns.

matplotlib is imported inside the command, so ``influence-patterns --help`` stays fast.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from influence_patterns.cli.app import app, user_errors
from influence_patterns.errors import DataError, InputError

FORMATS = (".svg", ".png", ".pdf")


def _parse_tokens(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        tokens = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise InputError(
            f"--tokens takes comma-separated token indices such as 2,5; got {text!r}"
        ) from None
    if not tokens:
        raise InputError("--tokens is empty; give token indices such as 2,5")
    return tokens


@app.command("plot")
@user_errors
def plot(
    source: Path = typer.Argument(
        ..., help="An explanation (RESULT.json) or a run directory holding results.jsonl."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Image to write: .svg, .png or .pdf."),
    tokens: Optional[str] = typer.Option(
        None, "--tokens", help="Only these source tokens (indices, comma-separated), e.g. 2,5."
    ),
    role: str = typer.Option("subject", "--role", help="Run directory: the role to aggregate."),
    task: Optional[str] = typer.Option(
        None, "--task", help="Run directory: the task, when the run holds several."
    ),
    dpi: int = typer.Option(200, "--dpi", min=30, max=1200, help="Resolution of a .png."),
) -> None:
    """Draw influence patterns: one explanation (RESULT.json) or a run (RUN_DIR, by role)."""
    if out.suffix.lower() not in FORMATS:
        raise InputError(
            f"cannot write {out.name!r}: the output must end in .svg, .png or .pdf"
        )
    if not source.exists():
        raise InputError(f"no such file or directory: {source}")
    token_list = _parse_tokens(tokens)

    if source.is_dir() or source.suffix == ".jsonl":
        if token_list is not None:
            raise InputError("--tokens applies to one explanation (RESULT.json), not to a run")
        from influence_patterns.viz.aggregate import plot_run

        fig = plot_run(source, role=role, task=task)
    else:
        from influence_patterns.result import Explanation
        from influence_patterns.viz.patterns import plot_explanation

        try:
            expl = Explanation.load(source)
        except json.JSONDecodeError as exc:
            raise DataError(f"{source}: not valid JSON ({exc.msg}, line {exc.lineno})") from None
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"{source}: not an explanation file ({exc!r})") from None
        fig = plot_explanation(expl, tokens=token_list)

    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=dpi, bbox_inches="tight", facecolor="white")
    typer.echo(f"Wrote {out}")
