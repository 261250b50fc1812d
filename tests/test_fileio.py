"""The one write helper: atomic, strict JSON, one-line errors."""

from __future__ import annotations

import json
import math

import pytest

from influence_patterns.errors import OutputError
from influence_patterns.fileio import atomic_path, dumps, write_json, write_text


def test_write_json_is_strict(tmp_path):
    out = write_json(tmp_path / "a.json", {"x": math.nan, "y": [1.0, math.inf], "z": 2})
    assert json.loads(out.read_text()) == {"x": None, "y": [1.0, None], "z": 2}
    assert "NaN" not in dumps({"x": float("nan")})


def test_failed_write_keeps_earlier_result(tmp_path):
    path = tmp_path / "r.json"
    write_json(path, {"good": 1})
    with pytest.raises(RuntimeError):
        with atomic_path(path) as tmp:
            tmp.write_text("half")
            raise RuntimeError("boom")
    assert json.loads(path.read_text()) == {"good": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_directory_in_the_way_is_one_line(tmp_path):
    (tmp_path / "d").mkdir()
    with pytest.raises(OutputError, match=r"cannot write .*d: it is a directory"):
        write_text(tmp_path / "d", "x")


def test_unwritable_parent_is_one_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputError, match=r"cannot write .*file/out\.json"):
        write_json(blocker / "out.json", {})


def test_written_files_get_the_usual_mode(tmp_path):
    import os

    old = os.umask(0o022)
    try:
        path = write_text(tmp_path / "report.md", "x")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644
