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

from influence_patterns.errors import OutputError


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
