"""``influence-patterns tasks``: list the registered tasks."""

from __future__ import annotations

from influence_patterns.cli.app import app, user_errors
from influence_patterns.tasks.registry import list_tasks
from influence_patterns.viz.terminal import print_tasks


@app.command("tasks")
@user_errors
def tasks_command() -> None:
    """List every task with its kind, a one-line description and an example.

    A masked-LM (mlm) task puts [MASK] where the verb or reflexive goes and scores the
    right word against the wrong one; a classification task scores the gold class.
    """
    from rich.console import Console
    from rich.text import Text

    print_tasks(list_tasks())
    Console().print(Text("Your own sentences: any other task name with --data FILE (CSV, TSV or JSONL; "
                         "docs/data.md), e.g. run --task my/agreement --data mine.csv; --data ml-sample is the shipped Marvin & Linzen sample."))
