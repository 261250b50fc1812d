"""``influence-patterns tasks``: list the registered tasks."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from influence_patterns.cli.app import app, user_errors
from influence_patterns.tasks.registry import list_tasks


@app.command("tasks")
@user_errors
def tasks_command() -> None:
    """List every task with its kind, a one-line description and an example."""
    table = Table(title="Tasks")
    table.add_column("task", style="bold", no_wrap=True)
    table.add_column("kind", no_wrap=True)
    table.add_column("description")
    table.add_column("example")
    for spec in list_tasks():
        example = spec.example
        if spec.example_targets is not None:
            example += f"  ({spec.example_targets[0]} / {spec.example_targets[1]})"
        table.add_row(spec.name, spec.kind, spec.description, example)
    Console(soft_wrap=False).print(table)
