"""``run``, ``analyze``, ``ablate`` and ``report``: data-set runs and the paper's analyses.

Each command calls one library function (``run_dataset``, ``analyze_runs``,
``ablate_run``, ``write_report``) and prints its tables with rich.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from influence_patterns.attribution.baselines import BASELINES
from influence_patterns.attribution.quadrature import QUADRATURES
from influence_patterns.cli.app import app, user_errors
from influence_patterns.analysis.bootstrap import check_resamples
from influence_patterns.fileio import check_writable
from influence_patterns.config import ExplainConfig  # the defaults: ExplainConfig.method, ...
from influence_patterns.search.methods import GPR_METHODS
from influence_patterns.models.loading import DEVICES
from influence_patterns.runs.backends import BACKENDS


@app.command("run")
@user_errors
def run_command(
    task: Optional[str] = typer.Option(
        None, "--task",
        help="Task name: a built-in one (see `influence-patterns tasks`) or a name of your own for the rows of "
             "--data. Without it, every task the file's task column holds, into one run directory.",
    ),
    model: str = typer.Option("default-mlm", "--model", "-m", help="default-mlm, default-sst2, a checkpoint dir or a hub name."),
    out: Path = typer.Option(..., "--out", "-o", help="Run directory: results.jsonl and run.json go here."),
    n: Optional[int] = typer.Option(None, "--n", help="Number of instances per task (generated tasks need it; default: every row of --data)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the instance generator / subset."),
    data: Optional[str] = typer.Option(None, "--data", help="Read instances from this file: CSV, TSV or JSONL (docs/data.md), a Marvin & Linzen TSV, or ml-sample (the shipped sample)."),
    batch_size: int = typer.Option(8, "--batch-size", help="Instances explained together."),
    steps: Optional[int] = typer.Option(
        None, "--steps", help="Gauss–Legendre points (default 32), or Riemann steps m (m+1 points; default 50)."
    ),
    baseline: str = typer.Option(ExplainConfig.baseline, "--baseline", help=BASELINES.help("The input integrated from:")),
    method: str = typer.Option(ExplainConfig.method, "--method", help=GPR_METHODS.help("The search:")),
    quadrature: Optional[str] = typer.Option(None, "--quadrature", help=QUADRATURES.help("The integration rule:")),
    keep_special: bool = typer.Option(False, "--keep-special", help="Keep [CLS]/[SEP] real in the baseline."),
    max_batch: Optional[int] = typer.Option(None, "--max-batch", help="Rows per backward pass: integration points α (fast-full: source token × α pairs); default: sized to free memory."),
    device: str = typer.Option("auto", "--device", help=DEVICES.help()),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    backend: str = typer.Option("local", "--backend", help=BACKENDS.help("Where explanations are computed:")),
    workers: int = typer.Option(1, "--workers", help="Ray workers (with --backend ray)."),
    address: Optional[str] = typer.Option(None, "--address", help="Ray cluster address (default: a local Ray)."),
) -> None:
    """Explain every instance of a task with GPR into OUT/results.jsonl (resumable)."""
    from influence_patterns.errors import InputError
    from influence_patterns.runs import BackendOptions, Run, RunOptions, run_dataset

    if task is None and data is None:
        raise InputError("give --task NAME, --data FILE, or both")

    options = RunOptions(
        model=model, task=task, n=n, seed=seed, data=str(data) if data is not None else None,
        steps=steps, baseline=baseline, method=method, quadrature=quadrature, keep_special=keep_special,
        batch_size=batch_size, device=device,
    )
    path = run_dataset(options, out, progress=False if quiet else None, max_rows=max_batch,
                       backend=BackendOptions(backend, workers=workers, address=address))
    run = Run.open(out)
    correct = sum(bool(r.correct) for r in run.records)
    typer.echo(f"{len(run)} instances in {path} (accuracy {correct / max(len(run), 1):.3f})")
    tasks = list(dict.fromkeys(r.task or "" for r in run.records))
    if len(tasks) > 1:
        for name in tasks:
            rows = [r for r in run.records if (r.task or "") == name]
            typer.echo(f"  {name}: {len(rows)} instances (accuracy {sum(bool(r.correct) for r in rows) / len(rows):.3f})")


@app.command("analyze")
@user_errors
def analyze_command(
    dirs: List[Path] = typer.Argument(..., help="Run directories (from `influence-patterns run`)."),
    role: Optional[str] = typer.Option(None, "--role", help="Role whose consistency is tested (default: subject, else all)."),
    null: Optional[str] = typer.Option(None, "--null", help="norm-matched (the null to use: every tensor redrawn with its own mean and std) or random-init (heads nearly silent; warned): rerun GPR on a seeded re-initialised copy of the model, a null for skip vs heads."),
    null_seed: int = typer.Option(0, "--null-seed", help="Seed of the re-initialisation."),
    stay_share: bool = typer.Option(False, "--stay-share", help="Also measure the skip's influence share on steps that stay (slow)."),
    resamples: int = typer.Option(1000, "--resamples", help="Bootstrap resamples for the CIs."),
    seed: int = typer.Option(0, "--seed", help="Seed of the bootstrap."),
    batch_size: int = typer.Option(8, "--batch-size", help="Instances per GPR batch (with --null)."),
    device: str = typer.Option("auto", "--device", help=DEVICES.help()),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the analysis as JSON to this file."),
    csv_out: Optional[Path] = typer.Option(None, "--csv", help="Write the analysis as CSV to this file: one row per run and metric (value, 95% CI)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar (with --null or --stay-share)."),
) -> None:
    """Accuracy, skip vs heads (with CIs and an optional null), consistency and its tests.

    Skip vs heads: the count ratio (ceiling L-1), heads per pattern, the share of steps
    that stay taking the skip. Consistency per role; with three or more runs, Spearman ρ
    of consistency with accuracy (permutation p); per instance within tasks."""
    from influence_patterns.analysis.analyze import AnalyzeOptions, analyze_runs
    from influence_patterns.errors import InputError
    from influence_patterns.fileio import write_json
    from influence_patterns.viz.tables import print_analysis

    if batch_size < 1:
        raise InputError("--batch-size must be at least 1")
    check_resamples(resamples, "--resamples")
    for path, flag in ((json_out, "--json"), (csv_out, "--csv")):
        if path is not None:
            check_writable(path, flag)  # before computing
    opts = AnalyzeOptions(role=role, null=null, null_seed=null_seed, stay_share=stay_share, resamples=resamples,
                          seed=seed, batch_size=batch_size, device=device)
    result = analyze_runs(dirs, opts, progress=None if quiet else (lambda m: typer.echo(m, err=True)),
                          bars=False if quiet else None)
    if json_out is not None:
        write_json(json_out, result)
    if csv_out is not None:
        from influence_patterns.analysis.frames import analysis_frame, write_csv

        write_csv(csv_out, analysis_frame(result))
    print_analysis(result)
    for note in result.get("notes", []):
        typer.echo(f"note: {note}")
    for path in (json_out, csv_out):
        if path is not None:
            typer.echo(f"Wrote {path}")


def _method_list(methods: Optional[List[str]]) -> tuple[str, ...]:
    from influence_patterns.analysis.methods import ABLATION_METHODS

    if not methods:
        return tuple(ABLATION_METHODS)
    return tuple(m.strip() for item in methods for m in item.split(",") if m.strip())


@app.command("ablate")
@user_errors
def ablate_command(
    dir: Path = typer.Argument(..., help="A run directory."),
    methods: Optional[List[str]] = typer.Option(None, "--methods", help="Methods, comma-separated or repeated (default: all registered)."),
    sources: str = typer.Option("all", "--sources", help="'all' source tokens, or a role name such as subject."),
    reference: str = typer.Option("mean", "--reference", help="Value of the nodes outside the kept set: mean (per position, over held-out real inputs of the same task and length), baseline (the IG baseline input run through the model) or zero."),
    replace_: str = typer.Option("as", "--replace", help="What is replaced outside the kept set: as (head contexts and skips) or as+h (also the layer outputs h^l at positions no kept node uses)."),
    interchange: bool = typer.Option(False, "--interchange", help="Also patch the kept nodes (and, complementary, every other node) from each instance's counterfactual (answer flipped): interchange-intervention accuracy."),
    removal: str = typer.Option("reference", "--removal", help="Value of the removed nodes: reference (the --reference values) or zero."),
    batch_size: int = typer.Option(8, "--batch-size", help="Instances per forward pass."),
    seed: int = typer.Option(0, "--seed", help="Seed of the random controls."),
    resamples: int = typer.Option(1000, "--resamples", help="Bootstrap resamples for the CIs."),
    bootstrap_seed: int = typer.Option(0, "--bootstrap-seed", help="Seed of the bootstrap."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="The run's model at another path (checked against the run)."),
    max_batch: Optional[int] = typer.Option(None, "--max-batch", help="Rows per forward pass, each row one (source token, integration point α) pair; default: sized to free memory."),
    device: str = typer.Option("auto", "--device", help=DEVICES.help()),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the result (methods, comparisons, per_instance) as JSON here."),
    csv_out: Optional[Path] = typer.Option(None, "--csv", help="Write the tables as CSV here: one row per method and metric (value, 95% CI), then the comparisons."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Compression (keep only each method's nodes), removal and interchange, with CIs and verdicts.

    Keep only: every other node takes its --reference value; removal: the nodes do;
    --interchange: the nodes take their values on the counterfactual (answer flipped).
    Fidelity, accuracy and QoI recovered, interchange-intervention accuracy. Also saved
    as DIR/ablation.json (DIR/ablation-ROLE.json with --sources ROLE; -REFERENCE and
    -as+h added for the other protocols)."""
    from influence_patterns.analysis.ablation import AblationOptions, ablate_run
    from influence_patterns.errors import InputError
    from influence_patterns.viz.tables import print_ablation

    if batch_size < 1:
        raise InputError("--batch-size must be at least 1")
    check_resamples(resamples, "--resamples")
    if max_batch is not None and max_batch < 1:
        raise InputError("--max-batch must be at least 1")
    if csv_out is not None:
        check_writable(csv_out, "--csv")  # before computing
    opts = AblationOptions(methods=_method_list(methods), sources=sources, reference=reference, replace=replace_,
                           interchange=interchange, removal=removal,
                           batch_size=batch_size, seed=seed, resamples=resamples, bootstrap_seed=bootstrap_seed,
                           max_rows=max_batch)
    try:
        opts.validate()
    except InputError as exc:  # name the flag, not the parameter
        raise InputError(str(exc).replace("methods is empty", "--methods is empty")
                         .replace("unknown replace", "unknown --replace")) from None
    result = ablate_run(dir, opts, device=device, model=model, json_out=json_out,
                        progress=False if quiet else None)
    if csv_out is not None:
        from influence_patterns.analysis.frames import ablation_frame, write_csv

        write_csv(csv_out, ablation_frame(result))
    print_ablation(result)
    for path in (json_out, csv_out):
        if path is not None:
            typer.echo(f"Wrote {path}")


