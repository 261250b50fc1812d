"""The Ray backend gives the local backend's results, written in order, resumable."""

import json

import pytest

from influence_patterns.errors import InputError
from influence_patterns.runs import BackendOptions, Run, RunOptions, run_dataset

from conftest import write_data

ray = pytest.importorskip("ray", reason="the ray extra is not installed (pip install -e '.[dev]')")


def _patterns(rows):
    return [(r["index"], [(p["positions"], p["heads"]) for p in r["patterns"]]) for r in rows]


@pytest.mark.slow  # starts Ray, about 15 s
def test_ray_matches_local_and_resumes(mlm_checkpoint, tmp_path):
    data = write_data(tmp_path / "tiny.jsonl", count=6)
    options = RunOptions(task="sva/prep", data=str(data), model=str(mlm_checkpoint), n=6, seed=1, steps=3,
                         batch_size=2)
    local = run_dataset(options, tmp_path / "local", progress=False)
    # A partial ray run (first instances already there) must be completed, not redone.
    partial = tmp_path / "ray"
    run_dataset(options, partial, progress=False, backend="local")
    lines = (partial / "results.jsonl").read_text().splitlines(keepends=True)
    (partial / "results.jsonl").write_text("".join(lines[:3]) + lines[3][:20])  # torn 4th line
    run_dataset(options, partial, progress=False, backend=BackendOptions("ray", workers=2))
    rows_local, rows_ray = Run.open(local).rows, Run.open(partial / "results.jsonl").rows
    assert [r["index"] for r in rows_ray] == list(range(6))
    assert _patterns(rows_ray) == _patterns(rows_local)
    for a, b in zip(rows_local, rows_ray):
        for pa, pb in zip(a["patterns"], b["patterns"]):
            assert pa["influence_head"] == pytest.approx(pb["influence_head"], rel=1e-5, abs=1e-7)
    assert json.loads((partial / "run.json").read_text())["task"] == "sva/prep"


def test_unknown_backend(mlm_checkpoint, tmp_path):
    data = write_data(tmp_path / "tiny.jsonl", count=2)
    with pytest.raises(InputError, match="unknown backend"):
        run_dataset(RunOptions(task="sva/prep", model=str(mlm_checkpoint), data=str(data), n=2, steps=2),
                    tmp_path / "x", progress=False, backend="spark")
