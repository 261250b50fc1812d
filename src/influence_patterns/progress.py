"""One progress bar for every long step (explain, accuracy, ablate, report --ablate).

A rich bar on stderr, shown only when stderr is a terminal (never in pipes, logs or
tests) and not turned off (``--quiet``). Library code takes a ``progress`` argument
that is ``True``/``False``/``None`` (auto: when stderr is a terminal) or a callable
``advance(k)``; :func:`progress_bar` turns any of those into one callable.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Union

Progress = Union[bool, None, Callable[[int], None]]


def enabled(progress: Progress = None) -> bool:
    """Whether to draw a bar: ``None`` means "when stderr is a terminal"."""
    if callable(progress):
        return False
    if progress is None:
        return sys.stderr.isatty()
    return bool(progress)


@contextmanager
def progress_bar(total: int | None, description: str, progress: Progress = None) -> Iterator[Callable[[int], None]]:
    """Yield ``advance(k)``: a rich bar of ``total`` units on stderr, or a no-op.

    ``progress`` may be a callable: it is yielded as is (the caller's own reporter).
    """
    if callable(progress):
        yield progress
        return
    if not enabled(progress):
        yield lambda k: None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn, MofNCompleteColumn, Progress as Bar, TextColumn, TimeElapsedColumn,
        TimeRemainingColumn,
    )

    bar = Bar(
        TextColumn(description), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        TextColumn("left"), TimeRemainingColumn(),
        console=Console(stderr=True), transient=True,
    )
    with bar:
        task = bar.add_task(description, total=total)
        yield lambda k: bar.advance(task, k)
