"""One writer per run directory: an advisory lock file holding the owner's pid.

``RunLock(dir)`` creates ``dir/run.lock``, takes an exclusive ``flock`` on it and writes
its pid. The kernel drops a ``flock`` when its process dies, so a lock file left by a
killed run is stale exactly when nobody holds its ``flock``: the next writer takes it
over. A live owner makes a second writer fail with one line naming the owner's pid.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType

from influence_patterns.errors import InputError, OutputError
from influence_patterns.runs.options import LOCK_FILE


class RunLock:
    """Hold ``directory/run.lock`` while writing the run (a context manager)."""

    def __init__(self, directory: str | Path) -> None:
        self.path = Path(directory) / LOCK_FILE
        self.fd: int | None = None

    def acquire(self) -> "RunLock":
        """Take the lock (again a no-op when held); ``InputError`` names a live owner."""
        if self.fd is not None:
            return self
        for _ in range(10):  # retried only when the file was replaced under us
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise OutputError(f"cannot write {self.path}: {exc.strerror or exc}") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                owner = _read_pid(fd)
                os.close(fd)
                who = f"process {owner}" if owner else "another process"
                raise InputError(
                    f"{self.path.parent} is being written by {who} (lock file {self.path}); "
                    "wait for it to finish or write to another directory"
                ) from None
            except OSError as exc:
                os.close(fd)
                raise OutputError(f"cannot lock {self.path}: {exc.strerror or exc}") from None
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False  # the previous owner removed it between our open and flock
            if not same:
                os.close(fd)
                continue
            try:  # ours now (fresh, or stale from a dead process): record our pid
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
                os.fsync(fd)
            except OSError as exc:
                os.close(fd)
                raise OutputError(f"cannot write {self.path}: {exc.strerror or exc}") from None
            self.fd = fd
            return self
        raise OutputError(f"cannot lock {self.path}: it keeps being replaced")

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            os.unlink(self.path)  # unlink first, while we still hold the flock
        except OSError:
            pass  # already gone, or the directory is read-only now: the flock is what counts
        os.close(self.fd)
        self.fd = None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.release()


def lock_owner(directory: str | Path) -> int | None:
    """The pid recorded in ``directory/run.lock``, if the file exists and holds one."""
    try:
        text = (Path(directory) / LOCK_FILE).read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
