"""Data loaders: Marvin & Linzen TSV, SST-2 TSV, and generic user files (CSV / TSV / JSONL).

Every malformed line raises :class:`~influence_patterns.errors.DataError` naming the
file and the line number. Files ending in ``.gz`` are read (and written) gzipped.
"""

from __future__ import annotations

import csv
import difflib
import gzip
import json
import warnings
from pathlib import Path
from typing import IO, Callable, Iterable, Iterator, NamedTuple

from influence_patterns.data import sst2_path
from influence_patterns.errors import DataError
from influence_patterns.fileio import atomic_path
from influence_patterns.tasks.instance import MASK, Instance
from influence_patterns.tasks.templates import TEMPLATES

ML_HEADER = ("task", "condition", "good", "bad")
SST2_TASK = "sa/sst2"
REFLEXIVES = frozenset({"himself", "herself", "itself", "themselves"})

# Marvin & Linzen task name -> our task name (exact names), from the template table.
ML_TASKS: dict[str, str] = {ml: t.name for t in TEMPLATES for ml in t.ml_names}
# Marvin & Linzen task-name prefixes (``_anim`` / ``_inanim`` variants) -> our task name.
ML_TASK_PREFIXES: dict[str, str] = {ml: t.name for t in TEMPLATES for ml in t.ml_prefixes}
# Tasks whose agreeing noun is the second noun phrase (the first is the attractor).
_SECOND_NP_SUBJECT = frozenset(t.name for t in TEMPLATES if t.second_np_subject)
# First words of two-word nouns ("taxi driver"): the head is the next word.
_NOUN_MODIFIERS = frozenset({"taxi", "security", "television"})


class LoadResult(NamedTuple):
    """Loaded instances plus the rows skipped as ``(line number, reason)``."""

    instances: list[Instance]
    skipped: list[tuple[int, str]]


