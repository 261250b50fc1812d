"""Explain a whole data set with GPR, one JSON line per instance, resumable.

A run directory holds::

    run.json       the options of the run (model, task, n, seed, steps, ...) and versions
    results.jsonl  one line per instance: ``Explanation.to_dict()`` plus ``index``,
                   ``task``, ``condition``, ``roles`` (role -> TOKEN index) and ``correct``

Lines are appended with one ``write`` + ``flush`` + ``fsync`` each, so a killed run
leaves at most one partial last line; the next start truncates it and carries on
with the indices not yet written. Instances are generated deterministically from
(task, n, seed, data), so the same command always means the same instances.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from influence_patterns.errors import DataError, InputError

RESULTS = "results.jsonl"
RUN_FILE = "run.json"

#: Options that must match when a run is resumed (they change the results).
RESUME_KEYS = (
    "model", "task", "n", "seed", "data", "data_sha256", "steps", "baseline",
    "method", "quadrature", "keep_special", "instances",
)


@dataclass
class RunOptions:
    """What a run computes. Recorded in ``run.json``; compared on resume."""

    model: str
    task: str
    n: int | None = None
    seed: int = 0
    data: str | None = None
    steps: int | None = None  # run_dataset records the resolved rule and size
    baseline: str = "mask"
    method: str = "fast"
    quadrature: str | None = None
    keep_special: bool = False
    data_sha256: str | None = None
    instances: int | None = None  # how many instances (n, seed, data) gives
    batch_size: int = 8
    device: str = "cpu"
    versions: dict[str, str] = field(default_factory=dict)


def versions() -> dict[str, str]:
    """Versions of the packages that shape the numbers."""
    import torch
    import transformers

    import influence_patterns

    return {
        "influence_patterns": getattr(influence_patterns, "__version__", "unknown"),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
    }


def _sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _model_key(model: str) -> str:
    """A checkpoint path is recorded absolute, so resuming from another cwd matches."""
    p = Path(model)
    return str(p.resolve()) if p.exists() else model


# --- the results file -------------------------------------------------------------


def repair_results(path: str | Path) -> int:
    """Truncate a partial last line of ``results.jsonl`` (a run killed mid-write).

    A complete last line that is not valid JSON is dropped too. Returns the number
    of bytes removed.
    """
    path = Path(path)
    if not path.is_file():
        return 0
    data = path.read_bytes()
    keep = len(data)
    if data and not data.endswith(b"\n"):
        keep = data.rfind(b"\n") + 1  # 0 when there is no complete line at all
    # The last complete line must parse; a torn write followed by nothing is dropped.
    body = data[:keep]
    if body:
        start = body.rfind(b"\n", 0, len(body) - 1) + 1
        try:
            json.loads(body[start:].decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            keep = start
    if keep < len(data):
        with open(path, "r+b") as f:
            f.truncate(keep)
            f.flush()
            os.fsync(f.fileno())
    return len(data) - keep


def read_results(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a run (directory or ``results.jsonl``), in file order.

    A partial last line is ignored; a malformed line elsewhere is a ``DataError``.
    """
    path = Path(path)
    file = path / RESULTS if path.is_dir() else path
    if not file.is_file():
        raise InputError(f"{path} is not a run directory: it has no {RESULTS}")
    text = file.read_text(encoding="utf-8")
    lines = text.split("\n")
    complete = text.endswith("\n")
    rows = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        last = number == len(lines) or (number == len(lines) - 1 and complete)
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            if last:
                break  # a torn final write; `run` repairs it on resume
            raise DataError(f"{file} line {number}: not valid JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise DataError(f"{file} line {number}: expected a JSON object")
        rows.append(row)
    return rows


def read_run(path: str | Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """``(rows, run.json)`` of a run directory (``run.json`` may be missing: ``{}``)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"no such run directory: {path}")
    rows = read_results(path)
    run_json = (path if path.is_dir() else path.parent) / RUN_FILE
    meta: dict[str, Any] = {}
    if run_json.is_file():
        try:
            meta = json.loads(run_json.read_text())
        except json.JSONDecodeError as exc:
            raise DataError(f"{run_json}: not valid JSON ({exc.msg})") from None
    return rows, meta


def _append_line(fd: int, row: dict[str, Any]) -> None:
    """One line, one write, then fsync: a crash leaves whole lines plus at most one torn one."""
    data = (json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8")
    written = 0
    while written < len(data):  # os.write may write less only on exotic file systems
        written += os.write(fd, data[written:])
    os.fsync(fd)


# --- roles: word index -> token index ------------------------------------------------


def role_token_indices(tokenizer: Any, text: str, roles: dict[str, int], tokens: Sequence[str]) -> dict[str, int]:
    """Map roles given as WORD indices of ``text.split()`` to the index of that word's
    first word piece in ``tokens`` (the explanation's tokens, specials included).

    A fast tokenizer's character offsets place each word (any scheme: WordPiece,
    byte-level BPE, SentencePiece); otherwise the words are tokenized one by one as
    they stand in the sentence. ``[MASK]`` is read as the tokenizer's own mask token.
    Roles that cannot be placed are left out.
    """
    if not roles:
        return {}
    from influence_patterns.attribution.inputs import with_mask_token

    text = with_mask_token(tokenizer, text)
    first = _first_pieces_by_offsets(tokenizer, text, tokens) or _first_pieces_by_words(tokenizer, text, tokens)
    return {role: first[int(w)] for role, w in roles.items() if int(w) in first}


def _first_pieces_by_offsets(tokenizer: Any, text: str, tokens: Sequence[str]) -> dict[int, int]:
    if not getattr(tokenizer, "is_fast", False):
        return {}
    enc = tokenizer(text, add_special_tokens=True, return_offsets_mapping=True)
    if tokenizer.convert_ids_to_tokens(enc["input_ids"]) != list(tokens):
        return {}
    special = set(tokenizer.all_special_ids) - {tokenizer.mask_token_id}
    first: dict[int, int] = {}
    spans = [m.span() for m in re.finditer(r"\S+", text)]
    for w, (a, b) in enumerate(spans):
        for t, ((s, e), i) in enumerate(zip(enc["offset_mapping"], enc["input_ids"])):
            if e > s and s < b and e > a and i not in special:
                first[w] = t
                break
    return first if len(first) == len(spans) else {}


def _first_pieces_by_words(tokenizer: Any, text: str, tokens: Sequence[str]) -> dict[int, int]:
    starts = {getattr(tokenizer, "cls_token", None), getattr(tokenizer, "bos_token", None)} - {None}
    offset = 1 if tokens and tokens[0] in starts else 0
    specials = set(getattr(tokenizer, "all_special_tokens", ()))
    first: dict[int, int] = {}
    pieces: list[str] = []
    for w, word in enumerate(text.split()):
        first[w] = offset + len(pieces)
        if word in specials:
            pieces.append(word)
        else:  # after the first word, as it stands in the sentence (byte-level BPE marks the space)
            pieces += tokenizer.tokenize(word if w == 0 else " " + word)
    if list(tokens[offset : offset + len(pieces)]) != pieces:
        return {}
    return first


# --- the run -------------------------------------------------------------------------


def load_run_instances(task: str, n: int | None, seed: int, data: str | Path | None) -> list[Any]:
    """The instances of a run, deterministic in (task, n, seed, data)."""
    from influence_patterns.tasks.registry import get_task

    spec = get_task(task)
    instances = spec.load(n, seed, data)
    if not instances:
        raise DataError(f"task {task} gave no instances")
    return instances


def _check_resume(out: Path, opts: RunOptions) -> None:
    recorded = json.loads((out / RUN_FILE).read_text())
    now = asdict(opts)
    diffs = [
        f"{k}: recorded {recorded.get(k)!r}, now {now.get(k)!r}"
        for k in RESUME_KEYS
        if recorded.get(k) != now.get(k)
    ]
    if diffs:
        raise InputError(
            f"{out} holds a run with other options ({'; '.join(diffs)}); "
            "use the same options to resume, or another --out directory"
        )


def _write_run_json(out: Path, opts: RunOptions) -> None:
    tmp = out / (RUN_FILE + ".tmp")
    tmp.write_text(json.dumps(asdict(opts), indent=2) + "\n")
    os.replace(tmp, out / RUN_FILE)


def _done_indices(results: Path, total: int) -> set[int]:
    done: set[int] = set()
    for row in read_results(results) if results.exists() else []:
        i = row.get("index")
        if not isinstance(i, int) or not 0 <= i < total:
            raise DataError(f"{results}: a row has index {i!r}, not one of 0..{total - 1}")
        done.add(i)
    return done


def run_dataset(
    task: str,
    model: str,
    out: str | Path,
    n: int | None = None,
    seed: int = 0,
    data: str | Path | None = None,
    batch_size: int = 8,
    steps: int | None = None,
    baseline: str = "mask",
    method: str = "fast",
    quadrature: str | None = None,
    keep_special: bool = False,
    device: str = "auto",
    max_rows: int | None = None,
    progress: bool | Callable[[int, int], None] = True,
    explainer: Any = None,
    backend: str = "local",
    workers: int = 1,
    address: str | None = None,
) -> Path:
    """Explain every instance of ``task`` with GPR and append them to ``out/results.jsonl``.

    Started again with the same options it resumes: indices already written are
    skipped, a torn last line is truncated. Different options raise ``InputError``.
    ``progress``: ``True`` for a progress bar, ``False`` for none, or a callable
    ``(done, total)``. ``explainer``: an ``Explainer`` to use instead of loading
    ``model`` (``model`` is then only recorded). ``backend``: ``local`` or ``ray``
    (``workers`` actors, on the cluster at ``address`` if given); lines are written in
    instance order either way. Returns the results path.
    """
    if batch_size < 1:
        raise InputError(f"--batch-size must be at least 1, got {batch_size}")
    if n is not None and n < 1:
        raise InputError(f"--n must be at least 1, got {n}")
    if data is not None and not Path(data).is_file():
        raise InputError(f"data file not found: {data}")
    from influence_patterns.attribution.quadrature import DEFAULT_QUADRATURE, QUADRATURES, default_steps

    quadrature = quadrature or DEFAULT_QUADRATURE
    if quadrature not in QUADRATURES:
        raise InputError(f"unknown quadrature {quadrature!r}; choose one of {', '.join(QUADRATURES)}")
    steps = default_steps(steps, quadrature)
    instances = load_run_instances(task, n, seed, data)
    opts = RunOptions(
        model=_model_key(model), task=task, n=n, seed=seed,
        data=str(Path(data).resolve()) if data is not None else None,
        data_sha256=_sha256(data) if data is not None else None,
        steps=steps, baseline=baseline, method=method, quadrature=quadrature,
        keep_special=keep_special, instances=len(instances), batch_size=batch_size,
        device=device, versions=versions(),
    )
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} exists and is not a directory")
    results = out / RESULTS
    if (out / RUN_FILE).is_file():
        _check_resume(out, opts)
    elif results.exists() and results.stat().st_size > 0:
        raise InputError(f"{out} has {RESULTS} but no {RUN_FILE}; use another --out directory")
    out.mkdir(parents=True, exist_ok=True)
    repair_results(results)
    done = _done_indices(results, len(instances))
    todo = [i for i in range(len(instances)) if i not in done]
    if not (out / RUN_FILE).is_file():
        _write_run_json(out, opts)
    if not todo:
        return results

    if explainer is None:
        from influence_patterns.explainer import Explainer

        explainer = Explainer.from_pretrained(
            model, device=device, steps=steps, baseline=baseline, method=method,
            quadrature=quadrature, keep_special=keep_special, max_rows=max_rows,
        )
    _check_kind(explainer, instances)
    from influence_patterns.backends import make_backend

    chunks = [todo[start : start + batch_size] for start in range(0, len(todo), batch_size)]
    runner = make_backend(backend, explainer, workers=workers, address=address)
    reporter = _Reporter(progress, len(instances), len(done))
    fd = os.open(results, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        with reporter:
            batches = [[_query(instances[i]) for i in chunk] for chunk in chunks]
            sources_done = reporter.sources_done if backend == "local" else None
            results_iter = runner.map(batches, progress=sources_done)
            for chunk, queries in zip(chunks, batches):
                if backend == "local":
                    total_sources = sum(len(s) for s in explainer.prepare(queries).sources) or 1
                    reporter.begin_chunk(len(chunk), total_sources)
                else:
                    reporter.begin_chunk(len(chunk), 1)
                _write_chunk(explainer, instances, chunk, next(results_iter), fd)
                reporter.end_chunk()
    finally:
        os.close(fd)
        runner.close()
    return results


def _check_kind(explainer: Any, instances: list[Any]) -> None:
    needs_targets = explainer.kind == "mlm"
    if needs_targets and any(inst.targets is None for inst in instances):
        raise InputError("the model is a masked LM but the task's instances have no targets")
    if not needs_targets and any(inst.targets is not None for inst in instances):
        raise InputError("the model is a classifier but the task is a masked-agreement task")


def _query(inst: Any) -> Any:
    from influence_patterns.attribution.inputs import Query

    return Query(inst.text, inst.targets, inst.label)


def _write_chunk(explainer: Any, instances: list[Any], chunk: list[int], explanations: list[Any], fd: int) -> None:
    for i, expl in zip(chunk, explanations):
        inst = instances[i]
        row = {"index": i, **expl.to_dict()}
        row["task"] = inst.task
        row["condition"] = inst.condition
        row["roles"] = role_token_indices(explainer.tokenizer, inst.text, inst.roles, expl.tokens)
        row["correct"] = expl.correct
        _append_line(fd, row)


class _Reporter:
    """Instances done, rate and time left (rich), fractional within a batch."""

    def __init__(self, progress: bool | Callable[[int, int], None], total: int, done: int) -> None:
        self.callback = progress if callable(progress) else None
        self.show = progress is True
        self.total, self.done, self.initial = total, done, done
        self.bar: Any = None
        self.task: Any = None
        self.per_source = 0.0
        self.started = time.monotonic()

    def __enter__(self) -> "_Reporter":
        if self.show:
            from rich.progress import (
                BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn,
                TimeElapsedColumn, TimeRemainingColumn,
            )

            self.bar = Progress(
                TextColumn("explaining"), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(),
                TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("left"),
                TimeRemainingColumn(),
            )
            self.bar.__enter__()
            self.task = self.bar.add_task("run", total=self.total, completed=self.done, rate="")
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)

    def begin_chunk(self, instances: int, sources: int) -> None:
        self.chunk_start = self.done
        self.per_source = instances / sources
        self.chunk_size = instances

    def sources_done(self, k: int) -> None:
        if self.bar is not None:
            self.bar.advance(self.task, k * self.per_source)

    def end_chunk(self) -> None:
        self.done = self.chunk_start + self.chunk_size
        if self.bar is not None:
            elapsed = max(time.monotonic() - self.started, 1e-9)
            rate = f"{(self.done - self.initial) / elapsed:.2f} inst/s"
            self.bar.update(self.task, completed=self.done, rate=rate)
        if self.callback is not None:
            self.callback(self.done, self.total)
