"""Helpers shared by the hostile-case tests (test_locking, test_provenance,
test_atomic_outputs, test_validation, test_injection): the one-line-error check, copying
a run, listing a directory. The finished run they damage is conftest's ``done_run``."""

from __future__ import annotations

from pathlib import Path


def one_line_error(result, *needles: str) -> str:
    """The CLI failed with exit 2 and exactly one line naming the problem."""
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def copy_run(src: Path, dst: Path) -> Path:
    """A copy of a run directory's run.json and results.jsonl."""
    dst.mkdir(parents=True)
    for name in ("run.json", "results.jsonl"):
        (dst / name).write_bytes((src / name).read_bytes())
    return dst


def listing(path: Path) -> list[str]:
    """Every file and directory under ``path`` (relative), for "nothing was written" checks."""
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))
