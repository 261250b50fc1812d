"""THE reader of a run directory: ``Run.open(dir)``.

Every command that reads a run (``analyze``, ``ablate``, ``report``, ``plot``, a resumed
``run``) goes through here, so a run file means the same thing to all of them:

- a torn last line (a run killed mid-write) is ignored; a malformed line elsewhere is
  an error;
- every line must be a result row (``RunRecord``); ``{}`` or a row without its keys
  is an error;
- indices are unique and lie in ``0..instances-1`` (``instances`` from ``run.json``);
- the settings a row records (``steps``, ``baseline``, ``method``, ``quadrature``)
  agree with ``run.json`` and every row has the same model shape.

Each problem is one ``DataError`` naming the file and the line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from influence_patterns.errors import DataError, InputError
from influence_patterns.runs.options import RESULTS, ROW_SETTINGS, RUN_FILE
from influence_patterns.runs.record import RunRecord


@dataclass
class Run:
    """A run directory, read and checked. ``rows`` are the raw JSON objects (file order),
    ``records`` the same lines typed; ``meta`` is ``run.json`` (``{}`` for a run that
    predates it)."""

    path: Path
    meta: dict[str, Any]
    records: list[RunRecord] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def options(self) -> dict[str, Any]:
        """``run.json`` (an alias of ``meta``)."""
        return self.meta

    @property
    def results_file(self) -> Path:
        return self.path / RESULTS

    @property
    def indices(self) -> set[int]:
        return {r.index for r in self.records}

    def __len__(self) -> int:
        return len(self.records)

    @classmethod
    def open(cls, path: str | Path, require_results: bool = True) -> "Run":
        """Read and check the run at ``path`` (a run directory or its ``results.jsonl``).

        ``require_results=False``: a directory without ``results.jsonl`` is an empty run.
        """
        path = Path(path)
        if not path.exists():
            raise InputError(f"no such run directory: {path}")
        directory = path if path.is_dir() else path.parent
        file = path / RESULTS if path.is_dir() else path
        if not file.is_file() and require_results:
            raise InputError(f"{path} is not a run directory: it has no {RESULTS}")
        meta = read_run_json(directory)
        run = cls(path=directory, meta=meta)
        if file.is_file():
            for number, row in _lines(file):
                run._add(file, number, row)
        return run

    def _add(self, file: Path, number: int, row: Any) -> None:
        where = f"{file} line {number}"
        if not isinstance(row, dict):
            raise DataError(f"{where}: expected a JSON object, got {type(row).__name__}")
        try:
            record = RunRecord.from_dict(row)
        except KeyError as exc:
            raise DataError(f"{where}: not a result row (no {exc.args[0]!r})") from None
        except (TypeError, ValueError, AttributeError) as exc:
            raise DataError(f"{where}: not a result row ({exc})") from None
        i = record.index
        total = self.meta.get("instances")
        if i < 0 or (isinstance(total, int) and i >= total):
            upto = f"0..{total - 1}" if isinstance(total, int) else "0 or more"
            raise DataError(f"{where}: index {i} is out of range ({upto})")
        if i in self._seen:
            raise DataError(f"{where}: index {i} appears twice (first on line {self._seen[i]})")
        for key in ROW_SETTINGS:
            recorded, got = self.meta.get(key), row.get(key)
            if recorded is not None and got is not None and recorded != got:
                raise DataError(
                    f"{where}: {key} is {got!r} but {RUN_FILE} records {recorded!r}; "
                    "the file mixes settings"
                )
        if self.records:
            first = self.records[0].explanation
            e = record.explanation
            if (e.num_layers, e.num_heads) != (first.num_layers, first.num_heads):
                raise DataError(
                    f"{where}: a {e.num_layers}-layer {e.num_heads}-head model, but the first row "
                    f"has {first.num_layers} layers and {first.num_heads} heads"
                )
        self._seen[i] = number
        self.records.append(record)
        self.rows.append(row)

    def __post_init__(self) -> None:
        self._seen: dict[int, int] = {}


def read_run_json(directory: str | Path) -> dict[str, Any]:
    """``run.json`` of ``directory`` as a dict; ``{}`` when there is none."""
    run_json = Path(directory) / RUN_FILE
    if not run_json.is_file():
        return {}
    try:
        meta = json.loads(run_json.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{run_json}: not valid JSON ({getattr(exc, 'msg', exc)})") from None
    except OSError as exc:
        raise DataError(f"{run_json}: cannot be read ({exc.strerror or exc})") from None
    if not isinstance(meta, dict):
        raise DataError(f"{run_json}: expected a JSON object, got {type(meta).__name__}")
    return meta


def _lines(file: Path):
    """``(line number, parsed JSON)`` of every non-blank line; a torn last line is skipped."""
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise DataError(f"{file}: cannot be read ({exc.strerror or exc})") from None
    lines = data.split(b"\n")
    complete = data.endswith(b"\n")
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        last = number == len(lines) or (number == len(lines) - 1 and complete)
        try:
            row = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            if last:
                return  # a torn final write; `run` repairs it on resume
            raise DataError(f"{file} line {number}: not valid JSON ({getattr(exc, 'msg', exc)})") from None
        yield number, row


def read_results(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a run (directory or ``results.jsonl``), in file order, checked."""
    return Run.open(path).rows


def read_run(path: str | Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """``(rows, run.json)`` of a run directory (``run.json`` may be missing: ``{}``)."""
    run = Run.open(path)
    return run.rows, run.meta