def _open_text(path: Path, mode: str = "rt") -> IO[str]:
    encoding = "utf-8-sig" if "r" in mode else "utf-8"  # a UTF-8 byte-order mark is read and dropped
    if path.name.endswith(".gz"):
        return gzip.open(path, mode, encoding=encoding)  # type: ignore[return-value]
    return open(path, mode, encoding=encoding, newline="" if "r" in mode else None)


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """Non-blank lines with their 1-based line numbers, line endings stripped.

    A file that is not UTF-8 text (latin-1, UTF-16, binary) is a ``DataError`` naming
    the file, the line and the encoding problem."""
    try:
        with (gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb")) as f:
            for number, raw in enumerate(f, start=1):  # decoded line by line: errors name their own line
                if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                    raw = raw[3:]  # a UTF-8 byte-order mark is read and dropped
                if b"\x00" in raw:
                    raise _error(path, number, "not a text file (it holds NUL bytes; UTF-16 or binary?); save it as UTF-8")
                try:
                    line = raw.decode("utf-8").rstrip("\r\n")
                except UnicodeDecodeError as exc:
                    byte = exc.object[exc.start : exc.start + 1].hex()
                    raise _error(
                        path, number, f"not UTF-8 text (byte 0x{byte}: {exc.reason}); save the file as UTF-8"
                    ) from None
                if line.strip():
                    yield number, line
    except (gzip.BadGzipFile, EOFError) as exc:
        raise DataError(f"{path}: not a readable gzip file ({exc})") from None


def _error(path: Path, line: int, message: str) -> DataError:
    return DataError(f"{path} line {line}: {message}")


def _header(path: Path, lines: Iterator[tuple[int, str]]) -> tuple[int, list[str]]:
    try:
        number, line = next(lines)
    except StopIteration:
        raise DataError(f"{path}: file is empty (expected a header line)") from None
    return number, [c.strip().lower() for c in line.split("\t")]


def header_of(path: str | Path) -> list[str]:
    """The first non-blank line of a tab-separated file, lower-cased and split at tabs."""
    path = Path(path)
    return _header(path, _lines(path))[1]


def map_ml_task(name: str) -> str:
    """Our task name for a Marvin & Linzen task name (unknown names are kept as they are)."""
    if name in ML_TASKS:
        return ML_TASKS[name]
    for prefix, ours in ML_TASK_PREFIXES.items():
        if name == prefix or name.startswith(prefix + "_"):
            return ours
    return name


def _noun_phrases(words: list[str], stop: int) -> list[tuple[int, int]]:
    """Best-effort ``(det, head noun)`` indices of the ``the ...`` phrases before ``stop``."""
    phrases = []
    for j in range(stop):
        if words[j] == "the" and j + 1 < stop:
            head = j + 1
            if words[head] in _NOUN_MODIFIERS and head + 1 < stop:
                head += 1
            phrases.append((j, head))
    return phrases


def infer_roles(words: list[str], mask: int, task: str) -> dict[str, int]:
    """Roles of a Marvin & Linzen sentence (best effort; see :func:`load_marvin_linzen`)."""
    roles = {"reflexive" if task.startswith("ra/") else "verb": mask}
    nps = _noun_phrases(words, mask)
    if not nps:
        return roles
    if task in _SECOND_NP_SUBJECT and len(nps) >= 2:
        subject, attractor = nps[1], nps[0]
    else:
        subject, attractor = nps[0], (nps[1] if len(nps) >= 2 else None)
    roles["det"], roles["subject"] = subject
    if attractor is not None:
        roles["attractor_det"], roles["attractor"] = attractor
    return roles


def load_marvin_linzen(path: str | Path) -> LoadResult:
    """Load a Marvin & Linzen TSV (header ``task, condition, good, bad``).

    The one whitespace word where ``good`` and ``bad`` differ becomes ``[MASK]``
    with ``targets = (good word, bad word)``. Rows that differ in more than one word,
    or in length, are skipped, reported in ``skipped`` and in one warning.
    ``task`` is mapped to our names (``obj_rel_across_anim`` -> ``sva/obj_rel_across``)
    and ``condition`` keeps the original as ``"{orig_task}:{orig_condition}"``.

    Roles (best effort): ``verb`` or ``reflexive`` is the mask; the head nouns are
    the words after each ``the`` before the mask (skipping a compound modifier such
    as ``taxi``); ``subject`` is the first of them, or the second for the
    sentential-complement and object-relative "within" tasks where the embedded
    noun agrees; ``attractor`` is the other one (when there are two); ``det`` and
    ``attractor_det`` are their ``the``.
    """
    path = sample_path(path)
    lines = _lines(path)
    number, header = _header(path, lines)
    if tuple(header) != ML_HEADER:
        raise _error(path, number, f"expected header 'task, condition, good, bad', got {', '.join(header)}")
    instances: list[Instance] = []
    skipped: list[tuple[int, str]] = []
    for number, line in lines:
        fields = line.split("\t")
        if len(fields) != 4:
            raise _error(
                path, number,
                f"expected 4 tab-separated fields (task, condition, good, bad), got {len(fields)}",
            )
        orig_task, orig_cond, good, bad = (f.strip() for f in fields)
        if not good or not bad:
            raise _error(path, number, "empty good or bad sentence")
        gw, bw = good.split(), bad.split()
        if len(gw) != len(bw):
            skipped.append((number, f"good and bad differ in length ({len(gw)} vs {len(bw)} words)"))
            continue
        diff = [i for i, (g, b) in enumerate(zip(gw, bw)) if g != b]
        if len(diff) != 1:
            skipped.append((number, f"good and bad differ in {len(diff)} words, expected 1"))
            continue
        i = diff[0]
        task = map_ml_task(orig_task)
        words = gw[:i] + [MASK] + gw[i + 1:]
        instances.append(
            Instance(
                text=" ".join(words),
                targets=(gw[i], bw[i]),
                task=task,
                condition=f"{orig_task}:{orig_cond}",
                roles=infer_roles(words, i, task),
                origin=f"{path} line {number}",
            )
        )
    if skipped:
        shown = ", ".join(str(n) for n, _ in skipped[:10])
        more = "" if len(skipped) <= 10 else ", ..."
        warnings.warn(
            f"{path}: skipped {len(skipped)} row(s) whose good and bad sentences do not "
            f"differ in exactly one word (lines {shown}{more})",
            stacklevel=2,
        )
    return LoadResult(instances, skipped)


def _parse_label(path: Path, number: int, value: str) -> int:
    try:
        return int(value.strip())
    except ValueError:
        raise _error(path, number, f"label must be an integer, got {value.strip()!r}") from None


def load_sst2(path: str | Path, limit: int | None = None) -> list[Instance]:
    """Load SST-2 ``text<TAB>label`` (label 0/1, header optional) as task ``sa/sst2``.

    ``condition`` is ``neg`` or ``pos``; ``limit`` keeps the first ``limit`` rows.
    """
    path = Path(path)
    out: list[Instance] = []
    for number, line in _lines(path):
        if limit is not None and len(out) >= limit:
            break
        if "\t" not in line:
            raise _error(path, number, "expected 2 tab-separated fields (text, label), got 1")
        _not_agreement(path, number, line, first=not out)
        text, label_s = line.rsplit("\t", 1)
        if not out and label_s.strip().lower() == "label":
            continue  # header
        label = _parse_label(path, number, label_s)
        if label not in (0, 1):
            raise _error(path, number, f"label must be 0 or 1, got {label}")
        text = text.strip()
        if not text:
            raise _error(path, number, "empty text")
        out.append(
            Instance(text=text, label=label, task=SST2_TASK, condition=("neg", "pos")[label])
        )
    return out


def _not_agreement(path: Path, number: int, line: str, first: bool) -> None:
    """A masked-agreement file given to an SST-2 task is named as such, not read as data."""
    fields = [c.strip().lower() for c in line.split("\t")]
    if (first and {"good", "bad"} <= set(fields)) or MASK in line.split():
        raise _error(
            path, number,
            "this is a masked-agreement file (a [MASK] with good/bad targets), not SST-2 text<TAB>label; "
            "use it with an agreement task (e.g. the task sva/prep) or give an SST-2 file",
        )


def read_sst2(split: str) -> list[tuple[str, int]]:
    """The SST-2 ``split`` shipped with the package ("train" or "dev") as ``(text, label)`` pairs."""
    return [(inst.text, int(inst.label)) for inst in load_sst2(sst2_path(split)) if inst.label is not None]


# --- the generic format: CSV, TSV (with a header) and JSONL -----------------------------

#: Columns (CSV/TSV) of the generic format; any other column names a role by its word.
COLUMNS = ("text", "good", "bad", "label", "task", "condition", "counterfactual")
#: Keys of a JSONL row.
JSON_KEYS = ("text", "targets", "label", "task", "condition", "roles", "counterfactual")
#: Names that look like columns of the format but are not (a role is never called so).
_NOT_ROLES = frozenset({"targets", "target", "sentence", "sentences", "roles", "role", "id", "index", "labels"})


def _where(path: Path, line: int, column: str | None) -> str:
    return f"{path} line {line}" + (f", column {column!r}" if column else "")


def _cell_error(path: Path, line: int, column: str | None, message: str) -> DataError:
    return DataError(f"{_where(path, line, column)}: {message}")


def _check_masked(path: Path, number: int, text: str, column: str = "text", masks: int | None = None) -> None:
    """A row with targets is a masked row (one ``[MASK]``, for a masked LM; a decoder
    reads it in prefix form) or a prefix row (none: good/bad continue the text, for a
    causal LM). ``masks``: the count the text has (a counterfactual must match it)."""
    count = text.split().count(MASK)
    if masks is not None and count != masks:
        form = "masked (one [MASK])" if masks else "a prefix (no [MASK])"
        raise _cell_error(path, number, column, f"the text is {form}, so the counterfactual must be too; "
                          f"found {count} {MASK}")
    if count > 1:
        raise _cell_error(path, number, column, f"text must contain at most one whitespace-separated {MASK} "
                          f"when targets are given (one: a masked row; none: a prefix row for a causal LM), "
                          f"found {count}")


def _loose(word: str) -> str:
    return word.strip(".,;:!?\"'()[]").lower() if word != MASK else word


def resolve_role(words: list[str], value: object) -> int:
    """The word index of a role given as a word (``keys``; ``the@2`` for its second
    occurrence) or as a word index; ``ValueError`` with the reason otherwise.

    A word matches exactly, else ignoring case and surrounding punctuation; without
    ``@k`` it is its first occurrence."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(f"a role is a word or a word index, got {value!r}")
    if isinstance(value, int):
        if not 0 <= value < len(words):
            raise ValueError(f"word index {value} is out of range 0..{len(words) - 1}")
        return value
    word, k = value.strip(), 1
    head, _, tail = word.rpartition("@")
    if head and tail.isdigit() and word not in words:
        word, k = head, int(tail)
        if k < 1:
            raise ValueError(f"{value!r}: occurrences are counted from 1 (word@1 is the first)")
    if len(word.split()) != 1:
        raise ValueError(f"{value!r} is ambiguous: a role is one word (the head word of a phrase)")
    hits = [i for i, w in enumerate(words) if w == word] or [
        i for i, w in enumerate(words) if _loose(w) == _loose(word)
    ]
    if not hits:
        raise ValueError(f"the word {word!r} is not in the sentence ({' '.join(words)})")
    if k > len(hits):
        raise ValueError(f"{value!r}: the word {word!r} occurs {len(hits)} time(s) in the sentence, not {k}")
    return hits[k - 1]


def _instance(path: Path, number: int, cells: dict[str, object], roles: dict[str, object],
              role_column: Callable[[str], str]) -> Instance:
    """One row of any spelling, checked; ``role_column(name)`` names a role's field in errors."""
    def fail(key: str | None, message: str) -> DataError:
        return _cell_error(path, number, key, message)

    text = cells.get("text")
    if not isinstance(text, str) or not text.strip():
        raise fail("text", "missing or empty text")
    text = " ".join(text.split())
    targets, label = cells.get("targets"), cells.get("label")
    if targets is None and label is None:
        raise fail(None, "needs targets (good and bad, masked LM) or a label (classifier)")
    if targets is not None and label is not None:
        raise fail("label", "give targets (good and bad, for a masked LM) or a label (for a classifier), not both")
    if targets is not None:
        _check_masked(path, number, text, "text")
    if label is not None and (not isinstance(label, int) or isinstance(label, bool) or label < 0):
        raise fail("label", f"label must be a class index (0, 1, ...), got {label!r}")
    for key in ("task", "condition"):
        if not isinstance(cells.get(key) or "", str):
            raise fail(key, f"{key} must be a string")
    counterfactual = cells.get("counterfactual") or None
    if counterfactual is not None:
        if not isinstance(counterfactual, str):
            raise fail("counterfactual", "counterfactual must be a string (a text)")
        counterfactual = " ".join(counterfactual.split())
        if targets is not None:
            _check_masked(path, number, counterfactual, "counterfactual", text.split().count(MASK))
    words = text.split()
    resolved: dict[str, int] = {}
    for name, value in roles.items():
        if value is None or value == "":
            continue
        try:
            resolved[name] = resolve_role(words, value)
        except ValueError as exc:
            raise fail(role_column(name), f"role {name!r}: {exc}") from None
    return Instance(
        text=text, targets=targets, label=label, task=str(cells.get("task") or "").strip(),
        condition=str(cells.get("condition") or "").strip(), roles=resolved, counterfactual=counterfactual,
        origin=f"{path} line {number}",
    )


def _instance_from_json(path: Path, number: int, line: str) -> Instance:
    try:
        d = json.loads(line)
    except json.JSONDecodeError as exc:
        raise _error(path, number, f"bad JSON: {exc.msg} (column {exc.colno})") from None
    except RecursionError:
        raise _error(path, number, "bad JSON: nested too deeply") from None
    if not isinstance(d, dict):
        raise _error(path, number, f"expected a JSON object, got {type(d).__name__}")
    unknown = [k for k in d if k not in JSON_KEYS]
    if unknown:
        raise _cell_error(path, number, unknown[0], f"unknown key (the keys are {', '.join(JSON_KEYS)}; "
                          "roles go under 'roles')")
    targets = d.get("targets")
    if targets is not None and (
        not isinstance(targets, list) or len(targets) != 2
        or not all(isinstance(t, str) and t.strip() and len(t.split()) == 1 for t in targets)
    ):
        raise _cell_error(path, number, "targets", "'targets' must be a list of two words [good, bad]")
    roles = d.get("roles") or {}
    if not isinstance(roles, dict):
        raise _cell_error(path, number, "roles", "'roles' must map role names to a word or a word index")
    cells = {**d, "targets": tuple(t.strip() for t in targets) if targets is not None else None}
    return _instance(path, number, cells, roles, lambda name: f"roles.{name}")


def _load_jsonl(path: Path) -> list[Instance]:
    return [_instance_from_json(path, number, line) for number, line in _lines(path)]


def _table_rows(path: Path, delimiter: str) -> Iterator[tuple[int, list[str]]]:
    """``(line number, fields)`` of a CSV (quoted fields, the csv module) or TSV (plain tabs)."""
    if delimiter == "\t":
        for number, line in _lines(path):
            yield number, line.split("\t")
        return
    lines = _lines(path)  # the encoding checks; csv reads the same text
    numbered = list(lines)
    reader = csv.reader([line for _, line in numbered])
    for (number, _), fields in zip(numbered, reader):
        yield number, fields


def _load_table(path: Path, delimiter: str) -> list[Instance]:
    kind = "tab" if delimiter == "\t" else "comma"
    rows = _table_rows(path, delimiter)
    try:
        number, raw = next(rows)
    except StopIteration:
        raise DataError(f"{path}: file is empty (expected a header line)") from None
    header = [c.strip().lower() for c in raw]
    if delimiter == "\t" and tuple(header) == ML_HEADER:
        return load_marvin_linzen(path).instances
    for i, name in enumerate(header, start=1):
        if not name:
            raise _cell_error(path, number, f"#{i}", "empty column name in the header")
        if name in _NOT_ROLES:
            hint = {"targets": "good and bad", "target": "good and bad", "labels": "label",
                    "sentence": "text", "sentences": "text"}.get(name)
            raise _cell_error(path, number, name, "unknown column" + (f" (did you mean {hint}?)" if hint else "")
                              + f"; the columns are {', '.join(COLUMNS)}, and any other column names a role by its word")
        close = difflib.get_close_matches(name, COLUMNS, n=1, cutoff=0.8)
        if name not in COLUMNS and close:
            raise _cell_error(path, number, name, f"unknown column (did you mean {close[0]}?); "
                              f"the columns are {', '.join(COLUMNS)}, and any other column names a role by its word")
    dupes = sorted({c for c in header if header.count(c) > 1})
    if dupes:
        raise _cell_error(path, number, dupes[0], "the column appears twice in the header")
    has_targets = "good" in header and "bad" in header
    if "text" not in header or not (has_targets or "label" in header) or (("good" in header) != ("bad" in header)):
        raise _error(
            path, number,
            "header must have 'text' and either 'good' and 'bad' or 'label' "
            + ("(or be 'task, condition, good, bad') " if delimiter == "\t" else "")
            + f"got {', '.join(header)}",
        )
    role_columns = [c for c in header if c not in COLUMNS]
    out = []
    for number, fields in rows:
        if len(fields) != len(header):
            raise _error(path, number, f"expected {len(header)} {kind}-separated fields "
                         f"({', '.join(header)}), got {len(fields)}")
        cell = dict(zip(header, (f.strip() for f in fields)))
        cells: dict[str, object] = {k: cell.get(k, "") for k in ("text", "task", "condition", "counterfactual")}
        if has_targets and (cell["good"] or cell["bad"]):
            for key in ("good", "bad"):
                if not cell[key] or len(cell[key].split()) != 1:
                    raise _cell_error(path, number, key, f"{key} must be one word (the {key} target)")
            cells["targets"] = (cell["good"], cell["bad"])
        if "label" in cell and cell["label"]:
            try:
                cells["label"] = int(cell["label"])
            except ValueError:
                raise _cell_error(path, number, "label", f"label must be an integer, got {cell['label']!r}") from None
        roles = {name: cell[name] for name in role_columns}
        out.append(_instance(path, number, cells, roles, lambda key: key))
    return out


def _load_tsv(path: Path) -> list[Instance]:
    return _load_table(path, "\t")


def _load_csv(path: Path) -> list[Instance]:
    return _load_table(path, ",")


def data_format(path: str | Path) -> str:
    """``jsonl``, ``tsv`` or ``csv`` by the file name (``.gz`` allowed); ``DataError`` otherwise."""
    path = Path(path)
    name = path.name[:-3] if path.name.endswith(".gz") else path.name
    for ext in ("jsonl", "tsv", "csv"):
        if name.lower().endswith("." + ext):
            return ext
    raise DataError(f"{path}: unsupported file type (expected .csv, .tsv or .jsonl, optionally .gz)")


def load_instances(path: str | Path) -> list[Instance]:
    """Load a user data file: ``.csv``, ``.tsv`` (both with a header) or ``.jsonl``
    (docs/data.md).

    A CSV/TSV header has ``text`` and either ``good`` + ``bad`` (masked LM: the text
    has one ``[MASK]``; a decoder reads such a row in prefix form; a text without
    ``[MASK]`` is a prefix row, for a causal LM only) or ``label`` (classifier), optional ``task``, ``condition`` and
    ``counterfactual``; any other column names a role by its word (``keys``, or
    ``the@2`` for the second ``the``). A JSONL row has the same keys, with
    ``targets: [good, bad]`` and ``roles: {name: word or word index}``. A Marvin &
    Linzen TSV (``task, condition, good, bad``) is read with :func:`load_marvin_linzen`.
    Every error names the file, the line and the column.
    """
    path = Path(sample_path(path))
    return {"jsonl": _load_jsonl, "tsv": _load_tsv, "csv": _load_csv}[data_format(path)](path)


#: Names of the data files shipped with the package, accepted wherever a data file is.
SAMPLES = {"ml-sample": "the Marvin & Linzen (2018) sample shipped with the package (320 rows)"}


def sample_path(path: str | Path) -> Path:
    """``ml-sample`` → the shipped Marvin & Linzen sample; any other path as it is."""
    if str(path) == "ml-sample" and not Path(path).exists():
        from influence_patterns.data import marvin_linzen_path

        return marvin_linzen_path()
    return Path(path)


def load_data(path: str | Path) -> LoadResult:
    """:func:`load_instances`, keeping the rows it skipped: a Marvin & Linzen file's pairs
    that do not differ in exactly one word (other formats skip nothing)."""
    path = sample_path(path)
    if data_format(path) == "tsv":
        _, header = _header(path, _lines(path))
        if tuple(header) == ML_HEADER:
            return load_marvin_linzen(path)
    return LoadResult(load_instances(path), [])


def save_instances(path: str | Path, instances: Iterable[Instance]) -> None:
    """Write instances as JSONL (one ``Instance.to_dict`` per line) for :func:`load_instances`."""
    path = Path(path)
    with atomic_path(path) as tmp, _open_text(tmp, "wt") as f:  # atomic: a failed write keeps the old file
        for inst in instances:
            f.write(json.dumps(inst.to_dict(), ensure_ascii=False) + "\n")
