"""One writer per run directory: ``RunLock(dir)``, the project's one lock scheme
(:mod:`influence_patterns.locking`) applied to a run directory.

The lock is an exclusive ``flock`` on the run directory itself, so deleting ``run.lock``
(a note holding the owner's pid, for the message a second writer gets) does not let a
second writer in; the kernel drops the lock when its process dies, so a killed run's
directory is free again at once. The writer calls :meth:`RunLock.check` before every
append: a directory moved away or replaced under it stops the run with one line.
"""

from __future__ import annotations

from pathlib import Path

from influence_patterns.locking import DirectoryLock, read_pid
from influence_patterns.runs.options import LOCK_FILE


class RunLock(DirectoryLock):
    """Hold the lock of run directory ``directory`` while writing the run (a context manager)."""

    def __init__(self, directory: str | Path) -> None:
        super().__init__(directory, note=LOCK_FILE)
        self.path = self.directory / LOCK_FILE

    def acquire(self, blocking: bool = False) -> "RunLock":
        super().acquire(blocking)
        return self

    def __enter__(self) -> "RunLock":
        return self.acquire()


def lock_owner(directory: str | Path) -> int | None:
    """The pid recorded in ``directory/run.lock``, if the file exists and holds one."""
    return read_pid(Path(directory) / LOCK_FILE)
