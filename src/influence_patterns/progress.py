"""One progress display for every long step (explain, run, accuracy, ablate, report, builds).

Always on stderr (stdout stays the command's output, safe to pipe), and only when
stderr is a terminal (never in pipes, logs or tests) unless forced on or turned off
(``--quiet``). A terminal that cannot redraw a line (``TERM=dumb``: Emacs shells,
some CI consoles) gets a plain line every :data:`PLAIN_EVERY` seconds instead of a bar.

Library code takes a ``progress`` argument that is ``True``/``False``/``None`` (auto:
when stderr is a terminal) or a callable ``advance(k)``; :func:`progress_bar` turns any
of those into one callable, :func:`open_bar` into a :class:`Bar` with notes (rate, loss).

Every display shows ``done/total pct%`` with the percentage computed from the same
whole count it shows (a fraction of an instance moves the bar, not the numbers), and
time as ``elapsed 0:12, about 1:05 left`` (:func:`fmt_clock`; ``left ?`` until known).
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TextIO, Union

Progress = Union[bool, None, Callable[[int], None]]

#: Seconds between two plain progress lines under ``TERM=dumb``.
PLAIN_EVERY = 10.0


def enabled(progress: Progress = None) -> bool:
    """Whether to draw a bar: ``None`` means "when stderr is a terminal"."""
    if callable(progress):
        return False
    if progress is None:
        return _isatty(sys.stderr)
    return bool(progress)


def _isatty(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def dumb_terminal() -> bool:
    """``TERM=dumb`` (or unset TERM on a POSIX system): no cursor movement, no redraws."""
    term = os.environ.get("TERM")
    return term == "dumb" or (term is None and os.name == "posix")


def fmt_clock(seconds: float | None) -> str:
    """``m:ss`` or ``h:mm:ss``; ``?`` when unknown. The one time format of every display."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "?"
    s = int(seconds + 0.5)
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def fmt_status(done: float, total: int | None, elapsed: float, note: str = "") -> str:
    """``12/60 20% · elapsed 0:14, about 0:56 left · note``: count and percentage from the
    same whole count; time left from the (fractional) rate so far."""
    whole = int(done)
    parts = []
    if total:
        parts.append(f"{whole}/{total} {100 * whole // total}%")
    else:
        parts.append(f"{whole}")
    left = None
    if total and done > 0 and elapsed > 0:
        left = (total - done) * elapsed / done
    parts.append(f"elapsed {fmt_clock(elapsed)}, " + (f"about {fmt_clock(left)} left" if left is not None else "left ?"))
    if note:
        parts.append(note)
    return " · ".join(parts)


class Bar:
    """A progress display on stderr: a redrawn rich bar on a capable terminal, a plain
    periodic line under ``TERM=dumb``, nothing when ``show`` is false."""

    def __init__(self, total: int | None, description: str, show: bool, stream: TextIO | None = None,
                 initial: float = 0.0) -> None:
        self.total, self.description, self.show = total, description, show
        self.stream = stream if stream is not None else sys.stderr
        self.done = float(initial)
        self.initial = float(initial)
        self.note = ""
        self.started = time.monotonic()
        self._last_plain = self.started
        self._rich: Any = None
        self._task: Any = None
        self.plain = show and dumb_terminal()

    def __enter__(self) -> "Bar":
        if self.show and not self.plain:
            from rich.console import Console
            from rich.progress import BarColumn, Progress as RichProgress, TextColumn

            self._rich = RichProgress(
                TextColumn(self.description), BarColumn(), TextColumn("{task.fields[status]}"),
                console=Console(file=self.stream), transient=True,
            )
            self._rich.__enter__()
            self._task = self._rich.add_task(self.description, total=self.total, completed=self.done,
                                             status=self.status())
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._rich is not None:
            self._rich.__exit__(*exc)
            self._rich = None
        if self.plain and exc[0] is None:
            self._print_plain()

    def status(self) -> str:
        return fmt_status(self.done, self.total, time.monotonic() - self.started, self.note)

    def advance(self, k: float) -> None:
        self.update(self.done + k)

    def update(self, done: float, note: str | None = None) -> None:
        self.done = float(done)
        if note is not None:
            self.note = note
        if self._rich is not None:
            self._rich.update(self._task, completed=self.done, status=self.status())
        elif self.plain and time.monotonic() - self._last_plain >= PLAIN_EVERY:
            self._print_plain()

    def _print_plain(self) -> None:
        self._last_plain = time.monotonic()
        print(f"{self.description}: {self.status()}", file=self.stream, flush=True)


def open_bar(total: int | None, description: str, progress: Progress = None, initial: float = 0.0) -> Bar:
    """A :class:`Bar` (use it as a context manager) shown when :func:`enabled` says so."""
    return Bar(total, description, enabled(progress), initial=initial)


@contextmanager
def progress_bar(total: int | None, description: str, progress: Progress = None) -> Iterator[Callable[[int], None]]:
    """Yield ``advance(k)``: a bar of ``total`` units on stderr, or a no-op.

    ``progress`` may be a callable: it is yielded as is (the caller's own reporter).
    """
    if callable(progress):
        yield progress
        return
    if not enabled(progress):
        yield lambda k: None
        return
    with open_bar(total, description, True) as bar:
        yield bar.advance
