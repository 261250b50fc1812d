"""Validation (issue 21): the one reader checks every row against its model's shape, odd
files and odd sizes are refused with one line (never a hang, a RecursionError, a 60 GiB
allocation or a RuntimeError from torch), messages name the real problem, and the API
checks its argument types."""

from __future__ import annotations

import io
import json
import os
import signal
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from influence_patterns import Explainer
from influence_patterns.cli import app
from influence_patterns.errors import DataError, InputError, ModelError
from influence_patterns.models.loading import load_model
from influence_patterns.result import Explanation
from influence_patterns.runs import Run, RunOptions, run_dataset

from conftest import run_args
from hostile_cases import copy_run, listing, one_line_error

runner = CliRunner()


def damaged(done_run: Path, dst: Path, edit) -> Path:
    """A copy of the run whose first row's first pattern went through ``edit``."""
    out = copy_run(done_run, dst)
    lines = (out / "results.jsonl").read_text().splitlines()
    row = json.loads(lines[0])
    edit(row)
    lines[0] = json.dumps(row)
    (out / "results.jsonl").write_text("\n".join(lines) + "\n")
    return out


@pytest.fixture
def alarm():
    """Fail instead of hanging forever (a FIFO read or written blocks)."""

    def timeout(*args):
        raise TimeoutError("blocked: the command waited on a FIFO")

    old = signal.signal(signal.SIGALRM, timeout)
    signal.alarm(20)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


# --- the one reader ------------------------------------------------------------------------


def test_a_head_outside_the_model_is_refused_by_every_reader(done_run, tmp_path):
    """Issue 21: `"heads": [99, null]` in a 2-head model's row was counted by analyze and
    drawn as "H99" by plot."""
    out = damaged(done_run, tmp_path / "heads", lambda row: row["patterns"][0].update(heads=[99, None]))
    with pytest.raises(DataError, match=r"line 1: .*head 99, outside the 2-head model \(0\.\.1\)"):
        Run.open(out)
    one_line_error(runner.invoke(app, ["analyze", str(out), "--resamples", "10"]), "head 99")
    one_line_error(runner.invoke(app, ["plot", str(out), "--out", str(tmp_path / "f.svg")]), "head 99")
    assert not (tmp_path / "f.svg").exists()


def test_a_position_outside_the_text_is_refused_by_analyze_too(done_run, tmp_path):
    """Issue 21: analyze accepted an out-of-range position that plot and report refused."""

    def edit(row):
        row["patterns"][0]["positions"][1] = 40

    out = damaged(done_run, tmp_path / "pos", edit)
    one_line_error(runner.invoke(app, ["analyze", str(out), "--resamples", "10"]), "line 1", "position 40")
    one_line_error(runner.invoke(app, ["report", str(out), "--out", str(tmp_path / "r.md")]), "position 40")


def test_a_nan_qoi_row_is_refused_not_counted_wrong(done_run, tmp_path):
    out = damaged(done_run, tmp_path / "nan", lambda row: row["qoi"].update(value=float("nan")))
    assert "NaN" in (out / "results.jsonl").read_text().splitlines()[0]
    with pytest.raises(DataError, match=r"line 1: the qoi is nan, not a finite number"):
        Run.open(out)


def test_an_explanation_file_is_checked_as_a_row_is(tmp_path, mlm_checkpoint):
    expl = Explainer.from_pretrained(str(mlm_checkpoint), steps=2).explain("the boy [MASK]", targets="is,are")
    d = expl.to_dict()
    d["patterns"][0]["heads"][0] = 7
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(d))
    with pytest.raises(DataError, match="head 7"):
        Explanation.load(path)


def test_incomplete_run_is_said_by_analyze(done_run, tmp_path):
    """Issue 21: analyze/report on a run with 3 of 8 instances did not say it was incomplete."""
    out = copy_run(done_run, tmp_path / "part")
    lines = (out / "results.jsonl").read_text().splitlines(keepends=True)
    (out / "results.jsonl").write_text("".join(lines[:3]))
    result = runner.invoke(app, ["analyze", str(out), "--resamples", "10"])
    assert result.exit_code == 0, result.output
    assert "is incomplete: 3 of 4 instances" in result.output


# --- odd files -------------------------------------------------------------------------------


def test_a_fifo_results_file_is_refused_not_waited_on(checkpoint, data_file, tmp_path, alarm):  # noqa: F811
    """Issue 21: `mkfifo DIR/results.jsonl; run ... --out DIR` blocked forever."""
    out = tmp_path / "run"
    out.mkdir()
    os.mkfifo(out / "results.jsonl")
    one_line_error(runner.invoke(app, run_args(checkpoint, data_file, out, n=2)), "not a regular file")
    one_line_error(runner.invoke(app, ["analyze", str(out)]), "not a regular file")


