"""Data loaders: Marvin & Linzen TSV, SST-2 TSV, and generic user files (JSONL / TSV).

Every malformed line raises :class:`~influence_patterns.errors.DataError` naming the
file and the line number. Files ending in ``.gz`` are read (and written) gzipped.
"""

from __future__ import annotations

import gzip
import json
import warnings
from pathlib import Path
from typing import IO, Iterable, Iterator, NamedTuple

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
    path = Path(path)
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


def _check_masked(path: Path, number: int, text: str) -> None:
    count = text.split().count(MASK)
    if count != 1:
        raise _error(path, number, f"text must contain exactly one whitespace-separated {MASK} "
                     f"when targets are given, found {count}")


def _instance_from_json(path: Path, number: int, line: str) -> Instance:
    try:
        d = json.loads(line)
    except json.JSONDecodeError as exc:
        raise _error(path, number, f"bad JSON: {exc.msg} (column {exc.colno})") from None
    except RecursionError:
        raise _error(path, number, "bad JSON: nested too deeply") from None
    if not isinstance(d, dict):
        raise _error(path, number, f"expected a JSON object, got {type(d).__name__}")
    text = d.get("text")
    if not isinstance(text, str) or not text.strip():
        raise _error(path, number, "missing or empty 'text'")
    targets, label = d.get("targets"), d.get("label")
    if targets is None and label is None:
        raise _error(path, number, "needs 'targets' (good, bad) or 'label'")
    if targets is not None:
        if (
            not isinstance(targets, list)
            or len(targets) != 2
            or not all(isinstance(t, str) and t.strip() for t in targets)
        ):
            raise _error(path, number, "'targets' must be a list of two non-empty strings")
        _check_masked(path, number, text)
    if label is not None and (not isinstance(label, int) or isinstance(label, bool)):
        raise _error(path, number, f"label must be an integer, got {label!r}")
    roles = d.get("roles") or {}
    n_words = len(text.split())
    if not isinstance(roles, dict) or not all(
        isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool) and 0 <= v < n_words
        for k, v in roles.items()
    ):
        raise _error(path, number, f"'roles' must map names to word indices in 0..{n_words - 1}")
    for key in ("task", "condition"):
        if not isinstance(d.get(key, ""), str):
            raise _error(path, number, f"'{key}' must be a string")
    return Instance.from_dict(d)


def _load_jsonl(path: Path) -> list[Instance]:
    return [_instance_from_json(path, number, line) for number, line in _lines(path)]


def _load_tsv(path: Path) -> list[Instance]:
    lines = _lines(path)
    number, header = _header(path, lines)
    if tuple(header) == ML_HEADER:
        return load_marvin_linzen(path).instances
    has_targets = "good" in header and "bad" in header
    if "text" not in header or not (has_targets or "label" in header):
        raise _error(
            path, number,
            "header must have 'text' and either 'good' and 'bad' or 'label' "
            f"(or be 'task, condition, good, bad'), got {', '.join(header)}",
        )
    if len(set(header)) != len(header):
        raise _error(path, number, "duplicate column names in header")
    col = {name: i for i, name in enumerate(header)}
    out = []
    for number, line in lines:
        fields = line.split("\t")
        if len(fields) != len(header):
            raise _error(
                path, number,
                f"expected {len(header)} tab-separated fields ({', '.join(header)}), got {len(fields)}",
            )
        get = lambda name: fields[col[name]].strip() if name in col else ""  # noqa: E731
        text = get("text")
        if not text:
            raise _error(path, number, "empty text")
        targets = None
        if has_targets:
            good, bad = get("good"), get("bad")
            if not good or not bad:
                raise _error(path, number, "empty good or bad target")
            _check_masked(path, number, text)
            targets = (good, bad)
        label = _parse_label(path, number, get("label")) if "label" in col else None
        out.append(
            Instance(text=text, targets=targets, label=label, task=get("task"), condition=get("condition"))
        )
    return out


def load_instances(path: str | Path) -> list[Instance]:
    """Load a user data file: ``.jsonl`` (``Instance.to_dict`` objects) or ``.tsv``.

    A TSV needs a header with ``text`` and either ``good`` + ``bad`` (masked LM, the
    text has one ``[MASK]``) or ``label`` (classification), optional ``task`` and
    ``condition``; a Marvin & Linzen header (``task, condition, good, bad``) is
    detected and read with :func:`load_marvin_linzen`. TSV rows get no roles.
    """
    path = Path(path)
    name = path.name[:-3] if path.name.endswith(".gz") else path.name
    if name.endswith(".jsonl"):
        return _load_jsonl(path)
    if name.endswith(".tsv"):
        return _load_tsv(path)
    raise DataError(f"{path}: unsupported file type (expected .jsonl or .tsv)")


def load_data(path: str | Path) -> LoadResult:
    """:func:`load_instances`, keeping the rows it skipped: a Marvin & Linzen file's pairs
    that do not differ in exactly one word (other formats skip nothing)."""
    path = Path(path)
    name = path.name[:-3] if path.name.endswith(".gz") else path.name
    if name.endswith(".tsv"):
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
