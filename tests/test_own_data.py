"""Your own data (docs/data.md): CSV, TSV and JSONL rows under task names of one's own, with
roles by word; several tasks in one run; bad input is one line naming file and line, exit 2,
nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from influence_patterns.cli import app
from influence_patterns.runs import Run

from conftest import save_checkpoint

runner = CliRunner()

ROWS = [  # text, good, bad, task, subject, attractor
    ("the boy near the girls [MASK]", "laughs", "laugh", "my/near", "boy", "girls"),
    ("the boys near the girl [MASK]", "laugh", "laughs", "my/near", "boys", "girl"),
    ("the dog near the cats [MASK]", "runs", "run", "my/near", "dog", "cats"),
    ("the cat that the dogs like [MASK]", "runs", "run", "my/that", "cat", "dogs"),
    ("the cats that the dog likes [MASK]", "run", "runs", "my/that", "cats", "dog"),
]


@pytest.fixture(scope="module")
def mlm_dir(tmp_path_factory) -> Path:
    return save_checkpoint(tmp_path_factory.mktemp("own-mlm"), "mlm", layers=2, heads=2)


@pytest.fixture(scope="module")
def cls_dir(tmp_path_factory) -> Path:
    return save_checkpoint(tmp_path_factory.mktemp("own-cls"), "classification", layers=2, heads=2)


def write_csv(path: Path, rows=ROWS, task_column: bool = True) -> Path:
    head = "text,good,bad," + ("task," if task_column else "") + "subject,attractor\n"
    body = "".join(f"{t},{g},{b}," + (f"{k}," if task_column else "") + f"{s},{a}\n" for t, g, b, k, s, a in rows)
    path.write_text(head + body, encoding="utf-8")
    return path


def run(*args: str):
    return runner.invoke(app, ["run", "--steps", "4", "--quiet", *args])


def one_line(result, *needles: str) -> str:
    assert result.exit_code == 2, result.output
    lines = [l for l in result.output.splitlines() if l.strip()]
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def test_every_task_of_a_file_into_one_run(tmp_path, mlm_dir):
    data = write_csv(tmp_path / "mine.csv")
    out = tmp_path / "both"
    result = run("--data", str(data), "--model", str(mlm_dir), "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "my/near: 3 instances" in result.output and "my/that: 2 instances" in result.output
    r = Run.open(out)
    assert [rec.task for rec in r.records] == [row[3] for row in ROWS]
    assert r.meta["task"] is None
    for rec, row in zip(r.records, ROWS):  # roles by word -> that word's token
        tokens = rec.explanation.tokens
        assert tokens[rec.roles["subject"]] == row[4] and tokens[rec.roles["attractor"]] == row[5]
    # analyze: one table row per task, labelled by run directory too
    js = tmp_path / "a.json"
    res = runner.invoke(app, ["analyze", str(out), "--json", str(js), "--resamples", "50"])
    assert res.exit_code == 0, res.output
    runs = json.loads(js.read_text())["runs"]
    assert [(a["task"], a["instances"]) for a in runs] == [("my/near", 3), ("my/that", 2)]
    assert "both" in res.output
    # a null for a run of several tasks: computed once for the run, split like it
    res = runner.invoke(app, ["analyze", str(out), "--json", str(js), "--resamples", "50", "--null", "random-init",
                              "--quiet"])
    assert res.exit_code == 0, res.output
    nulls = json.loads(js.read_text())["runs"]
    assert [a["null"]["skip_steps"] + a["null"]["head_steps"] for a in nulls] == \
        [a["skip_steps"] + a["head_steps"] for a in runs]
    assert len(list(out.glob("null-random-init-seed0.json"))) == 1
    words = r.to_dataframe(by="word")
    subjects = words[words["role"] == "subject"]
    assert list(subjects["word"]) == [row[4] for row in ROWS] and list(subjects["task"]) == [row[3] for row in ROWS]
    # report over a glob that also matches a non-run file: left out with a note
    (tmp_path / "both-ablation.json").write_text("{}")
    md = tmp_path / "report.md"
    res = runner.invoke(app, ["report", str(out), str(tmp_path / "both-ablation.json"), "--out", str(md),
                              "--resamples", "50"])
    assert res.exit_code == 0, res.output
    assert "both-ablation.json is not a run directory; left out" in " ".join(res.output.split())
    text = md.read_text()
    assert "| my/near | both |" in text and "| my/that | both |" in text


@pytest.mark.parametrize("spelling", ["tsv", "jsonl"])
def test_a_task_of_ones_own(tmp_path, mlm_dir, spelling):
    if spelling == "tsv":
        data = tmp_path / "mine.tsv"
        data.write_text("text\tgood\tbad\tsubject\n" + "".join(f"{t}\t{g}\t{b}\t{s}\n" for t, g, b, _, s, _ in ROWS))
    else:
        data = tmp_path / "mine.jsonl"
        data.write_text("".join(json.dumps({"text": t, "targets": [g, b], "roles": {"subject": s, "verb": "[MASK]"}})
                                + "\n" for t, g, b, _, s, _ in ROWS))
    out = tmp_path / "r"
    result = run("--task", "lab/agreement", "--data", str(data), "--model", str(mlm_dir), "--out", str(out), "--n", "3")
    assert result.exit_code == 0, result.output
    r = Run.open(out)
    assert r.meta["task"] == "lab/agreement" and {rec.task for rec in r.records} == {"lab/agreement"}
    assert len(r) == 3 and all("subject" in rec.roles for rec in r.records)


def test_a_built_in_name_keeps_its_roles(tmp_path, mlm_dir):
    data = write_csv(tmp_path / "plain.csv", task_column=False)
    data.write_text("text,good,bad\n" + "".join(f"{t},{g},{b}\n" for t, g, b, *_ in ROWS[:3]))
    out = tmp_path / "r"
    assert run("--task", "sva/prep", "--data", str(data), "--model", str(mlm_dir), "--out", str(out)).exit_code == 0
    rec = Run.open(out).records[0]
    assert rec.task == "sva/prep"
    assert rec.explanation.tokens[rec.roles["subject"]] == "boy"  # inferred as for Marvin & Linzen rows
    assert rec.explanation.tokens[rec.roles["attractor"]] == "girls"


def test_a_task_of_ones_own_needs_its_rows(tmp_path, mlm_dir):
    res = run("--task", "lab/agreement", "--model", str(mlm_dir), "--out", str(tmp_path / "r"))
    one_line(res, "unknown task 'lab/agreement'", "a data file")
    data = write_csv(tmp_path / "mine.csv")
    res = run("--task", "lab/other", "--data", str(data), "--model", str(mlm_dir), "--out", str(tmp_path / "r"))
    one_line(res, "no rows of task 'lab/other'", "my/near, my/that")
    data = write_csv(tmp_path / "untasked.csv", task_column=False)
    res = run("--data", str(data), "--model", str(mlm_dir), "--out", str(tmp_path / "r"))
    one_line(res, "untasked.csv line 2", "the row names no task")
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    "name, body, model, needles",
    [
        ("col.csv", "text,good,bad,conditon\nthe boy [MASK],laughs,laugh,x\n", "mlm",
         ["col.csv line 1, column 'conditon'", "unknown column"]),
        ("word.csv", "text,good,bad,subject\nthe boy [MASK],laughs,laugh,girl\n", "mlm",
         ["word.csv line 2, column 'subject'", "'girl' is not in the sentence"]),
        ("label.csv", "text,label\nthe boy laughs,1\n", "mlm", ["label.csv line 2", "a label on a masked LM"]),
        ("targets.csv", "text,good,bad\nthe boy [MASK],laughs,laugh\n", "cls",
         ["targets.csv line 2", "targets on a classifier"]),
        ("cf.jsonl", '{"text": "the boy [MASK]", "targets": ["laughs", "laugh"], '
                     '"counterfactual": "the boys near the girl [MASK]"}\n', "mlm",
         ["cf.jsonl line 1", "a counterfactual of another length", "3 word pieces", "6"]),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, mlm_dir, cls_dir, name, body, model, needles):
    data = tmp_path / name
    data.write_text(body, encoding="utf-8")
    out = tmp_path / "r"
    res = run("--task", "mine", "--data", str(data), "--model", str(mlm_dir if model == "mlm" else cls_dir),
              "--out", str(out))
    one_line(res, *needles)
    assert not out.exists()


def test_a_counterfactual_of_the_same_length_runs(tmp_path, mlm_dir):
    data = tmp_path / "cf.jsonl"
    data.write_text(json.dumps({"text": "the boy near the girls [MASK]", "targets": ["laughs", "laugh"],
                                "counterfactual": "the boys near the girls [MASK]"}) + "\n")
    assert run("--task", "mine", "--data", str(data), "--model", str(mlm_dir), "--out", str(tmp_path / "r")).exit_code == 0


def test_accuracy_names_labels_on_a_masked_lm(tmp_path, mlm_dir):
    data = tmp_path / "sent.tsv"
    data.write_text("text\tlabel\na good movie\t1\n")
    res = runner.invoke(app, ["accuracy", "--data", str(data), "--model", str(mlm_dir)])
    line = one_line(res, "sent.tsv line 2", "a label on a masked LM")
    assert "single word pieces" not in line
