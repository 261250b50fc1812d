"""``influence-patterns explain``: the influence patterns of one sentence."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from influence_patterns.cli.app import app, user_errors

DEFAULT_MODEL = "default-mlm"


@app.command("explain")
@user_errors
def explain_command(
    text: str = typer.Argument(..., help="The sentence; for a masked LM it holds one [MASK]."),
    targets: Optional[str] = typer.Option(None, "--targets", "-t", help="GOOD,BAD words for the [MASK] (masked LM)."),
    label: Optional[int] = typer.Option(None, "--label", help="Gold class for a classifier (default: its prediction)."),
    model: str = typer.Option(DEFAULT_MODEL, "--model", "-m", help="default-mlm, default-sst2, a checkpoint dir or a hub name."),
    steps: Optional[int] = typer.Option(
        None, "--steps", help="Gauss–Legendre points (default 32), or Riemann steps m (m+1 points; default 50)."
    ),
    method: str = typer.Option("fast", "--method", help="fast | fast-full (the earlier full-width scorer) | reference"),
    baseline: str = typer.Option("mask", "--baseline", help="mask | zero | pad"),
    keep_special: bool = typer.Option(False, "--keep-special", help="Keep [CLS]/[SEP] real in the baseline."),
    quadrature: Optional[str] = typer.Option(
        None, "--quadrature", help="gauss-legendre (default) | riemann (the paper's rule)"
    ),
    max_batch: Optional[int] = typer.Option(None, "--max-batch", help="Rows per backward pass (α points; fast-full: source × α); default: sized to free memory."),
    device: str = typer.Option("auto", "--device", help="auto (cuda when present) | cpu | cuda | mps"),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the explanation as JSON to this file."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Draw the patterns to this .svg/.png/.pdf file."),
    sources: Optional[str] = typer.Option(
        None, "--sources", "-s",
        help="Explain only these word-piece positions, comma-separated ([CLS] is 0; e.g. 2 for 'authors'). "
             "Cost is linear in the number of sources.",
    ),
) -> None:
    """Find each source token's influence pattern (GPR) and print them as a table."""
    from influence_patterns.explainer import Explainer

    explainer = Explainer.from_pretrained(
        model, device=device, steps=steps, method=method, baseline=baseline,
        keep_special=keep_special, quadrature=quadrature, max_rows=max_batch,
    )
    if explainer.kind == "mlm" and targets is None:
        from influence_patterns.errors import InputError

        raise InputError("a masked-LM explanation needs --targets GOOD,BAD (e.g. --targets is,are)")
    chosen = None
    if sources is not None:
        from influence_patterns.errors import InputError

        try:
            chosen = [int(p) for p in sources.split(",") if p.strip()]
        except ValueError:
            raise InputError(f"--sources takes word-piece positions like 2,5; got {sources!r}") from None
    result = explainer.explain(text, targets=targets, label=label, sources=chosen)
    result.show()
    if json_out is not None:
        result.save(json_out)
        typer.echo(f"wrote {json_out}")
    if plot is not None:
        from influence_patterns.viz import plot_explanation

        plot_explanation(result).savefig(plot, bbox_inches="tight")
        typer.echo(f"wrote {plot}")
