"""The one lock scheme of the project: an exclusive ``flock`` on a directory itself.

Both writers that must be alone use it: a run (``runs.lock.RunLock``, one writer per
run directory) and a default-model build (``models.defaults``: a build's temporary
directory is locked while it is written; a cache entry is swapped in under the cache
root's lock).

The lock is held on the directory's own descriptor, not on a file inside it, so
deleting or replacing a file in the directory (``run.lock`` included) cannot let a
second writer in. The kernel drops a ``flock`` when its process dies, so a directory
left by a killed writer is free again at once: no pid is trusted, no clock is read.
A small note file (``note``, e.g. ``run.lock``) records the owner's pid for the message
a second writer gets; it is informational only, deleting it changes nothing.
:meth:`DirectoryLock.check` tells a writer whether the directory it locked is still
the one at its path (not moved away or replaced); writers call it before every write.

``fcntl`` (POSIX: Linux, macOS, WSL) is imported where a lock is taken, so the rest of
the package, the CLI included, imports on Windows too; taking a lock there is one
clear error.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType
from typing import Any

from influence_patterns.errors import InputError, OutputError


def _fcntl() -> Any:
    try:
        import fcntl
    except ImportError:  # Windows
        raise OutputError(
            "locking a directory needs POSIX file locks (fcntl: Linux, macOS or WSL); "
            "they are not available on this system"
        ) from None
    return fcntl


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc) or type(exc).__name__


class DirectoryLock:
    """An exclusive ``flock`` on ``directory`` (which must exist); a context manager.

    ``acquire()`` raises ``InputError`` naming the owner when another process (or
    another ``DirectoryLock`` in this one) holds it; ``acquire(blocking=True)`` waits.
    ``note``: a file name inside the directory that records the owner's pid while the
    lock is held (``None``: none).
    """

    def __init__(self, directory: str | Path, note: str | None = None, what: str = "") -> None:
        self.directory = Path(directory)
        self.note = self.directory / note if note else None
        self.what = what or str(self.directory)
        self.fd: int | None = None
        self._identity: tuple[int, int] | None = None

    @property
    def held(self) -> bool:
        return self.fd is not None

    def acquire(self, blocking: bool = False) -> "DirectoryLock":
        if self.fd is not None:
            return self
        fcntl = _fcntl()
        flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)
        try:
            fd = os.open(self.directory, flags)
        except OSError as exc:
            raise OutputError(f"cannot lock {self.directory}: {_reason(exc)}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(fd)
            raise self._busy() from None
        except OSError as exc:
            os.close(fd)
            raise OutputError(f"cannot lock {self.directory}: {_reason(exc)}") from None
        st = os.fstat(fd)
        self.fd, self._identity = fd, (st.st_dev, st.st_ino)
        if self.note is not None:
            try:
                note = os.open(self.note, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                try:
                    os.write(note, f"{os.getpid()}\n".encode())
                finally:
                    os.close(note)
            except OSError:
                pass  # informational only: a second writer's message then names no pid
        return self

    def probe(self) -> None:
        """Raise as :meth:`acquire` would when another process holds the lock; otherwise take
        and drop it at once, writing nothing (a cheap check before expensive work)."""
        if self.fd is not None:
            return
        note, self.note = self.note, None
        try:
            self.acquire()
        except InputError:
            self.note = note
            raise self._busy() from None  # naming the owner from the note
        finally:
            self.note = note
        self.release()

    def _busy(self) -> InputError:
        owner = self.owner()
        who = f"process {owner}" if owner else "another process"
        return InputError(
            f"{self.what} is being written by {who}; wait for it to finish or write to another directory"
        )

    def still_there(self) -> bool:
        """The directory at the path is still the one locked (not removed, moved or replaced)."""
        if self._identity is None:
            return False
        try:
            st = os.stat(self.directory)
        except OSError:
            return False
        return (st.st_dev, st.st_ino) == self._identity

    def check(self) -> None:
        """``OutputError`` unless this lock is held and its directory still stands at its path."""
        if self.fd is None:
            raise OutputError(f"{self.what}: this process does not hold its lock")
        if not self.still_there():
            raise OutputError(
                f"{self.what} was removed, moved or replaced while this process wrote it; stopped writing"
            )

    def owner(self) -> int | None:
        """The pid in the note file, if there is one."""
        return read_pid(self.note) if self.note is not None else None

    def release(self) -> None:
        if self.fd is None:
            return
        if self.note is not None and self.still_there():
            try:
                os.unlink(self.note)  # while the lock is still ours
            except OSError:
                pass  # already gone, or a read-only directory now: the flock is what counts
        os.close(self.fd)  # closing the descriptor drops the flock
        self.fd = None

    def __enter__(self) -> "DirectoryLock":
        return self.acquire()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.release()


def is_locked(directory: str | Path) -> bool:
    """Someone holds ``directory``'s lock right now (a probe: it takes and drops it)."""
    try:
        DirectoryLock(directory).acquire().release()
    except InputError:
        return True
    return False


def read_pid(path: str | Path) -> int | None:
    """The pid recorded in a lock note, if the file exists and holds one."""
    try:
        text = Path(path).read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
