"""Injection (issue 21): text from the user or a data file never reaches the terminal raw
(escape sequences are shown escaped on the success path too), never chooses where a file
is written, and stays inert text in report.md."""

from __future__ import annotations

import html
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from influence_patterns.cli import app
from influence_patterns.fileio import safe_name

from conftest import run_args
from hostile_cases import copy_run

runner = CliRunner()

PAYLOAD = "the \x1b[31mboy\x1b]0;pwned\x07 near\x1b[2J [MASK]"


def test_escape_sequences_in_the_text_are_shown_escaped_on_success(mlm_checkpoint):
    """Issue 21: `explain` echoed raw escape sequences (a title change, a clear-screen) in the
    table header; errors escaped them already, the success path must too."""
    result = runner.invoke(app, ["explain", PAYLOAD, "--targets", "is,are", "--model", str(mlm_checkpoint),
                                 "--steps", "2", "--quiet"])
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.output and "\x07" not in result.output
    assert "\\x1b]0;pwned\\x07" in result.output  # shown, escaped


def test_escape_sequences_in_table_cells_are_escaped():
    from rich.console import Console

    from influence_patterns.viz.terminal import Column, print_table

    console = Console(record=True, width=120, force_terminal=False)
    print_table([Column("task"), Column("value")], [["\x1b[2Jtask", "1"]], "title \x1b]0;x\x07\nsecond line", console)
    text = console.export_text()
    assert "\x1b" not in text and "\x07" not in text
    assert "\\x1b[2Jtask" in text and "title \\x1b]0;x\\x07" in text and "second line" in text


def test_a_role_name_cannot_place_a_file_outside_the_run(checkpoint, tmp_path):  # noqa: F811
    """Issue 21: a role named `/../../../escaped` in a data file made `ablate --sources`
    write escaped.json outside the run directory."""
    role = "/../../../escaped"
    data = tmp_path / "d.jsonl"
    with open(data, "w") as f:
        for subject in ("boy", "girl", "dog"):
            f.write(json.dumps({"text": f"the {subject} [MASK]", "targets": ["is", "are"], "task": "sva/prep",
                                "roles": {role: 1, "subject": 1}}) + "\n")
    out = tmp_path / "a" / "b" / "c" / "run"
    args = ["run", "--task", "sva/prep", "--data", str(data), "--model", str(checkpoint), "--out", str(out),
            "--steps", "2", "--quiet"]
    assert runner.invoke(app, args).exit_code == 0
    result = runner.invoke(app, ["ablate", str(out), "--methods", "pattern,random", "--sources", role,
                                 "--resamples", "10", "--quiet"])
    assert result.exit_code == 0, result.output
    written = sorted(p.name for p in out.iterdir() if p.name.startswith("ablation"))
    assert written == [f"ablation-{safe_name(role)}.json"]
    assert [p for p in tmp_path.rglob("*escaped*") if p.parent != out] == []


@pytest.mark.parametrize("name", ["/../../x", "..", ".hidden", "a/b", "ok-name_1.2", "é", "\x1b[31m", ""])
def test_safe_name_stays_one_plain_path_component(name, tmp_path):
    safe = safe_name(name)
    assert safe and "/" not in safe and "\\" not in safe and not safe.startswith(".")
    assert all(ch.isalnum() or ch in "._-" for ch in safe)
    assert (tmp_path / safe).resolve().parent == tmp_path.resolve()
    if name == "ok-name_1.2":
        assert safe == name  # a plain name is kept as it is
    assert safe_name("a/b") != safe_name("a_b")  # different names stay different


def evil_run(checkpoint: Path, data_file: Path, tmp_path: Path, task: str, model: str) -> Path:
    """A 3-instance run whose run.json and rows name ``task`` and ``model``."""
    run = tmp_path / "run"
    assert runner.invoke(app, run_args(checkpoint, data_file, run, n=3)).exit_code == 0
    evil = copy_run(run, tmp_path / "evil")
    meta = json.loads((evil / "run.json").read_text())
    meta["task"], meta["model"] = task, model
    (evil / "run.json").write_text(json.dumps(meta))
    rows = [json.loads(line) for line in (evil / "results.jsonl").read_text().splitlines()]
    (evil / "results.jsonl").write_text("".join(json.dumps({**r, "task": task}) + "\n" for r in rows))
    return evil


