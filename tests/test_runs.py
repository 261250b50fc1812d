"""Data-set runs: results.jsonl rows, roles as token indices, run.json, resume
(after a real SIGKILL, after a torn last line), option checks, the `run` command."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from influence_patterns.cli import app
from influence_patterns.errors import InputError
from influence_patterns.runs import Run, RunOptions, repair_results, role_token_indices, run_dataset

from conftest import make_model, run_args

runner = CliRunner()

def rows_by_index(out: Path) -> dict[int, dict]:
    rows = Run.open(out).rows
    return {r["index"]: r for r in rows}


def assert_same_patterns(a: dict[int, dict], b: dict[int, dict]) -> None:
    assert sorted(a) == sorted(b)
    for i in a:
        pa, pb = a[i]["patterns"], b[i]["patterns"]
        assert [(p["positions"], p["heads"], p["sign"]) for p in pa] == [(p["positions"], p["heads"], p["sign"]) for p in pb]
        for x, y in zip(pa, pb):
            assert x["influence_head"] == pytest.approx(y["influence_head"], rel=1e-4, abs=1e-6)
        assert a[i]["qoi"]["value"] == pytest.approx(b[i]["qoi"]["value"], rel=1e-5, abs=1e-6)


def test_run_writes_one_row_per_instance(checkpoint, data_file, tmp_path):
    out = tmp_path / "run"
    result = runner.invoke(app, run_args(checkpoint, data_file, out, "--batch-size", "4"))
    assert result.exit_code == 0, result.output
    assert "6 instances" in result.output
    lines = (out / "results.jsonl").read_text().splitlines()
    assert len(lines) == 6
    rows = [json.loads(line) for line in lines]
    assert sorted(r["index"] for r in rows) == list(range(6))
    for r in rows:
        assert r["task"] == "sva/prep" and r["condition"].startswith(("sing", "plur"))
        assert r["correct"] == (r["qoi"]["value"] > 0)
        words = r["text"].split()
        # roles are TOKEN indices now: [CLS] shifts every word by one
        assert r["tokens"][r["roles"]["subject"]] == words[1]
        assert r["roles"]["verb"] == r["target_index"]
        assert {p["source_index"] for p in r["patterns"]} == {1, 2, 3, 4, 5}
        assert all(len(p["positions"]) == 3 and len(p["heads"]) == 2 for p in r["patterns"])
    meta = json.loads((out / "run.json").read_text())
    for key in ("model", "task", "n", "seed", "steps", "baseline", "method", "data", "versions"):
        assert key in meta
    assert meta["steps"] == 4 and meta["n"] == 6 and meta["task"] == "sva/prep"
    assert set(meta["versions"]) >= {"influence_patterns", "torch", "transformers"}


def test_rerun_of_a_finished_run_adds_nothing(checkpoint, data_file, tmp_path):
    out = tmp_path / "run"
    assert runner.invoke(app, run_args(checkpoint, data_file, out, n=3)).exit_code == 0
    before = (out / "results.jsonl").read_bytes()
    result = runner.invoke(app, run_args(checkpoint, data_file, out, n=3))
    assert result.exit_code == 0, result.output
    assert (out / "results.jsonl").read_bytes() == before


def test_resume_refuses_other_options(checkpoint, data_file, tmp_path):
    out = tmp_path / "run"
    assert runner.invoke(app, run_args(checkpoint, data_file, out, n=2)).exit_code == 0
    result = runner.invoke(app, ["run", "--task", "sva/prep", "--data", str(data_file), "--n", "2", "--model",
                                 str(checkpoint), "--out", str(out), "--steps", "5", "--quiet"])
    assert result.exit_code == 2
    assert "steps" in result.output and "recorded 4" in result.output
    result = runner.invoke(app, run_args(checkpoint, data_file, out, "--seed", "3", n=2))
    assert result.exit_code == 2 and "seed" in result.output


def test_torn_last_line_is_repaired_and_resumed(checkpoint, data_file, tmp_path):
    full = tmp_path / "full"
    assert runner.invoke(app, run_args(checkpoint, data_file, full, "--batch-size", "2")).exit_code == 0
    out = tmp_path / "torn"
    out.mkdir()
    (out / "run.json").write_text((full / "run.json").read_text())
    lines = (full / "results.jsonl").read_text().splitlines(keepends=True)
    torn = "".join(lines[:3]) + lines[3][: len(lines[3]) // 2]  # killed in the middle of line 4
    (out / "results.jsonl").write_text(torn)
    assert len(Run.open(out).rows) == 3  # readers skip the torn line
    result = runner.invoke(app, run_args(checkpoint, data_file, out, "--batch-size", "2"))
    assert result.exit_code == 0, result.output
    text = (out / "results.jsonl").read_text()
    assert text.endswith("\n")
    rows = [json.loads(line) for line in text.splitlines()]  # every line parses
    assert sorted(r["index"] for r in rows) == list(range(6))
    assert_same_patterns(rows_by_index(out), rows_by_index(full))


def test_repair_results(tmp_path):
    f = tmp_path / "results.jsonl"
    f.write_text('{"index": 0}\n{"index": 1}\n{"ind')
    assert repair_results(f) == len('{"ind')
    assert f.read_text() == '{"index": 0}\n{"index": 1}\n'
    assert repair_results(f) == 0
    f.write_text('{"ind')  # nothing complete at all
    repair_results(f)
    assert f.read_text() == ""
    f.write_text('{"index": 0}\n{"index": \n')  # a complete but broken last line
    repair_results(f)
    assert f.read_text() == '{"index": 0}\n'


@pytest.mark.slow  # a real process started, killed and resumed, about 17 s
def test_kill_and_resume_with_a_real_process(checkpoint, data_file, tmp_path):
    """SIGKILL a real `influence-patterns run` after its first lines, resume it, and
    compare with an uninterrupted run: every index once, same patterns."""
    out = tmp_path / "killed"
    n = "8"
    args = ["run", "--task", "sva/prep", "--data", str(data_file), "--n", n, "--model", str(checkpoint),
            "--out", str(out), "--steps", "8", "--method", "reference", "--batch-size", "1", "--quiet"]
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    code = "import sys; from influence_patterns.cli import main; sys.argv[0] = 'influence-patterns'; main()"
    proc = subprocess.Popen([sys.executable, "-c", code, *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    results = out / "results.jsonl"
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if results.exists() and results.read_bytes().count(b"\n") >= 1:
                break
            time.sleep(0.01)
        assert proc.poll() is None, "the run ended before it could be killed: " + proc.stderr.read().decode()[-2000:]
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    written = results.read_bytes().count(b"\n")
    assert 1 <= written < int(n)

    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in results.read_text().splitlines()]
    assert sorted(r["index"] for r in rows) == list(range(int(n)))  # each exactly once

    fresh = tmp_path / "fresh"
    fresh_args = list(args)
    fresh_args[fresh_args.index(str(out))] = str(fresh)
    assert runner.invoke(app, fresh_args).exit_code == 0
    assert_same_patterns(rows_by_index(out), rows_by_index(fresh))


def test_library_run_with_explainer_and_progress(checkpoint, data_file, tmp_path, tokenizer):
    from influence_patterns import Explainer

    explainer = Explainer(make_model("mlm", layers=2, heads=2), tokenizer, steps=3)
    seen = []
    options = RunOptions(task="sva/prep", model="tiny", n=5, data=str(data_file), batch_size=2, steps=3)
    path = run_dataset(options, tmp_path / "run", explainer=explainer,
                       progress=lambda done, total: seen.append((done, total)))
    assert path.name == "results.jsonl"
    assert seen == [(2, 5), (4, 5), (5, 5)]
    run = Run.open(tmp_path / "run")
    rows, meta = run.rows, run.meta
    assert [r["index"] for r in rows] == list(range(5))
    assert meta["model"] == "tiny"


def test_run_errors(checkpoint, data_file, tmp_path):
    result = runner.invoke(app, run_args(checkpoint, data_file, tmp_path / "r", "--batch-size", "0"))
    assert result.exit_code == 2 and "batch_size" in result.output
    result = runner.invoke(app, ["run", "--task", "nope", "--n", "2", "--model", str(checkpoint), "--out", str(tmp_path / "r2")])
    assert result.exit_code == 2 and "unknown task" in result.output
    result = runner.invoke(app, run_args(checkpoint, tmp_path / "missing.jsonl", tmp_path / "r3"))
    assert result.exit_code == 2 and "not found" in result.output
    with pytest.raises(InputError):
        Run.open(tmp_path / "nowhere")


def test_role_token_indices_word_pieces(tokenizer):
    # Word-by-word re-tokenisation: a word of two pieces shifts the next word by two.
    class Split:
        is_fast = False
        cls_token = "[CLS]"

        def tokenize(self, word):  # like WordPiece, a leading space changes nothing
            word = word.strip()
            return ["te", "##acher"] if word == "teacher" else [word]

    tokens = ["[CLS]", "the", "te", "##acher", "near", "the", "dog", "[MASK]", "[SEP]"]
    roles = {"subject": 1, "prep": 2, "attractor": 4, "verb": 5}
    got = role_token_indices(Split(), "the teacher near the dog [MASK]", roles, tokens)
    assert got == {"subject": 2, "prep": 4, "attractor": 6, "verb": 7}
    # A fast tokenizer's word_ids give the same answer when there are no splits.
    text = "the boys near the dog [MASK]"
    tokens = tokenizer.convert_ids_to_tokens(tokenizer(text)["input_ids"])
    assert role_token_indices(tokenizer, text, {"subject": 1, "verb": 5}, tokens) == {"subject": 2, "verb": 6}
