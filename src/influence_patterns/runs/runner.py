"""Explain a whole data set with GPR, one JSON line per instance, resumable.

A run directory holds::

    run.json       the options of the run (model, task, n, seed, steps, ...) and versions
    results.jsonl  one line per instance: a ``RunRecord`` (``Explanation.to_dict()`` plus
                   ``index``, ``task``, ``condition``, ``roles`` and ``correct``)
    run.lock       while a writer runs: its pid, for the message a second writer gets (the
                   lock itself is a flock on the directory: deleting this file changes nothing)

Lines are appended with one ``write`` + ``fsync`` each, so a killed run leaves at most
one partial last line; the next start truncates it and carries on with the indices not
yet written. Instances are generated deterministically from (task, n, seed, data), so
the same command always means the same instances. Everything is validated (options,
data, model, every instance, the backend, the existing run, that the directory can be
written) before the first byte is written: a refused run leaves nothing behind. The
model's fingerprint (sha256 of its weights and config) is recorded in run.json and every
row; a resume with other weights is refused. Before every append the writer checks
that it still owns the directory and that results.jsonl is still the file it opened.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Callable

from influence_patterns import threads
from influence_patterns.config import ExplainConfig
from influence_patterns.errors import DataError, InfluencePatternsError, InputError, OutputError
from influence_patterns.fileio import check_regular, check_writable, dumps, output_error, synced, write_json
from influence_patterns.progress import open_bar
from influence_patterns.runs.lock import RunLock
from influence_patterns.runs.options import (
    MODEL_KEYS, RESULTS, RESUME_KEYS, RUN_FILE, BackendOptions, RunOptions, versions,
)
from influence_patterns.runs.reader import Run, read_run_json
from influence_patterns.runs.record import RunRecord
from influence_patterns.runs.roles import role_token_indices

Progress = bool | None | Callable[[int, int], None]


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
        with synced(path, "r+b") as f:
            f.truncate(keep)
    return len(data) - keep


def _append_line(fd: int, path: Path, row: dict[str, Any], lock: RunLock | None = None) -> None:
    """One line, one write, then fsync: a crash leaves whole lines plus at most one torn one.
    With ``lock``: first check that this process still owns the run and that ``path`` is
    still the file ``fd`` writes (not deleted or replaced: the rows would be lost)."""
    if lock is not None:
        lock.check()
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except OSError:
            same = False
        if not same:
            raise OutputError(f"{path} was removed or replaced while this process wrote it; stopped writing")
    data = (dumps(row) + "\n").encode("utf-8")
    try:
        written = 0
        while written < len(data):  # os.write may write less only on exotic file systems
            written += os.write(fd, data[written:])
        os.fsync(fd)
    except OSError as exc:
        raise output_error(path, exc) from None


# --- the run -------------------------------------------------------------------------


def load_run_instances(task: str | None, n: int | None, seed: int, data: str | Path | None) -> list[Any]:
    """The instances of a run, deterministic in (task, n, seed, data): a registered task,
    a task of one's own (its rows of ``data``) or, ``task=None``, every task of ``data``."""
    from influence_patterns.tasks.registry import load_task

    if task is None and data is None:
        raise InputError("give a task, a data file, or both")
    instances = load_task(task, n, seed, data)
    if not instances:
        raise DataError(f"task {task} gave no instances")
    return instances


def resolve_options(options: RunOptions) -> tuple[RunOptions, list[Any]]:
    """Validate ``options`` and fill what ``run.json`` records; also return the instances.

    Writes nothing. Raises ``InputError`` naming the offending parameter.
    """
    if options.batch_size < 1:
        raise InputError(f"batch_size must be at least 1, got {options.batch_size}")
    if options.n is not None and options.n < 1:
        raise InputError(f"n must be at least 1, got {options.n}")
    data = options.data
    if data is not None:
        from influence_patterns.tasks.loaders import sample_path

        data = str(sample_path(data))
        if not Path(data).is_file():
            raise InputError(f"data file not found: {options.data}")
    config = ExplainConfig(steps=options.steps, baseline=options.baseline, keep_special=options.keep_special,
                           quadrature=options.quadrature, method=options.method)
    config.validate()  # steps, quadrature, baseline, method: the explainer's own checks
    instances = load_run_instances(options.task, options.n, options.seed, data)
    resolved = replace(
        options, model=_model_key(options.model), steps=config.steps, quadrature=config.quadrature,
        data=str(Path(data).resolve()) if data is not None else None,
        data_sha256=_sha256(data) if data is not None else None,
        instances=len(instances), versions=versions(),
    )
    return resolved, instances


