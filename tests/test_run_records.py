"""The one run type: ``Run.open`` / ``Run.from_rows`` give typed ``RunRecord`` s that the
analyses read; ``Run.to_dataframe`` is one row per (instance, source token)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from influence_patterns.analysis.analyze import analyze_rows
from influence_patterns.errors import DataError
from influence_patterns.result import Explanation, Pattern
from influence_patterns.runs import Run, RunRecord
from influence_patterns.runs.reader import DATAFRAME_COLUMNS

TOKENS = ["[CLS]", "the", "boys", "[MASK]", "[SEP]"]


def record(index: int, q: float = 1.0, roles: dict | None = None, correct: bool | None = True) -> RunRecord:
    subject = Pattern(2, "boys", 1, 0.5, [2, 2, 3], [None, 1], 0.4, 0.3)
    the = Pattern(1, "the", -1, -0.1, [1, 3, 3], [0, None], -0.05, -0.02)
    e = Explanation(model="tiny", text="the boys [MASK]", tokens=TOKENS, target_index=3, num_layers=2,
                    num_heads=2, steps=4, baseline="mask", qoi_name="agreement", qoi_value=q,
                    qoi_baseline_value=0.0, patterns=[the, subject], targets=["are", "is"])
    return RunRecord(index, e, task="sva/simple", condition="plur", roles=roles if roles is not None else {"subject": 2},
                     correct=correct)


def write_run(path, lines: list[dict], meta: dict | None = None):
    path.mkdir(parents=True, exist_ok=True)
    (path / "results.jsonl").write_text("".join(json.dumps(d) + "\n" for d in lines))
    if meta is not None:
        (path / "run.json").write_text(json.dumps(meta))
    return path


def test_to_dataframe_one_row_per_instance_and_source(tmp_path):
    run = Run.open(write_run(tmp_path / "run", [record(0).to_dict(), record(1, q=-0.5, correct=False).to_dict()],
                             {"model": "tiny", "task": "sva/simple", "instances": 2, "steps": 4}))
    df = run.to_dataframe()
    assert list(df.columns) == list(DATAFRAME_COLUMNS)
    assert len(df) == 4  # two instances, two source tokens each
    subject = df[(df["index"] == 1) & (df["source_index"] == 2)].iloc[0]
    assert subject["role"] == "subject" and subject["source_token"] == "boys"
    assert subject["q"] == pytest.approx(-0.5) and not subject["correct"]
    assert subject["pattern"] == "L1 skip → L2 H1@[MASK]"
    assert subject["influence_head"] == pytest.approx(0.3) and subject["influence_token"] == pytest.approx(0.4)
    assert subject["positions"] == [2, 2, 3] and subject["heads"] == [None, 1]
    the = df[(df["index"] == 0) & (df["source_index"] == 1)].iloc[0]
    assert pd.isna(the["role"]) and the["sign"] == -1 and the["condition"] == "plur"
    assert the["pattern"] == "L1 H0@[MASK] → L2 skip"


def test_an_old_line_still_reads(tmp_path):
    """A line of an early run: no task, condition, roles, correct, quadrature or method."""
    old = record(0, q=-1.0).to_dict()
    for key in ("task", "condition", "roles", "correct", "quadrature", "method"):
        old.pop(key)
    run = Run.open(write_run(tmp_path / "old", [old]))
    r = run.records[0]
    assert r.roles == {} and r.task is None and r.correct is None
    assert r.is_correct is False  # QoI < 0
    assert r.explanation.quadrature == "riemann" and run.setting("quadrature") == "riemann"
    assert run.setting("model") == "tiny" and run.setting("steps") == 4
    df = run.to_dataframe()
    assert len(df) == 2 and df["role"].isna().all() and not df["correct"].any()


def test_from_rows_checks_as_the_reader_does():
    rows = [record(0).to_dict(), record(1)]  # a dict and a record mix
    run = Run.from_rows(rows, {"instances": 2})
    assert [r.index for r in run.records] == [0, 1] and all(isinstance(r, RunRecord) for r in run.records)
    assert Run.from_rows(run) is run
    with pytest.raises(DataError, match=r"the run row 2: index 0 appears twice \(first on row 1\)"):
        Run.from_rows([record(0), record(0)])
    with pytest.raises(DataError, match=r"my rows row 1: index 5 is out of range \(0\.\.1\)"):
        Run.from_rows([record(5)], {"instances": 2}, name="my rows")
    with pytest.raises(DataError, match="not a result row"):
        Run.from_rows([{"index": 0, "tokens": TOKENS}])
    bad = record(0).to_dict()
    bad["patterns"][0]["heads"] = [None]
    with pytest.raises(DataError, match="does not match its 2-layer model"):
        Run.from_rows([bad])
    # a dict without an index (Explanation.to_dict() plus a task) takes its position
    plain = {k: v for k, v in record(0).to_dict().items() if k != "index"}
    assert [r.index for r in Run.from_rows([plain, plain]).records] == [0, 1]


def test_analyses_take_records_and_dicts_alike():
    records = [record(0), record(1, q=-1.0, correct=False)]
    a = analyze_rows(records)
    b = analyze_rows([r.to_dict() for r in records])
    assert a == b
    assert a["accuracy"] == 0.5 and (a["skip_steps"], a["head_steps"]) == (4, 4)
