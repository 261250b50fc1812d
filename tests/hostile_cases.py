"""Helpers shared by the hostile-case tests (test_locking, test_provenance,
test_atomic_outputs, test_validation, test_injection): the one-line-error check and a
finished tiny run to copy and damage."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from influence_patterns.cli import app


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


@pytest.fixture(scope="module")
def done_run(checkpoint, data_file, tmp_path_factory) -> Path:
    """A finished 4-instance run (2 layers, 2 heads) to copy and damage; the test module
    imports ``checkpoint`` and ``data_file`` (from test_runs) beside this fixture."""
    from test_runs import run_args

    out = tmp_path_factory.mktemp("done") / "run"
    result = CliRunner().invoke(app, run_args(checkpoint, data_file, out, n=4))
    assert result.exit_code == 0, result.output
    return out