def _check_resume(out: Path, recorded: dict[str, Any], opts: RunOptions) -> None:
    now = asdict(opts)
    diffs = [
        f"{k}: recorded {recorded.get(k)!r}, now {now.get(k)!r}"
        for k in RESUME_KEYS
        if recorded.get(k) != now.get(k)
    ]
    diffs += [  # the model's weights and config (known once it is loaded; older runs lack them)
        f"{k}: recorded {str(recorded[k])[:12]}…, now {str(now[k])[:12]}… (the model changed)"
        for k in MODEL_KEYS
        if recorded.get(k) is not None and now.get(k) is not None and recorded[k] != now[k]
    ]
    if diffs:
        raise InputError(
            f"{out} holds a run with other options ({'; '.join(diffs)}); "
            "use the same options to resume, or another output directory"
        )


def _existing(out: Path, opts: RunOptions) -> set[int]:
    """Indices already written in ``out`` (checked against run.json and ``opts``)."""
    if not out.exists():
        return set()
    if not out.is_dir():
        raise InputError(f"output directory {out} exists and is not a directory")
    results = out / RESULTS
    check_regular(results, "results file")
    check_regular(out / RUN_FILE, "run file")
    if not (out / RUN_FILE).is_file():
        if results.exists() and results.stat().st_size > 0:
            raise InputError(f"{out} has {RESULTS} but no {RUN_FILE}; use another output directory")
        return set()
    run = Run.open(out, require_results=False)
    _check_resume(out, run.meta, opts)
    return run.indices


def _check_explainer(explainer: Any, opts: RunOptions, instances: list[Any]) -> None:
    """The explainer computes what run.json will record, for instances it can explain."""
    cfg = explainer.config
    for key in ("steps", "baseline", "method", "quadrature", "keep_special"):
        if getattr(cfg, key) != getattr(opts, key):
            raise InputError(f"the explainer's {key} is {getattr(cfg, key)!r} but the run's is {getattr(opts, key)!r}")
    from influence_patterns.tasks.checks import check_instances, drop_unaligned_counterfactuals, prefix_forms
    from influence_patterns.tasks.registry import TASKS, check_task_kind

    if opts.task in TASKS:
        check_task_kind(TASKS[opts.task], explainer.kind)
    prefix_forms(explainer.kind, instances)  # a data file's masked rows, read by a decoder
    drop_unaligned_counterfactuals(explainer.tokenizer, instances)
    check_instances(explainer.kind, explainer.tokenizer, instances)


def run_dataset(
    options: RunOptions,
    out: str | Path,
    *,
    progress: Progress = None,
    explainer: Any = None,
    backend: BackendOptions | str | None = None,
    max_rows: int | None = None,
) -> Path:
    """Explain every instance of ``options.task`` with GPR into ``out/results.jsonl``.

    Started again with the same options it resumes: indices already written are
    skipped, a torn last line is truncated. Different options raise ``InputError``;
    a directory another process is writing raises ``InputError`` naming its pid.
    ``progress``: ``None`` for a bar on stderr when it is a terminal, ``True``/``False``
    to force it on/off, or a callable ``(done, total)``. ``explainer``: an ``Explainer`` to use instead of loading
    ``options.model`` (``model`` is then only recorded). ``backend``: where to compute
    (``BackendOptions``; lines are written in instance order either way). ``max_rows``:
    (source × α) rows per pass. Returns the results path.
    """
    if not isinstance(options, RunOptions):
        raise TypeError(f"run_dataset(options, out, ...) takes RunOptions, got {type(options).__name__}")
    if isinstance(backend, str):
        backend = BackendOptions(name=backend)
    backend = backend or BackendOptions()
    out = Path(out)

    from influence_patterns.runs.backends import check_backend

    check_backend(backend.name, backend.workers)
    opts, instances = resolve_options(options)
    done = _existing(out, opts)  # read-only checks first: a refused run writes nothing
    todo = [i for i in range(len(instances)) if i not in done]
    if todo:
        check_writable(out / RUN_FILE)  # before loading the model and computing anything
        if out.is_dir():
            RunLock(out).probe()  # another writer: refused now, not after loading the model
    if todo and explainer is None:
        from influence_patterns.explainer import Explainer

        explainer = Explainer.from_pretrained(
            options.model, device=opts.device, steps=opts.steps, baseline=opts.baseline, method=opts.method,
            quadrature=opts.quadrature, keep_special=opts.keep_special, max_rows=max_rows,
        )
    if explainer is not None:
        _check_explainer(explainer, opts, instances)
        opts = replace(opts, **explainer.fingerprint)
        if (out / RUN_FILE).is_file():
            _check_resume(out, read_run_json(out), opts)  # the same weights as the rows written so far
        _check_instances(explainer, instances, todo)  # every row that will be written, before the first

    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise output_error(out, exc) from None
    try:
        lock = RunLock(out).acquire()
    except Exception:
        if created:
            _remove_empty(out)
        raise
    with lock:
        results = out / RESULTS
        repair_results(results)
        done = _existing(out, opts)  # again, now that we own the directory
        if not (out / RUN_FILE).is_file():
            write_json(out / RUN_FILE, {**asdict(opts), "threads": threads.current()})  # not compared on resume
        todo = [i for i in range(len(instances)) if i not in done]
        if todo:
            _explain(explainer, instances, todo, len(done), results, opts.batch_size, backend, progress,
                     lock=lock, model={k: getattr(opts, k) for k in MODEL_KEYS})
    return results