@app.command("report")
@user_errors
def report_command(
    dirs: List[Path] = typer.Argument(..., help="Run directories, one per task."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Markdown file to write."),
    html: Optional[Path] = typer.Option(None, "--html", help="Also write an HTML page with figures."),
    ablate: bool = typer.Option(False, "--ablate", help="Run the ablation for runs without DIR/ablation.json."),
    null: Optional[str] = typer.Option(None, "--null", help="norm-matched (recommended) or random-init: the null for skip vs heads (reruns GPR)."),
    null_seed: int = typer.Option(0, "--null-seed", help="Seed of the re-initialisation."),
    stay_share: bool = typer.Option(False, "--stay-share", help="Also measure the skip's influence share on steps that stay (slow)."),
    resamples: int = typer.Option(1000, "--resamples", help="Bootstrap resamples for the CIs."),
    seed: int = typer.Option(0, "--seed", help="Seed of the bootstrap."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar (with --ablate, --null or --stay-share)."),
) -> None:
    """The paper's findings with a verdict summary on top (measured value with a CI,
    the null or ceiling, the verdict), the settings and per-task tables."""
    from influence_patterns.analysis.analyze import AnalyzeOptions
    from influence_patterns.analysis.report import ReportOptions
    from influence_patterns.errors import InputError
    from influence_patterns.viz.report_html import write_report

    check_resamples(resamples, "--resamples")
    opts = ReportOptions(ablate=ablate, analyze=AnalyzeOptions(null=null, null_seed=null_seed, stay_share=stay_share,
                                                               resamples=resamples, seed=seed))
    if out is None and html is None:
        raise InputError("give --out FILE.md, --html FILE.html or both")
    for path, flag in ((out, "--out"), (html, "--html")):
        if path is not None:
            check_writable(path, flag)  # before computing
    found = write_report(dirs, out, html, opts, progress=False if quiet else None)
    for path in (out, html):
        if path is not None:
            typer.echo(f"Wrote {path}")
    from influence_patterns.viz.tables import print_summary, print_wrapped

    print_summary(found["summary"])  # value [CI], reference and verdict, wrapped at word boundaries
    for w in found["warnings"] + found["notes"]:
        print_wrapped(f"warning: {w}")