def test_a_fifo_given_to_plot_is_refused(tmp_path, alarm):
    fifo = tmp_path / "result.json"
    os.mkfifo(fifo)
    one_line_error(runner.invoke(app, ["plot", str(fifo), "--out", str(tmp_path / "f.svg")]), "not a regular file")


NESTED = "[" * 100_000 + "]" * 100_000


def test_deeply_nested_json_is_one_line_everywhere(done_run, tmp_path):
    """Issue 21: `'['*100000` in run.json, results.jsonl or a file given to plot was a RecursionError."""
    bad_meta = copy_run(done_run, tmp_path / "meta")
    (bad_meta / "run.json").write_text(NESTED)
    one_line_error(runner.invoke(app, ["analyze", str(bad_meta)]), "run.json", "nested too deeply")
    bad_rows = copy_run(done_run, tmp_path / "rows")
    with open(bad_rows / "results.jsonl", "a") as f:
        f.write(NESTED + "\n" + (done_run / "results.jsonl").read_text().splitlines()[0] + "\n")
    one_line_error(runner.invoke(app, ["analyze", str(bad_rows)]), "line 5", "nested too deeply")
    nested = tmp_path / "nested.json"
    nested.write_text(NESTED)
    one_line_error(runner.invoke(app, ["plot", str(nested), "--out", str(tmp_path / "f.svg")]), "nested too deeply")
    data = tmp_path / "data.jsonl"
    data.write_text(NESTED + "\n")
    with pytest.raises(DataError, match="line 1: bad JSON: nested too deeply"):
        from influence_patterns.tasks.loaders import load_instances

        load_instances(data)


def test_plot_of_a_binary_file_is_a_short_line(tmp_path):
    """Issue 21: plot of a binary file printed a 16 KB line."""
    binary = tmp_path / "result.json"
    binary.write_bytes(bytes(range(256)) * 64)
    line = one_line_error(runner.invoke(app, ["plot", str(binary), "--out", str(tmp_path / "f.svg")]),
                          "not UTF-8 text")
    assert len(line) < 300


def test_non_utf8_error_names_the_right_line(tmp_path):
    """Issue 21: the line named was the one where the decoder's 8 KB buffer ended."""
    from influence_patterns.tasks.loaders import load_instances

    path = tmp_path / "data.tsv"
    good = "the boy [MASK]\tis\tare\n"
    path.write_bytes(("text\tgood\tbad\n" + good * 300).encode() + "the garçon [MASK]\tis\tare\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"data.tsv line 302: not UTF-8 text"):
        load_instances(path)


# --- odd sizes and options -------------------------------------------------------------------


def test_absurd_resamples_are_refused(done_run):
    """Issue 21: `analyze --resamples 1000000000` tried to allocate 60 GiB."""
    for command in (["analyze", str(done_run)], ["ablate", str(done_run)]):
        one_line_error(runner.invoke(app, [*command, "--resamples", "1000000000"]),
                       "--resamples must be between 1 and 100,000")
    from influence_patterns.analysis.analyze import AnalyzeOptions

    with pytest.raises(InputError, match="resamples must be between"):
        AnalyzeOptions(resamples=10**9).validate()


def test_accuracy_on_a_text_past_the_models_length_is_one_line(checkpoint, tmp_path):  # noqa: F811
    """Issue 21: accuracy on such a text was a RuntimeError from torch (explain refused it)."""
    data = tmp_path / "long.jsonl"
    data.write_text(json.dumps({"text": "the " + "boy " * 80 + "[MASK]", "targets": ["is", "are"]}) + "\n")
    one_line_error(runner.invoke(app, ["accuracy", "--model", str(checkpoint), "--data", str(data)]),
                   "word pieces long; the model takes at most 64")


def test_label_only_rows_on_a_masked_lm_say_so(checkpoint, tmp_path):  # noqa: F811
    """Issue 21: they said "targets are not single word pieces"."""
    data = tmp_path / "labels.jsonl"
    data.write_text(json.dumps({"text": "a good movie", "label": 1}) + "\n")
    line = one_line_error(runner.invoke(app, ["accuracy", "--model", str(checkpoint), "--data", str(data)]),
                          "masked LM", "needs targets", "label-only rows")
    assert "single word piece" not in line


def test_rows_without_a_task_beside_rows_with_one_are_refused(checkpoint, tmp_path):  # noqa: F811
    """Issue 21: `run --data mixed.tsv` with 3 of 6 rows of an empty task ran 3 instances, no note."""
    data = tmp_path / "mixed.tsv"
    data.write_text("text\tgood\tbad\ttask\n" + "the boy [MASK]\tis\tare\tsva/prep\n" * 3
                    + "the boy [MASK]\tis\tare\t\n" * 3)
    out = tmp_path / "run"
    one_line_error(runner.invoke(app, ["run", "--task", "sva/prep", "--data", str(data), "--model", str(checkpoint),
                                       "--out", str(out), "--quiet"]), "3 of 6 rows name no task")
    assert not out.exists()


def test_an_unreadable_model_directory_names_the_problem(tmp_path, monkeypatch, checkpoint):  # noqa: F811
    """Issue 21: it said "Unrecognized model ... model_type"."""
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelError, match="has no config.json"):
        load_model(str(empty))
    import builtins

    real = builtins.open

    def denied(path, *args, **kwargs):
        if str(path).startswith(str(checkpoint)):
            raise PermissionError(13, "Permission denied", str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", denied)
    with pytest.raises(ModelError, match=r"cannot read the checkpoint .*config.json: Permission denied"):
        load_model(str(checkpoint))


def test_permission_denied_on_a_path_looked_at_is_one_line(tmp_path, monkeypatch):
    from influence_patterns.cli.app import user_errors

    @user_errors
    def command():
        raise PermissionError(13, "Permission denied", "/some/dir")

    with pytest.raises(Exception) as err:
        command()
    assert getattr(err.value, "exit_code", None) == 2


# --- the terminal ----------------------------------------------------------------------------


def run_main(argv, stdout) -> int:
    from influence_patterns.cli import main

    old = sys.argv
    sys.argv = ["influence-patterns", *argv]
    try:
        with pytest.raises(SystemExit) as exit_:
            main()
    finally:
        sys.argv = old
    return exit_.value.code


def test_an_ascii_terminal_gets_escapes_not_a_unicode_error(monkeypatch):
    """Issue 21: PYTHONIOENCODING=ascii was a UnicodeEncodeError."""
    buffer = io.BytesIO()
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(buffer, encoding="ascii"))
    assert run_main(["tasks"], sys.stdout) == 0
    sys.stdout.flush()
    assert b"sva/prep" in buffer.getvalue()


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux)")
def test_output_to_a_full_device_is_one_line(monkeypatch, capsys):
    """Issue 21: `tasks > /dev/full` was an OSError traceback."""
    full = open("/dev/full", "w")
    monkeypatch.setattr(sys, "stdout", full)
    assert run_main(["tasks"], full) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == ["Error: cannot write the output: No space left on device"]