def test_report_markdown_keeps_task_and_model_strings_inert(checkpoint, data_file, tmp_path):  # noqa: F811
    """Issue 21: report.md inserted task and model strings raw, so `<script>` reached
    Markdown renderers that allow HTML."""
    script, image = "<script>alert(1)</script>", "<img src=x onerror=alert(1)>"
    evil = evil_run(checkpoint, data_file, tmp_path, script, image)
    out = tmp_path / "r.md"
    result = runner.invoke(app, ["report", str(evil), "--out", str(out), "--resamples", "10"])
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert "<script" not in text and "<img" not in text
    assert "&lt;script>alert(1)&lt;/script>" in text  # shown as text


def test_markdown_escaping_keeps_plain_text_readable():
    from influence_patterns.viz.report_html import md_text

    assert md_text("sva/obj_rel_across: 6 instances (< 30)") == "sva/obj_rel_across: 6 instances (< 30)"
    assert md_text("[click](javascript:alert(1))") == "[click]\\(javascript:alert(1))"
    assert md_text("a|b\nc") == "a\\|b\\nc"


def test_report_html_keeps_task_and_model_strings_inert(checkpoint, data_file, tmp_path):  # noqa: F811
    """report.html renders the report's inline Markdown (code spans, π^a): the task and model
    strings from the data stay text there too, whatever markup they carry."""
    script, image = "<script>alert(1)</script>", "`<img src=x onerror=alert(1)>`^b &lt;i>"
    evil = evil_run(checkpoint, data_file, tmp_path, script, image)
    page = tmp_path / "r.html"
    result = runner.invoke(app, ["report", str(evil), "--html", str(page), "--resamples", "10"])
    assert result.exit_code == 0, result.output
    text = page.read_text()
    assert "<script>alert" not in text and "<img src=x" not in text and "<i>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text  # shown as text
    assert "`&lt;img src=x onerror=alert(1)&gt;`^b &amp;lt;i&gt;" in text  # the model, as written


def test_inline_markdown_renders_code_and_superscripts_and_escapes_the_rest():
    from influence_patterns.viz.html import inline_html
    from influence_patterns.viz.report_html import md_text

    assert inline_html("run `--null norm-matched` on I(π^a)") == (
        "run <code>--null norm-matched</code> on I(π<sup>a</sup>)")
    assert inline_html("a <b> & `<i>` \\` x") == "a &lt;b&gt; &amp; <code>&lt;i&gt;</code> ` x"
    assert inline_html("`\" onmouseover=\"x`") == "<code>&quot; onmouseover=&quot;x</code>"
    for data in ("`a`^b", "<script>", "\\`x`", "a\\|b", "&lt;", "![x](javascript:y)"):
        rendered = inline_html(md_text(data))
        assert "<code>" not in rendered and "<sup>" not in rendered and "<" not in rendered.replace("&lt;", "")
        assert html.unescape(rendered) == data  # the data, as it was


def test_interactive_view_in_report_html_keeps_tokens_inert():
    """The report's interactive view embeds tokens in a <script> (plotly's JSON) and in hover
    text: a token that closes the script stays text."""
    from conftest import four_source_explanation

    from influence_patterns.viz.interactive import interactive_div

    expl = four_source_explanation()
    evil = "</script><script>alert(1)</script>"
    expl.tokens[2] = evil
    expl.patterns[0].source_token = evil
    div = interactive_div(expl, include_plotlyjs=False)
    assert "alert(1)" in div  # the token is there
    assert "<script>alert" not in div and div.count("</script>") == 1  # only plotly's own script ends
