"""THE reader of a run directory: ``Run.open(dir)``.

Every command that reads a run (``analyze``, ``ablate``, ``report``, ``plot``, a resumed
``run``) goes through here, so a run file means the same thing to all of them:

- a torn last line (a run killed mid-write) is ignored; a malformed line elsewhere is
  an error;
- every line must be a result row (``RunRecord``); ``{}`` or a row without its keys
  is an error;
- indices are unique and lie in ``0..instances-1`` (``instances`` from ``run.json``);
- the settings a row records (``steps``, ``baseline``, ``method``, ``quadrature``)
  agree with ``run.json`` and every row has the same model shape;
- every row was computed by the same model (``weights_sha256``, ``config_sha256``, also
  against ``run.json``);
- heads and positions lie inside the row's model and text, the QoI is finite
  (``Explanation.check``).

Each problem is one ``DataError`` naming the file and the line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from influence_patterns.errors import DataError, InputError
from influence_patterns.fileio import check_regular, parse_json
from influence_patterns.runs.options import MODEL_KEYS, RESULTS, ROW_SETTINGS, RUN_FILE
from influence_patterns.runs.record import RunRecord

#: The columns of :meth:`Run.to_dataframe`, in order.
DATAFRAME_COLUMNS = (
    "index", "task", "condition", "correct", "q", "source_index", "source_token", "role", "sign", "g",
    "influence_token", "influence_head", "pattern", "positions", "heads",
)


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
    def indices(self) -> set[int]:
        return {r.index for r in self.records}

    def setting(self, key: str, default: Any = None) -> Any:
        """A setting of the run (``model``, ``steps``, ``baseline``, ``quadrature``, ``method``,
        ``task`` ...): ``run.json``'s, else the first record's (runs that predate
        ``run.json``), else ``default``."""
        value = self.meta.get(key)
        if value is None and self.records:
            first = self.records[0]
            value = getattr(first, key, None) if key in ("task", "condition") else getattr(first.explanation, key, None)
        return default if value is None else value

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
        check_regular(file, "results file")
        if not file.is_file() and require_results:
            raise InputError(f"{path} is not a run directory: it has no {RESULTS}")
        meta = read_run_json(directory)
        run = cls(path=directory, meta=meta)
        if file.is_file():
            for number, row in _lines(file):
                run._add(f"{file} line {number}", number, row)
        return run

    @classmethod
    def from_rows(cls, rows: "Sequence[RunRecord | dict[str, Any]] | Run", meta: dict[str, Any] | None = None,
                  name: str = "the run", path: str | Path = ".") -> "Run":
        """A run from rows in memory (``RunRecord`` s or ``results.jsonl``-like dicts), checked
        as :meth:`open` checks a file's lines (errors name ``name`` and the row number).
        A dict without ``index`` takes its position in ``rows``. A ``Run`` is returned as is."""
        if isinstance(rows, Run):
            return rows
        run = cls(path=Path(path), meta=dict(meta or {}))
        run._unit = "row"
        for number, row in enumerate(rows, start=1):
            if isinstance(row, dict) and "index" not in row:
                row = {"index": number - 1, **row}
            run._add(f"{name} row {number}", number, row)
        return run

    def _add(self, where: str, number: int, row: Any) -> None:
        if isinstance(row, RunRecord):
            record, row = row, row.to_dict()
        elif not isinstance(row, dict):
            raise DataError(f"{where}: expected a JSON object, got {type(row).__name__}")
        else:
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
            raise DataError(f"{where}: index {i} appears twice (first on {self._unit} {self._seen[i]})")
        for key in ROW_SETTINGS:
            recorded, got = self.meta.get(key), row.get(key)
            if recorded is not None and got is not None and recorded != got:
                raise DataError(
                    f"{where}: {key} is {got!r} but {RUN_FILE} records {recorded!r}; "
                    "the file mixes settings"
                )
        e = record.explanation
        try:
            e.check()  # heads, positions, pattern lengths, finite QoI against the row's own model shape
        except ValueError as exc:
            raise DataError(f"{where}: {exc}") from None
        for key in MODEL_KEYS:
            recorded, got = self.meta.get(key), row.get(key)
            if recorded is not None and got is not None and recorded != got:
                raise DataError(
                    f"{where}: computed by another model ({key} {got[:12]}…, {RUN_FILE} records "
                    f"{str(recorded)[:12]}…); the file mixes models"
                )
            first = self._first_model.get(key)
            if got is not None and first is not None and first != got:
                raise DataError(
                    f"{where}: computed by another model than the rows before it ({key} {got[:12]}… vs "
                    f"{first[:12]}…); the file mixes models"
                )
        if self.records:
            first = self.records[0].explanation
            if (e.num_layers, e.num_heads) != (first.num_layers, first.num_heads):
                raise DataError(
                    f"{where}: a {e.num_layers}-layer {e.num_heads}-head model, but the first row "
                    f"has {first.num_layers} layers and {first.num_heads} heads"
                )
        self._seen[i] = number
        for key in MODEL_KEYS:
            if row.get(key) is not None:
                self._first_model.setdefault(key, row[key])
        self.records.append(record)
        self.rows.append(row)

    def to_dataframe(self, by: str = "piece") -> Any:
        """One row per (instance, source token), as a pandas DataFrame; ``by="word"``: one
        row per (instance, word) with ``Explanation.by_word()``'s columns (``word``,
        ``pieces``, ``source_indices``, sums of ``g`` and influences, the first piece's
        ``pattern``) after ``index``, ``task``, ``condition``, ``correct``, ``q`` and ``role``.

        Columns: ``index``, ``task``, ``condition``, ``correct`` (recorded, else QoI > 0),
        ``q`` (the QoI), ``source_index``, ``source_token``, ``role`` (the role of the
        source token, or ``None``), ``sign``, ``g``, ``influence_token`` (I(π^e)),
        ``influence_head`` (I(π^a)), ``pattern`` (``L1–3 skip → L4 H1@[MASK] → …``),
        ``positions``, ``heads`` (``None`` = skip).
        """
        import pandas as pd  # heavy; only this method needs it

        if by == "word":
            words = []
            for r in self.records:
                role_of = {int(t): role for role, t in reversed(list(r.roles.items()))}
                for w in r.explanation.by_word():
                    role = next((role_of[i] for i in w["source_indices"] if i in role_of), None)
                    words.append({"index": r.index, "task": r.task, "condition": r.condition,
                                  "correct": r.is_correct, "q": r.q, "role": role, **w})
            return pd.DataFrame(words)
        if by not in ("piece", "token"):
            raise InputError(f"by must be 'piece' or 'word', got {by!r}")
        rows = []
        for r in self.records:
            role_of = {int(t): role for role, t in reversed(list(r.roles.items()))}
            tokens = r.explanation.tokens
            for p in r.patterns:
                rows.append({
                    "index": r.index, "task": r.task, "condition": r.condition, "correct": r.is_correct,
                    "q": r.q, "source_index": p.source_index, "source_token": p.source_token,
                    "role": role_of.get(p.source_index), "sign": p.sign, "g": p.g,
                    "influence_token": p.influence_token, "influence_head": p.influence_head,
                    "pattern": p.text(tokens), "positions": list(p.positions), "heads": list(p.heads),
                })
        return pd.DataFrame(rows, columns=list(DATAFRAME_COLUMNS))

    def __post_init__(self) -> None:
        self._seen: dict[int, int] = {}
        self._first_model: dict[str, str] = {}  # the first row's fingerprint: every row must match it
        self._unit = "line"

    def __repr__(self) -> str:
        tasks = list(dict.fromkeys(r.task or "" for r in self.records))
        task = self.setting("task") if len(tasks) <= 1 else ", ".join(tasks)
        return f"Run({str(self.path)!r}, task={task!r}, model={self.setting('model')!r}, instances={len(self)})"

    def _repr_html_(self) -> str:
        """Notebook view: one row per task (n, accuracy, skip share, top pattern)."""
        from influence_patterns.viz.notebook import run_html

        return run_html(self)


def read_run_json(directory: str | Path) -> dict[str, Any]:
    """``run.json`` of ``directory`` as a dict; ``{}`` when there is none."""
    run_json = Path(directory) / RUN_FILE
    if not run_json.exists():
        return {}
    check_regular(run_json, "run file")
    try:
        data = run_json.read_bytes()
    except OSError as exc:
        raise DataError(f"{run_json}: cannot be read ({exc.strerror or exc})") from None
    meta = parse_json(data, str(run_json))
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
            reason = "not UTF-8 text" if isinstance(exc, UnicodeDecodeError) else f"not valid JSON ({exc.msg})"
            raise DataError(f"{file} line {number}: {reason}") from None
        except RecursionError:
            raise DataError(f"{file} line {number}: not usable JSON (nested too deeply)") from None
        yield number, row