def _check_instances(explainer: Any, instances: list[Any], todo: list[int], chunk: int = 64) -> None:
    """Every instance still to explain is one the explainer takes (text length, one
    [MASK], single-piece targets, label), checked before the first byte is written: a run
    never writes rows 1-6 and then fails at row 7 on every resume."""
    for start in range(0, len(todo), chunk):
        part = todo[start : start + chunk]
        try:
            explainer.prepare([_query(instances[i]) for i in part])
            continue
        except InfluencePatternsError:
            pass
        for i in part:  # name the first instance that is refused
            try:
                explainer.prepare([_query(instances[i])])
            except InfluencePatternsError as exc:
                text = instances[i].text
                shown = text if len(text) <= 60 else text[:57] + "..."
                raise DataError(f"instance {i} ({shown!r}) cannot be explained: {exc}") from None


def _explain(
    explainer: Any, instances: list[Any], todo: list[int], done: int, results: Path, batch_size: int,
    backend: BackendOptions, progress: Progress, lock: RunLock | None = None, model: dict[str, Any] | None = None,
) -> None:
    from influence_patterns.runs.backends import make_backend

    chunks = [todo[start : start + batch_size] for start in range(0, len(todo), batch_size)]
    runner = make_backend(backend.name, explainer, workers=backend.workers, address=backend.address)
    reporter = _Reporter(progress, len(instances), done)
    try:
        fd = os.open(results, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    except OSError as exc:
        runner.close()
        raise output_error(results, exc) from None
    try:
        with reporter:
            batches = [[_query(instances[i]) for i in chunk] for chunk in chunks]
            local = backend.name == "local"
            results_iter = runner.map(batches, progress=reporter.sources_done if local else None)
            for chunk, queries in zip(chunks, batches):
                if local:
                    total_sources = sum(len(s) for s in explainer.prepare(queries).sources) or 1
                    reporter.begin_chunk(len(chunk), total_sources)
                else:
                    reporter.begin_chunk(len(chunk), 1)
                for i, expl in zip(chunk, next(results_iter)):
                    _append_line(fd, results, _record(explainer, instances[i], i, expl, model).to_dict(), lock)
                reporter.end_chunk()
    finally:
        os.close(fd)
        runner.close()


def _record(explainer: Any, inst: Any, index: int, expl: Any, model: dict[str, Any] | None = None) -> RunRecord:
    return RunRecord(
        index=index, explanation=expl, task=inst.task, condition=inst.condition,
        roles=role_token_indices(explainer.tokenizer, inst.text, inst.roles, expl.tokens),
        correct=expl.correct, counterfactual=getattr(inst, "counterfactual", None), **(model or {}),
    )


def _query(inst: Any) -> Any:
    from influence_patterns.attribution.inputs import Query

    return Query(inst.text, inst.targets, inst.label)


def _remove_empty(path: Path) -> None:
    try:
        path.rmdir()
    except OSError:
        pass  # not empty or not ours to remove: leave it


class _Reporter:
    """Instances done, rate and time left (progress.Bar on stderr), fractional within a batch."""

    def __init__(self, progress: Progress, total: int, done: int) -> None:
        self.callback = progress if callable(progress) else None
        self.total, self.done, self.initial = total, done, done
        self.bar = open_bar(total, "explaining", False if callable(progress) else progress, initial=done)
        self.per_source = 0.0
        self.started = time.monotonic()

    def __enter__(self) -> "_Reporter":
        self.bar.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.bar.__exit__(*exc)

    def begin_chunk(self, instances: int, sources: int) -> None:
        self.chunk_start = self.done
        self.per_source = instances / sources
        self.chunk_size = instances

    def sources_done(self, k: int) -> None:
        self.bar.advance(k * self.per_source)

    def end_chunk(self) -> None:
        self.done = self.chunk_start + self.chunk_size
        elapsed = max(time.monotonic() - self.started, 1e-9)
        self.bar.update(self.done, note=f"{(self.done - self.initial) / elapsed:.2f} inst/s")
        if self.callback is not None:
            self.callback(self.done, self.total)