# --- API types -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def explainer(mlm_checkpoint):
    return Explainer.from_pretrained(str(mlm_checkpoint), steps=2)


def test_numpy_integers_are_sources(explainer):
    """Issue 21: `sources=[np.int64(2)]` was refused as "must be an integer"."""
    a = explainer.explain("the boy [MASK]", targets="is,are", sources=[np.int64(2)])
    b = explainer.explain("the boy [MASK]", targets="is,are", sources=[2])
    assert [p.source_index for p in a.patterns] == [2] and a.patterns[0].positions == b.patterns[0].positions


def test_a_fractional_influence_source_is_refused(explainer):
    """Issue 21: `influence(source=1.5)` was an IndexError."""
    with pytest.raises(InputError, match="source must be a word-piece position"):
        explainer.influence("the boy [MASK]", source=1.5, targets="is,are")
    assert np.isfinite(explainer.influence("the boy [MASK]", source=np.int64(2), targets="is,are"))


def test_fractional_max_rows_is_refused(mlm_checkpoint):
    """Issue 21: `max_rows=2.5` was a TypeError from deep inside."""
    with pytest.raises(InputError, match="max_rows must be a whole number"):
        Explainer.from_pretrained(str(mlm_checkpoint), max_rows=2.5)


def test_explainer_without_a_model_or_tokenizer_is_refused(explainer):
    """Issue 21: `Explainer(None, tok)` / `Explainer(model, None)` were AttributeErrors."""
    with pytest.raises(InputError, match="model must be a loaded .*from_pretrained"):
        Explainer(None, explainer.tokenizer)
    with pytest.raises(InputError, match="tokenizer must be a Hugging Face tokenizer, got NoneType"):
        Explainer(explainer.model, None)


def test_run_dataset_refuses_nothing_written_for_bad_workers(checkpoint, data_file, tmp_path):  # noqa: F811
    out = tmp_path / "run"
    with pytest.raises(InputError, match="workers must be at least 1"):
        run_dataset(RunOptions(model=str(checkpoint), task="sva/prep", n=2, data=str(data_file)), out,
                    backend=__import__("influence_patterns.runs", fromlist=["BackendOptions"]).BackendOptions(
                        "local", workers=0))
    assert listing(tmp_path) == []
