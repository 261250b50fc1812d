"""Every file the project writes goes through here.

Writes are atomic (a temporary file beside the target, then ``os.replace``), so a failed
write leaves the earlier result intact; an ``OSError`` becomes one :class:`OutputError`
line naming the path and the reason. JSON is strict: non-finite floats are written as
``null``, never as the bare ``NaN`` that JSON readers reject.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from influence_patterns.errors import DataError, InputError, OutputError


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc) or type(exc).__name__


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def output_error(path: str | Path, exc: OSError) -> OutputError:
    """The one-line error for a failed write of ``path``."""
    return OutputError(f"cannot write {path}: {_reason(exc)}")


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` atomically.

    For writers that want a file name (``savefig``); on any error the temporary file is
    removed and ``path`` is left as it was.
    """
    target = Path(path)
    if target.is_dir():
        raise OutputError(f"cannot write {target}: it is a directory")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp" + target.suffix, dir=target.parent)
        os.close(fd)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; results get the usual mode
    except OSError as exc:
        raise output_error(target, exc) from None
    try:
        yield Path(tmp)
        os.replace(tmp, target)
    except OutputError:
        raise  # already one line naming the path
    except OSError as exc:
        raise output_error(target, exc) from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@contextmanager
def synced(path: str | Path, mode: str, name: str | Path | None = None) -> Iterator[Any]:
    """``open(path, mode)``, flushed and fsync'd on leaving; an ``OSError`` becomes an
    :class:`OutputError` naming ``name`` (default ``path``)."""
    try:
        with open(path, mode) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
    except OutputError:
        raise
    except OSError as exc:
        raise output_error(name if name is not None else path, exc) from None


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (fsync'd before the rename)."""
    with atomic_path(path) as tmp, synced(tmp, "wb", name=path) as fh:
        fh.write(data)
    return Path(path)


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return write_bytes(path, text.encode("utf-8"))


def strict(obj: Any) -> Any:
    """``obj`` with every non-finite float replaced by ``None`` (JSON has no NaN/Infinity)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: strict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [strict(v) for v in obj]
    return obj


def dumps(obj: Any, indent: int | None = None) -> str:
    """Strict JSON text of ``obj`` (non-finite floats as ``null``)."""
    return json.dumps(strict(obj), indent=indent, allow_nan=False, ensure_ascii=False)


def write_json(path: str | Path, obj: Any, indent: int | None = 2) -> Path:
    """Write ``obj`` as strict JSON to ``path`` atomically."""
    return write_text(path, dumps(obj, indent=indent) + "\n")


def check_writable(path: str | Path, flag: str = "") -> None:
    """Fail before any work (``OutputError``) when ``path`` could not be written: a directory
    in the way, a parent that is a file, or a directory we may not write in (probed by
    creating and removing a temporary file, so it holds for root and ACLs too). Missing
    parent directories are fine (the writers create them); nothing is left behind."""
    target = Path(path)
    named = f"{target} ({flag})" if flag else str(target)
    if target.is_dir():
        raise OutputError(f"cannot write {named}: it is a directory")
    if target.exists() and not target.is_file():
        raise OutputError(f"cannot write {named}: it is not a regular file")
    parent = target.parent
    while not parent.exists():
        if parent.parent == parent:
            break
        parent = parent.parent
    if not parent.is_dir():
        raise OutputError(f"cannot write {named}: {parent} is not a directory")
    try:
        fd, tmp = tempfile.mkstemp(prefix=".write-probe.", dir=parent)
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        raise OutputError(f"cannot write {named}: {_reason(exc)} ({parent})") from None


def check_regular(path: str | Path, what: str = "file") -> None:
    """``InputError`` when ``path`` exists but is not a regular file (a FIFO would block a
    reader or a writer forever; a device is no result file)."""
    p = Path(path)
    if p.exists() and not p.is_file():
        kind = "a directory" if p.is_dir() else "not a regular file (a FIFO, socket or device)"
        raise InputError(f"{what} {p} is {kind}")


def parse_json(data: bytes | str, where: str) -> Any:
    """Parse JSON text; every failure is one ``DataError`` line naming ``where`` (never a
    ``RecursionError`` from deeply nested input, never the bytes of a binary file)."""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise DataError(f"{where}: not UTF-8 text (byte {exc.start}); is it a binary file?") from None
    try:
        return json.loads(data)
    except json.JSONDecodeError as exc:
        raise DataError(f"{where}: not valid JSON ({exc.msg}, line {exc.lineno} column {exc.colno})") from None
    except RecursionError:
        raise DataError(f"{where}: not usable JSON (nested too deeply)") from None


def read_json(path: str | Path, what: str = "file") -> Any:
    """The JSON content of ``path``, checked: a regular file, UTF-8, valid and not absurdly
    nested; every problem is one line naming the file."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"no such {what}: {p}")
    check_regular(p, what)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise DataError(f"{p}: cannot be read ({_reason(exc)})") from None
    return parse_json(data, str(p))


def safe_name(text: str, limit: int = 80) -> str:
    """A file-name part made from data (a role, a task name): letters, digits, ``.``, ``_``
    and ``-`` only, no leading dot, at most ``limit`` characters; anything else (``/``,
    ``..``, control characters) is replaced, and a short hash of the original keeps two
    different names apart. An output path built from it stays in its directory."""
    import hashlib
    import re

    text = str(text)
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", text).lstrip(".")[:limit] or "_"
    if cleaned == text:
        return cleaned
    return f"{cleaned}-{hashlib.sha256(text.encode('utf-8', 'surrogatepass')).hexdigest()[:8]}"
