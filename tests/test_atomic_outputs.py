"""Atomic outputs (issue 21): every file written, figures included, goes through the atomic
writer (a full disk leaves the earlier file whole and no partial one); a command checks
that it can write its outputs before it computes; a refused command writes nothing."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from influence_patterns import Explainer
from influence_patterns.cli import app
from influence_patterns.errors import OutputError
from influence_patterns.fileio import check_writable, write_text
from influence_patterns.runs import RunOptions, run_dataset
from influence_patterns.tasks.instance import Instance
from influence_patterns.tasks.loaders import save_instances

from conftest import run_args
from hostile_cases import listing, one_line_error

runner = CliRunner()


def disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.fixture(scope="module")
def explanation_file(mlm_checkpoint, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("expl") / "result.json"
    Explainer.from_pretrained(str(mlm_checkpoint), steps=2).explain("the boy [MASK]", targets="is,are").save(path)
    return path


@pytest.fixture
def full_savefig(monkeypatch):
    """matplotlib writes half a file, then the disk is full."""
    from matplotlib.figure import Figure

    def savefig(self, fname, *args, **kwargs):
        Path(fname).write_bytes(b"<svg partial")
        disk_full()

    monkeypatch.setattr(Figure, "savefig", savefig)


@pytest.mark.parametrize("suffix", [".svg", ".png"])
def test_a_figure_on_a_full_disk_keeps_the_earlier_one(explanation_file, tmp_path, full_savefig, suffix):
    """Issue 21: `plot ... --out full/fig.svg` replaced a valid SVG with a truncated one (and
    a traceback); a PNG left a 4 KiB partial file."""
    out = tmp_path / f"fig{suffix}"
    out.write_bytes(b"the earlier, valid figure")
    one_line_error(runner.invoke(app, ["plot", str(explanation_file), "--out", str(out)]),
                   f"cannot write {out}: No space left on device")
    assert out.read_bytes() == b"the earlier, valid figure"
    assert listing(tmp_path) == [out.name]  # no temporary or partial file left


def test_a_new_figure_on_a_full_disk_leaves_no_file(explanation_file, tmp_path, full_savefig):
    out = tmp_path / "new.png"
    one_line_error(runner.invoke(app, ["plot", str(explanation_file), "--out", str(out)]), "No space left")
    assert listing(tmp_path) == []


def test_a_run_figure_is_written_atomically_too(checkpoint, data_file, tmp_path, full_savefig):  # noqa: F811
    out = tmp_path / "run"
    assert runner.invoke(app, run_args(checkpoint, data_file, out, n=2)).exit_code == 0
    fig = tmp_path / "agg.svg"
    one_line_error(runner.invoke(app, ["plot", str(out), "--out", str(fig)]), "No space left")
    assert not fig.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_plot_into_a_missing_subdirectory_creates_it(explanation_file, tmp_path):
    out = tmp_path / "a" / "b" / "fig.svg"
    result = runner.invoke(app, ["plot", str(explanation_file), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_bytes().startswith(b"<?xml")


def test_disk_full_message_names_the_path_once(tmp_path, monkeypatch):
    """Issue 21: disk full read "cannot write X: cannot write X: ..."."""
    import influence_patterns.fileio as fileio

    monkeypatch.setattr(fileio.os, "fsync", disk_full)
    with pytest.raises(OutputError) as err:
        write_text(tmp_path / "x.txt", "data")
    assert str(err.value) == f"cannot write {tmp_path / 'x.txt'}: No space left on device"
    assert listing(tmp_path) == []


def test_saved_instances_are_written_atomically(tmp_path, monkeypatch):
    path = tmp_path / "data.jsonl"
    path.write_text("earlier\n")
    import influence_patterns.tasks.loaders as loaders

    real = loaders._open_text

    def half(p, mode="rt"):
        f = real(p, mode)
        f.write("{\"text\": \"half")
        f.close()
        disk_full()

    monkeypatch.setattr(loaders, "_open_text", half)
    with pytest.raises(OutputError, match="No space left"):
        save_instances(path, [Instance(text="the boy [MASK]", targets=("is", "are"))])
    assert path.read_text() == "earlier\n" and listing(tmp_path) == ["data.jsonl"]


# --- writability is checked before any work --------------------------------------------------


@pytest.fixture
def no_model(monkeypatch):
    """Loading a model fails the test: the command must refuse before it."""

    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded: the write should have been refused first")

    monkeypatch.setattr(Explainer, "from_pretrained", classmethod(lambda cls, *a, **k: refuse()))
    import influence_patterns.models.loading as loading

    monkeypatch.setattr(loading, "load_model", refuse)


@pytest.fixture
def permission_denied(monkeypatch, tmp_path):
    """Writing in tmp_path/locked is refused as for a read-only directory (the tests run as
    root, whom chmod does not stop): the probe's temporary file cannot be created there."""
    import influence_patterns.fileio as fileio

    locked = tmp_path / "locked"
    locked.mkdir()
    real = fileio.tempfile.mkstemp

    def mkstemp(*args, dir=None, **kwargs):
        if dir is not None and Path(dir) == locked:
            raise PermissionError(errno.EACCES, "Permission denied")
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(fileio.tempfile, "mkstemp", mkstemp)
    return locked


