"""``run``, ``analyze``, ``ablate`` and ``report``: data-set runs and the paper's analyses.

Each command calls one library function (``run_dataset``, ``analyze_runs``,
``ablate_run``, ``write_report``) and prints its tables with rich.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from influence_patterns.cli.app import app, user_errors


@app.command("run")
@user_errors
def run_command(
    task: str = typer.Option(..., "--task", help="Task name (see `influence-patterns tasks`)."),
    model: str = typer.Option("default-mlm", "--model", "-m", help="default-mlm, default-sst2, a checkpoint dir or a hub name."),
    out: Path = typer.Option(..., "--out", "-o", help="Run directory: results.jsonl and run.json go here."),
    n: Optional[int] = typer.Option(None, "--n", help="Number of instances (generated tasks need it)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the instance generator / subset."),
    data: Optional[Path] = typer.Option(None, "--data", help="Read instances from this file (JSONL, TSV, M&L TSV)."),
    batch_size: int = typer.Option(8, "--batch-size", help="Instances explained together."),
    steps: Optional[int] = typer.Option(
        None, "--steps", help="Gauss–Legendre points (default 32), or Riemann steps m (m+1 points; default 50)."
    ),
    baseline: str = typer.Option("mask", "--baseline", help="mask | zero | pad"),
    method: str = typer.Option("fast", "--method", help="fast | fast-full (the earlier full-width scorer) | reference"),
    quadrature: Optional[str] = typer.Option(
        None, "--quadrature", help="gauss-legendre (default) | riemann (the paper's rule)"
    ),
    keep_special: bool = typer.Option(False, "--keep-special", help="Keep [CLS]/[SEP] real in the baseline."),
    max_batch: Optional[int] = typer.Option(None, "--max-batch", help="Rows per backward pass (α points; fast-full: source × α); default: sized to free memory."),
    device: str = typer.Option("auto", "--device", help="auto (cuda when present) | cpu | cuda | mps"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    backend: str = typer.Option("local", "--backend", help="local | ray"),
    workers: int = typer.Option(1, "--workers", help="Ray workers (with --backend ray)."),
    address: Optional[str] = typer.Option(None, "--address", help="Ray cluster address (default: a local Ray)."),
) -> None:
    """Explain every instance of a task with GPR into OUT/results.jsonl (resumable)."""
    from influence_patterns.runs import read_run, run_dataset

    path = run_dataset(
        task, model, out, n=n, seed=seed, data=data, batch_size=batch_size, steps=steps,
        baseline=baseline, method=method, quadrature=quadrature, keep_special=keep_special,
        device=device, max_rows=max_batch, progress=not quiet, backend=backend, workers=workers, address=address,
    )
    rows, _ = read_run(out)
    correct = sum(bool(r.get("correct")) for r in rows)
    typer.echo(f"{len(rows)} instances in {path} (accuracy {correct / max(len(rows), 1):.3f})")


def _write_json(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")
    typer.echo(f"wrote {path}")


@app.command("analyze")
@user_errors
def analyze_command(
    dirs: List[Path] = typer.Argument(..., help="Run directories (from `influence-patterns run`)."),
    role: Optional[str] = typer.Option(None, "--role", help="Role whose consistency is correlated with accuracy (default: subject, else all)."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the analysis as JSON to this file."),
) -> None:
    """Accuracy, skip vs heads, consistency per role; with several runs, the
    Spearman correlation of consistency with accuracy."""
    from influence_patterns.analysis.analyze import analyze_runs
    from influence_patterns.analysis.display import print_analysis

    result = analyze_runs(dirs, role=role)
    print_analysis(result)
    if json_out is not None:
        _write_json(json_out, result)


def _method_list(methods: Optional[List[str]]) -> list[str]:
    from influence_patterns.analysis.baselines import METHODS

    if not methods:
        return list(METHODS)
    names = [m.strip() for item in methods for m in item.split(",") if m.strip()]
    return names


@app.command("ablate")
@user_errors
def ablate_command(
    dir: Path = typer.Argument(..., help="A run directory."),
    methods: Optional[List[str]] = typer.Option(None, "--methods", help="Methods, comma-separated or repeated (default: all registered)."),
    sources: str = typer.Option("all", "--sources", help="'all' source tokens, or a role name such as subject."),
    batch_size: int = typer.Option(8, "--batch-size", help="Instances per forward pass."),
    seed: int = typer.Option(0, "--seed", help="Seed of the random control."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Override the run's model."),
    max_batch: Optional[int] = typer.Option(None, "--max-batch", help="(source × α) rows per pass; default: sized to free memory."),
    device: str = typer.Option("auto", "--device", help="auto (cuda when present) | cpu | cuda | mps"),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write {\"methods\": [...]} to this file."),
) -> None:
    """Remove (or keep only) each method's nodes and measure the QoI and accuracy;
    also saved as DIR/ablation.json (DIR/ablation-ROLE.json with --sources ROLE) for `report`."""
    from influence_patterns.analysis.ablation import ablate_run
    from influence_patterns.analysis.display import print_ablation

    result = ablate_run(dir, _method_list(methods), sources=sources, batch_size=batch_size, seed=seed,
                        device=device, model=model, max_rows=max_batch)
    print_ablation(result)
    if json_out is not None:
        _write_json(json_out, result)


@app.command("report")
@user_errors
def report_command(
    dirs: List[Path] = typer.Argument(..., help="Run directories, one per task."),
    out: Path = typer.Option(..., "--out", "-o", help="Markdown file to write."),
    html: Optional[Path] = typer.Option(None, "--html", help="Also write an HTML page with figures."),
    ablate: bool = typer.Option(False, "--ablate", help="Run the ablation for runs without DIR/ablation.json."),
) -> None:
    """The paper's three findings (skip vs heads, consistency vs accuracy, patterns vs
    baselines) from the measured numbers, side by side with the paper's figures."""
    from influence_patterns.analysis.report import html_sections, write_report

    found = write_report(dirs, out, ablate=ablate)
    typer.echo(f"wrote {out}")
    typer.echo(f"skip vs heads: {found['skip_verdict']}")
    typer.echo(f"consistency vs accuracy: {found['correlation_verdict']}")
    for group, c in found["comparison"].items():
        typer.echo(f"patterns vs {group}-based: {c['verdict']}")
    if found.get("ablation_by_role"):
        for group, c in found["comparison_by_role"].items():
            typer.echo(f"patterns vs {group}-based ({found['ablation_role']} only): {c['verdict']}")
    if html is not None:
        from influence_patterns.viz.html import write_html

        write_html(html, html_sections(found, dirs), title="Influence patterns: the paper's findings")
        typer.echo(f"wrote {html}")
