"""Locking (issue 21): one writer per run directory and per model build, with one lock
scheme (``influence_patterns.locking``: a ``flock`` on the directory itself) that no
deleted file can defeat, checked before every append."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

from influence_patterns.cli import app
from influence_patterns.errors import InputError, OutputError
from influence_patterns.locking import DirectoryLock, is_locked
from influence_patterns.models import defaults
from influence_patterns.runs import LOCK_FILE, Run, RunLock, RunOptions, lock_owner, run_dataset

from conftest import run_args
from hostile_cases import listing, one_line_error

runner = CliRunner()
SRC = Path(__file__).resolve().parents[1] / "src" / "influence_patterns"

#: A light process (no torch) that takes the run lock of argv[1] and holds it.
HOLDER = ("import sys, time; from influence_patterns.locking import DirectoryLock; "
          "DirectoryLock(sys.argv[1], note='run.lock').acquire(); print('held', flush=True); time.sleep(60)")


@pytest.fixture
def holder(tmp_path):
    """A live process holding the lock of tmp_path/run."""
    out = tmp_path / "run"
    out.mkdir()
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(out)], stdout=subprocess.PIPE,
                            env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    try:
        assert proc.stdout.readline().strip() == b"held"
        yield out, proc
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()


def test_deleting_run_lock_does_not_let_a_second_writer_in(holder, checkpoint, data_file):  # noqa: F811
    """Issue 21: `rm run.lock` while a run writes let a second writer in (294 rows, 144
    duplicates). The lock is the directory's own flock: the note file is informational."""
    out, proc = holder
    assert lock_owner(out) == proc.pid
    (out / LOCK_FILE).unlink()
    line = one_line_error(runner.invoke(app, run_args(checkpoint, data_file, out, n=2)), "being written")
    assert "another process" in line  # the note is gone, the lock is not
    assert listing(out) == []  # refused before the model was loaded: nothing written
    with pytest.raises(InputError, match="being written"):
        RunLock(out).acquire()


def test_a_dead_writers_directory_is_free_at_once(holder, checkpoint, data_file):  # noqa: F811
    out, proc = holder
    proc.kill()
    proc.wait()
    assert lock_owner(out) == proc.pid  # its note is left behind, but the kernel dropped the lock
    assert not is_locked(out)
    result = runner.invoke(app, run_args(checkpoint, data_file, out, n=2))
    assert result.exit_code == 0, result.output
    assert not (out / LOCK_FILE).exists()
    assert [r["index"] for r in Run.open(out).rows] == [0, 1]


def test_two_locks_in_one_process_exclude_each_other(tmp_path):
    with RunLock(tmp_path):
        assert lock_owner(tmp_path) == os.getpid()
        (tmp_path / LOCK_FILE).unlink()
        with pytest.raises(InputError, match="being written"):
            RunLock(tmp_path).acquire()
        with pytest.raises(InputError, match="being written"):
            RunLock(tmp_path).probe()
    RunLock(tmp_path).acquire().release()  # free again
    assert listing(tmp_path) == []


def test_a_run_directory_moved_away_stops_the_writer(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    lock = RunLock(out).acquire()
    lock.check()
    out.rename(tmp_path / "elsewhere")
    out.mkdir()  # a fresh directory in its place: not the one locked
    with pytest.raises(OutputError, match="removed, moved or replaced"):
        lock.check()
    lock.release()
    with pytest.raises(OutputError, match="does not hold"):
        lock.check()


def test_results_deleted_while_a_run_writes_stops_it(checkpoint, data_file, tmp_path):  # noqa: F811
    """Rows appended to a deleted results.jsonl would be lost: the writer checks before
    every append that the file is still the one it opened."""
    out = tmp_path / "run"
    opts = RunOptions(model=str(checkpoint), task="sva/prep", n=3, data=str(data_file), steps=2, batch_size=1)

    def delete_after_first(done: int, total: int) -> None:
        if done == 1:
            (out / "results.jsonl").unlink()

    with pytest.raises(OutputError, match="results.jsonl was removed or replaced"):
        run_dataset(opts, out, progress=delete_after_first)
    assert not (out / "results.jsonl").exists()  # nothing written to the orphan's replacement
    assert not (out / LOCK_FILE).exists()
    run_dataset(opts, out, progress=False)  # resumes from nothing
    assert [r["index"] for r in Run.open(out).rows] == [0, 1, 2]


# --- model builds -------------------------------------------------------------------------


def test_abandoned_build_directories_are_removed_and_live_ones_kept(tmp_path):
    """A killed build leaves its .NAME.building-* directory; the next build removes it,
    but not one whose build still holds its lock (no pid, no clock: the flock decides)."""
    dead, live, other = (tmp_path / f".default-mlm.building-{s}" for s in ("dead", "live", "x"))
    other = tmp_path / ".default-sst2.building-dead"
    for d in (dead, live, other):
        d.mkdir()
        (d / "model.safetensors").write_bytes(b"partial")
    with DirectoryLock(live):
        removed = defaults.remove_abandoned_builds(tmp_path, "default-mlm")
    assert removed == [dead]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".default-mlm.building-live", ".default-sst2.building-dead"]


def _fake_build(spec, out: Path, progress: bool) -> dict:
    (out / "config.json").write_text(json.dumps({"model_type": "bert"}))
    (out / "model.safetensors").write_bytes(os.urandom(64))
    return {"summary": {}, "accuracy": {}}


def test_concurrent_forced_builds_never_fail(tmp_path, monkeypatch):
    """Issue 21: 3-5 of 300 tight concurrent build(force=True) loops aborted with
    FileNotFoundError. Builds swap the cache entry in under the cache root's lock."""
    monkeypatch.setenv(defaults.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setenv(defaults.THREADS_ENV, "1")
    monkeypatch.setitem(defaults._BUILDERS, "mlm", _fake_build)
    errors: list[BaseException] = []

    def loop() -> None:
        try:
            for _ in range(15):
                defaults.build("default-mlm", force=True, progress=False)
        except BaseException as exc:  # noqa: BLE001 (collected for the assertion)
            errors.append(exc)

    threads = [threading.Thread(target=loop) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    cache = tmp_path / "cache"
    assert sorted(p.name for p in cache.iterdir()) == ["default-mlm"]  # no temporary directory left
    defaults.verify("default-mlm")  # the entry left is whole and matches its checksums


# --- Windows: no fcntl --------------------------------------------------------------------


def test_no_module_imports_fcntl_at_import_time():
    """The CLI must start where fcntl is absent (Windows): fcntl is imported where a lock is taken."""
    for path in SRC.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:  # module level only
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module] if isinstance(node, ast.ImportFrom) else [])
            assert "fcntl" not in names, f"{path} imports fcntl at module level"


def test_locking_without_fcntl_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "fcntl", None)  # import fcntl now raises ImportError
    with pytest.raises(OutputError, match="POSIX file locks"):
        RunLock(tmp_path).acquire()


def test_a_running_build_of_an_older_version_is_left_alone(tmp_path):
    """Builds started before the directory lock wrote their pid and hold no lock: while a
    cache is shared across the upgrade, a live one's directory is not removed."""
    live = tmp_path / ".default-sst2.building-old"
    live.mkdir()
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        (live / ".builder-pid").write_text(f"{proc.pid}\n")
        assert defaults.remove_abandoned_builds(tmp_path, "default-sst2") == []
    finally:
        proc.kill()
        proc.wait()
    assert defaults.remove_abandoned_builds(tmp_path, "default-sst2") == [live]  # its process is gone