def test_explain_json_into_an_unwritable_directory_is_refused_before_computing(mlm_checkpoint, permission_denied,
                                                                                no_model):
    for flag, name in (("--json", "r.json"), ("--plot", "r.svg")):
        result = runner.invoke(app, ["explain", "the boy [MASK]", "--targets", "is,are", "--model",
                                     str(mlm_checkpoint), flag, str(permission_denied / name)])
        one_line_error(result, f"cannot write {permission_denied / name} ({flag}): Permission denied")
    assert listing(permission_denied) == []


def test_explain_json_under_a_file_is_refused_before_computing(mlm_checkpoint, tmp_path, no_model):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = runner.invoke(app, ["explain", "the boy [MASK]", "--targets", "is,are", "--model", str(mlm_checkpoint),
                                 "--json", str(blocker / "r.json")])
    one_line_error(result, "is not a directory")


def test_run_into_an_unwritable_directory_is_refused_before_loading(checkpoint, data_file, permission_denied,  # noqa: F811
                                                                    no_model):
    out = permission_denied / "run"
    one_line_error(runner.invoke(app, run_args(checkpoint, data_file, out, n=2)), "Permission denied")
    assert listing(permission_denied) == []


def test_report_and_analyze_outputs_are_checked_before_computing(checkpoint, data_file, tmp_path,  # noqa: F811
                                                                 permission_denied, monkeypatch):
    out = tmp_path / "run"
    assert runner.invoke(app, run_args(checkpoint, data_file, out, n=2)).exit_code == 0
    import influence_patterns.analysis.analyze as analyze

    monkeypatch.setattr(analyze, "analyze_runs", lambda *a, **k: pytest.fail("computed before refusing"))
    import influence_patterns.viz.report_html as report_html

    monkeypatch.setattr(report_html, "findings", lambda *a, **k: pytest.fail("computed before refusing"))
    target = permission_denied / "r"
    one_line_error(runner.invoke(app, ["report", str(out), "--html", f"{target}.html"]), "(--html): Permission denied")
    one_line_error(runner.invoke(app, ["report", str(out), "--out", f"{target}.md"]), "(--out): Permission denied")
    one_line_error(runner.invoke(app, ["analyze", str(out), "--json", f"{target}.json"]), "(--json)")
    one_line_error(runner.invoke(app, ["analyze", str(out), "--csv", f"{target}.csv"]), "(--csv)")
    assert listing(permission_denied) == []


def test_check_writable_leaves_nothing_behind(tmp_path):
    check_writable(tmp_path / "new" / "deeper" / "file.json")  # missing parents: fine, not created
    assert listing(tmp_path) == []
    with pytest.raises(OutputError, match="it is a directory"):
        check_writable(tmp_path)


# --- a refused run writes nothing -------------------------------------------------------------


def rows(path: Path, texts: list[str]) -> Path:
    with open(path, "w") as f:
        for text in texts:
            f.write(json.dumps({"text": text, "targets": ["is", "are"], "task": "sva/prep"}) + "\n")
    return path


def test_a_bad_row_7_is_refused_before_the_first_write(checkpoint, tmp_path):  # noqa: F811
    """Issue 21: a bad row 7 in a JSONL wrote rows 1-6 and failed at row 7 on every resume."""
    texts = ["the boy [MASK]"] * 6 + ["the " + "boy " * 80 + "[MASK]"]  # row 7: longer than the model takes
    data = rows(tmp_path / "d.jsonl", texts)
    out = tmp_path / "run"
    opts = RunOptions(model=str(checkpoint), task="sva/prep", data=str(data), steps=2)
    with pytest.raises(Exception, match=r"instance 6 .* cannot be explained: the text is \d+ word pieces long"):
        run_dataset(opts, out, progress=False)
    assert not out.exists()


def test_a_huge_line_writes_nothing(checkpoint, tmp_path):  # noqa: F811
    """Issue 21: `run --data` with a 1 MB line left run.json and an empty results.jsonl
    (100 KB here: the same path, faster with the tests' slow tokenizer)."""
    data = rows(tmp_path / "d.jsonl", ["the boy [MASK] " + "very " * 20_000])
    out = tmp_path / "run"
    args = ["run", "--task", "sva/prep", "--data", str(data), "--model", str(checkpoint), "--out", str(out),
            "--steps", "2", "--quiet"]
    one_line_error(runner.invoke(app, args), "instance 0", "word pieces long")
    assert not out.exists()


@pytest.mark.parametrize("extra, needle", [
    (["--backend", "ray", "--workers", "0"], "workers must be at least 1"),
    (["--backend", "nowhere"], "unknown backend"),
])
def test_a_bad_backend_writes_nothing(checkpoint, data_file, tmp_path, extra, needle, no_model):  # noqa: F811
    """Issue 21: `--backend ray --workers 0` left a run.json."""
    out = tmp_path / "run"
    one_line_error(runner.invoke(app, run_args(checkpoint, data_file, out, *extra, n=2)), needle)
    assert not out.exists()
