"""What a new user meets in the first hour: threads under load, progress in pipes and
dumb terminals, tables at 80 and 200 columns, --help, hub names offline (issue 26)."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from rich.console import Console
from typer.testing import CliRunner

from influence_patterns import progress, threads
from influence_patterns.cli import app
from influence_patterns.errors import InputError, ModelError
from influence_patterns.models import loading

from conftest import run_args, save_checkpoint

runner = CliRunner()


# ---------------------------------------------------------------- threads


@pytest.fixture
def restore_threads(monkeypatch):
    before = torch.get_num_threads()
    monkeypatch.setattr(threads, "_applied", None)
    yield
    torch.set_num_threads(before)


def test_threads_env_is_honoured_and_checked(monkeypatch, restore_threads):
    monkeypatch.setenv(threads.THREADS_ENV, "1")
    assert threads.use_threads() == 1 and torch.get_num_threads() == 1
    monkeypatch.setenv(threads.THREADS_ENV, "0")
    with pytest.raises(InputError, match="at least 1"):
        threads.requested()
    monkeypatch.setenv(threads.THREADS_ENV, "two")
    with pytest.raises(InputError, match="whole number"):
        threads.requested()


def test_threads_follow_idle_cores_without_the_env(monkeypatch, restore_threads):
    monkeypatch.delenv(threads.THREADS_ENV, raising=False)
    monkeypatch.setattr(threads, "busy_cores", lambda window=1.0: 1.7)
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 2)
    torch.set_num_threads(2)
    assert threads.use_threads() == 1 and torch.get_num_threads() == 1
    assert threads.use_threads() == 1  # chosen once per process


def test_explain_and_run_honour_and_record_the_threads(checkpoint, data_file, tmp_path, monkeypatch,  # noqa: F811
                                                       restore_threads):
    monkeypatch.setenv(threads.THREADS_ENV, "1")
    torch.set_num_threads(2)
    res = runner.invoke(app, ["explain", "the boy [MASK] good", "-t", "is,are", "--model", str(checkpoint),
                              "--steps", "2", "--json", str(tmp_path / "e.json")])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "e.json").read_text())["threads"] == 1
    assert torch.get_num_threads() == 1
    monkeypatch.setattr(threads, "_applied", None)  # as in a new process
    torch.set_num_threads(2)
    res = runner.invoke(app, run_args(checkpoint, data_file, tmp_path / "run", n=2))
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "run" / "run.json").read_text())["threads"] == 1
    monkeypatch.setattr(threads, "_applied", None)  # as in a new process
    torch.set_num_threads(2)
    res = runner.invoke(app, ["ablate", str(tmp_path / "run"), "--methods", "pattern,random", "--resamples", "10",
                              "--json", str(tmp_path / "a.json"), "--quiet"])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "a.json").read_text())["settings"]["threads"] == 1


# ---------------------------------------------------------------- progress


def test_count_and_percent_come_from_one_number_and_time_has_one_format():
    line = progress.fmt_status(1.14, 6, 20.0)
    assert line.startswith("1/6 16%")  # not "1/6 19%"
    assert "elapsed 0:20, about 1:25 left" in line
    assert progress.fmt_status(0, 6, 3.0).endswith("left ?")
    assert progress.fmt_clock(3725) == "1:02:05" and progress.fmt_clock(None) == "?"


def test_dumb_terminal_gets_plain_periodic_lines(monkeypatch):
    monkeypatch.setenv("TERM", "dumb")
    monkeypatch.setattr(progress, "PLAIN_EVERY", 0.0)
    out = io.StringIO()
    with progress.Bar(4, "explaining", True, stream=out) as bar:
        for _ in range(4):
            bar.advance(1)
    lines = out.getvalue().splitlines()
    assert len(lines) == 5  # one per update and one at the end
    assert lines[-1].startswith("explaining: 4/4 100% · elapsed")
    assert "\r" not in out.getvalue() and "\x1b" not in out.getvalue()


def test_no_bar_when_stderr_is_not_a_terminal(monkeypatch):
    monkeypatch.setenv("TERM", "xterm")
    out = io.StringIO()
    with progress.open_bar(3, "work", None) as bar:  # pytest's stderr is no terminal
        bar.advance(3)
    assert not bar.show
    assert progress.enabled(None) is False


def test_run_piped_prints_no_bar(checkpoint, data_file, tmp_path):  # noqa: F811
    args = [a for a in run_args(checkpoint, data_file, tmp_path / "run", n=2) if a != "--quiet"]
    proc = subprocess.run([sys.executable, "-c", "from influence_patterns.cli import main; main()", *args], capture_output=True, text=True,
                          env={**os.environ, "TERM": "xterm", "INFLUENCE_PATTERNS_THREADS": "1"}, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "explaining" not in proc.stdout and "explaining" not in proc.stderr
    assert "\r" not in proc.stdout + proc.stderr


@pytest.mark.parametrize("term", ["dumb", "xterm"])
def test_run_draws_progress_on_a_terminals_stderr_only(term, checkpoint, data_file, tmp_path):  # noqa: F811
    """stderr a terminal (a pty), stdout a pipe: the bar (xterm) or a plain line (dumb) on
    stderr, the command's own output alone on stdout."""
    import pty

    args = [a for a in run_args(checkpoint, data_file, tmp_path / "run", n=2) if a != "--quiet"]
    leader, follower = pty.openpty()
    try:
        proc = subprocess.run([sys.executable, "-c", "from influence_patterns.cli import main; main()", *args],
                              stdout=subprocess.PIPE, stderr=follower, text=True, timeout=600,
                              env={**os.environ, "TERM": term, "COLUMNS": "100", "INFLUENCE_PATTERNS_THREADS": "1"})
        os.close(follower)
        err = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the pty is closed and drained
                break
            if not chunk:
                break
            err += chunk
    finally:
        os.close(leader)
    err_text = err.decode("utf-8", "replace")
    assert proc.returncode == 0, err_text
    assert "explaining" not in proc.stdout and "results.jsonl" in proc.stdout
    if term == "dumb":
        assert re.search(r"explaining: 2/2 100% · elapsed \d+:\d\d", err_text), err_text
        assert "\x1b" not in err_text and "\r" not in err_text.replace("\r\n", "\n")  # no redraws
    else:
        assert "explaining" in err_text and "\x1b[" in err_text  # a drawn bar, then cleared (transient)


# ---------------------------------------------------------------- tables and help


def analysis_result() -> dict:
    pattern = "L1–3 skip → L4 H1@verb → L5–6 skip"
    run = {"task": "sva/obj_rel_no_that_across", "instances": 200, "accuracy": 0.93, "mean_qoi": 4.2,
           "skip_share": 0.8, "skip_to_head_ratio": 4.03, "skip_to_head_ratio_weighted": 4.49,
           "skip_to_head_ratio_ci": {"value": 4.03, "ci": [3.65, 4.42]},
           "skip_to_head_ratio_weighted_ci": {"value": 4.49, "ci": [4.27, 4.71]},
           "num_layers": 6, "per_layer": [{"skip_share": 0.9}] * 6,
           "consistency": {"subject": {"n": 200, "distinct": 4, "top_frequency": 0.8, "entropy": 0.97,
                                       "top_pattern": pattern}}}
    return {"runs": [run], "correlation": None}


@pytest.mark.parametrize("width", [80, 200])
def test_analyze_tables_use_the_width_and_show_cis(width, monkeypatch):
    from influence_patterns.viz.tables import print_analysis

    monkeypatch.setenv("COLUMNS", str(width))
    out = io.StringIO()
    print_analysis(analysis_result(), Console(file=out))  # width from $COLUMNS, as in a pipe
    text = out.getvalue()
    assert max(len(line) for line in text.splitlines()) <= width
    assert "4.03" in text and "3.65" in text and "4.42" in text  # the CI, not the value alone
    pattern_on_one_line = any("L1–3 skip → L4 H1@verb → L5–6 skip" in line for line in text.splitlines())
    assert pattern_on_one_line == (width == 200)
    assert "4.03 [3.65, 4.42]" in text and "4.49 [4.27, 4.71]" in text  # never broken inside


def test_report_summary_wraps_at_words_and_shows_values():
    from influence_patterns.viz.tables import summary_lines

    rows = [{"finding": "skips are taken more than a random model's structure gives (skip:head steps; paper ≈ 3)",
             "value": {"value": 4.03, "ci": [3.7, 4.43]}, "reference": "ceiling L−1 = 5",
             "verdict": "inconclusive: no null (run with --null random-init)"}]
    lines = summary_lines(rows, 80)
    assert all(len(line) <= 80 for line in lines)
    words = " ".join(lines).split()
    assert "paper" in words and "4.03 [3.70, 4.43]" in " ".join(lines)
    assert len(summary_lines(rows, 200)) == 1


def test_help_is_plain_and_fits_80_columns():
    res = runner.invoke(app, ["explain", "--help"], env={"COLUMNS": "80"}, terminal_width=80)
    assert res.exit_code == 0
    lines = res.output.splitlines()
    assert "Usage: influence-patterns explain [OPTIONS] TEXT" in lines[0]
    assert "<bool>" not in res.output and "{text}" not in res.output
    assert len(lines) <= 70, len(lines)  # 99 before; --by-word and --csv (own data) added since
    assert max(len(line) for line in lines) <= 80
    assert "--keep-special " in res.output  # a flag: no value shown
    top = runner.invoke(app, ["--help"], terminal_width=80)
    assert "logit[good]" in top.output and "\\[" not in top.output  # the glossary, unescaped


# ---------------------------------------------------------------- hub names offline


def test_hub_name_fails_fast_when_the_hub_is_unreachable(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(loading, "hub_reachable", lambda timeout=3.0: False)
    start = time.perf_counter()
    with pytest.raises(ModelError, match=r"cannot be reached.*local checkpoint directory.*HF_HUB_OFFLINE=1"):
        loading.load_model("someone/no-such-model-xyz")
    assert time.perf_counter() - start < 10


def test_hub_probe_answers_at_once_for_a_closed_port(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", "http://127.0.0.1:9")
    start = time.perf_counter()
    assert loading.hub_reachable(timeout=2.0) is False
    assert time.perf_counter() - start < 2.5


def test_hub_name_offline_from_the_cli(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    res = runner.invoke(app, ["explain", "the boy [MASK] good", "-t", "is,are", "--model", "someone/no-such-model"])
    assert res.exit_code == 2
    assert "offline mode is on" in res.output and "Traceback" not in res.output


# ---------------------------------------------------------------- one notation


def test_one_notation_roles_only_where_instances_are_aggregated():
    from conftest import ROLES, pattern, row

    from influence_patterns.analysis.consistency import pattern_key
    from influence_patterns.result import Explanation, Pattern
    from influence_patterns.runs import RunRecord

    p = pattern(2, [2, 2, 5, 6], [None, 1, 0])
    with_verb = RunRecord.from_dict(row([p]))
    without = RunRecord.from_dict(row([p], roles={k: v for k, v in ROLES.items() if v != 6}))
    assert pattern_key(with_verb, Pattern.from_dict(p))[-1] == ("H0", "verb")  # the role at the [MASK]
    assert pattern_key(without, Pattern.from_dict(p))[-1] == ("H0", "[MASK]")  # no role: the token
    one = Explanation.from_dict(row([p]))  # a single explanation names the token
    assert Pattern.from_dict(p).text(one.tokens).endswith("H0@[MASK]")


# ---------------------------------------------------------------- figures


def many_sources(n_sources: int = 20):
    from influence_patterns.result import Explanation, Pattern

    tokens = ["[CLS]"] + [f"w{k}" for k in range(n_sources)] + ["[MASK]", "[SEP]"]
    target = len(tokens) - 2
    patterns = [Pattern(k, tokens[k], 1, 0.1 * k, [k, k, target], [None, k % 2], 0.1 * k, 0.1 * k)
                for k in range(1, n_sources + 1)]
    return Explanation(model="tiny", text=" ".join(tokens[1:-1]), tokens=tokens, target_index=target,
                       num_layers=2, num_heads=2, steps=2, baseline="mask", qoi_name="agreement",
                       qoi_value=1.0, qoi_baseline_value=0.0, patterns=patterns, targets=["is", "are"])


def test_palette_stays_distinct_past_fifteen_sources():
    from influence_patterns.viz.patterns import OTHER_COLOUR, SOURCE_COLOURS, plot_explanation, source_colours

    expl = many_sources(20)
    colours = source_colours(expl.patterns)
    coloured = [c for c in colours.values() if c != OTHER_COLOUR]
    assert len(coloured) == len(set(coloured)) == len(SOURCE_COLOURS)
    grey = sorted(s for s, c in colours.items() if c == OTHER_COLOUR)
    assert grey == [1, 2, 3, 4, 5]  # the weakest by |I(π^a)|
    legend = [t.get_text() for t in plot_explanation(expl).axes[0].get_legend().get_texts()]
    assert any(t.startswith("5 weaker sources") for t in legend)


def test_head_labels_do_not_collide():
    from influence_patterns.viz.patterns import LABEL_GAP, place_labels

    same_step = [(3.0, 0.0, 6.0, 1.0, "H1", "c", "a"), (3.05, 0.0, 6.05, 1.0, "H2", "c", "b"),
                 (2.95, 0.0, 5.95, 1.0, "H0", "c", "d")]
    spots = place_labels(same_step)
    for i in range(len(spots)):
        for j in range(i):
            assert (abs(spots[i][0] - spots[j][0]) >= LABEL_GAP[0] or abs(spots[i][1] - spots[j][1]) >= LABEL_GAP[1])


def test_svg_text_is_editable_text(tmp_path):
    from conftest import four_source_explanation as explanation

    from influence_patterns.viz.patterns import plot_explanation

    out = tmp_path / "f.svg"
    plot_explanation(explanation()).savefig(out)
    svg = out.read_text()
    assert re.search(r"<text[^>]*>[^<]*boys", svg)  # a real text element, not glyph paths


def test_classifier_title_names_the_class_and_whose_label(classifier_checkpoint):
    from influence_patterns import Explainer
    from influence_patterns.viz.patterns import qoi_title

    ex = Explainer.from_pretrained(str(classifier_checkpoint), steps=2)
    ex.model.config.id2label = {0: "negative", 1: "positive"}
    given = ex.explain("a very funny movie", label=1, progress=False)
    title = qoi_title(given)
    assert "class explained: positive (1), the given (gold) label" in title
    assert "logit[positive] − logit[negative]" in title
    predicted = qoi_title(ex.explain("a very funny movie", progress=False))
    assert "the model's prediction" in predicted


def test_interactive_page_is_small_and_offline(tmp_path):
    from conftest import four_source_explanation as explanation

    from influence_patterns.viz.interactive import write_interactive

    page = write_interactive(explanation(), tmp_path / "v.html")
    text = page.read_text()
    assert page.stat().st_size <= 1_500_000
    assert "<script src=" not in text and "plotly.js (basic - minified)" in text
    from influence_patterns.viz.interactive import interactive_figure

    assert any(t.name == "boys (2) ▲ +0.6" and t.showlegend for t in interactive_figure(explanation()).data)


def test_interactive_page_fits_a_1400_px_window(tmp_path):
    from matplotlib.image import imread
    from conftest import browse
    from conftest import four_source_explanation as explanation

    from influence_patterns.viz.interactive import write_interactive

    page = write_interactive(many_sources(8), tmp_path / "v.html")
    uri = page.resolve().as_uri()
    dom = browse(page, tmp_path / "p1", "--dump-dom", "--window-size=1400,900", uri).stdout
    widths = [int(w) for w in re.findall(r'<svg class="main-svg"[^>]*?width="(\d+)"', dom)]
    assert widths and max(widths) <= 1400 and min(widths) >= 1200  # fills the window, no wider
    assert "w7 (8) ▲ +0.8" in dom  # the legend, with values, rendered
    shot = tmp_path / "shot.png"
    browse(page, tmp_path / "p2", f"--screenshot={shot}", "--window-size=1400,900", uri)
    pixels = imread(shot)[..., :3]
    assert pixels.shape[1] == 1400
    right = pixels[:, 1150:]  # the legend's column: coloured entries drawn in view
    assert (right.max(axis=2) - right.min(axis=2) > 0.3).mean() > 0.001
    del explanation


def test_role_plot_draws_only_what_is_there():
    from matplotlib.colors import to_rgb
    from conftest import by_gid
    from conftest import sample_rows as rows

    from influence_patterns.viz import plot_run
    from influence_patterns.viz.patterns import NEGATIVE

    positive_only = [dict(r, patterns=[dict(p, sign=1, influence_head=abs(p["influence_head"]) or 0.1)
                                       for p in r["patterns"]]) for r in rows()]
    fig = plot_run(positive_only)
    ax = fig.axes[0]
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "mostly negative influence" not in texts and "mostly positive influence" in texts
    assert not any(to_rgb(line.get_color()) == to_rgb(NEGATIVE) for line in by_gid(fig, "agg-step:").values())
    # a skip inside the outline sits on a tint of its own colour, never on white
    cores = [line for line in ax.get_lines() if line.get_zorder() == 2.5]
    assert any(to_rgb(c.get_color()) != (1.0, 1.0, 1.0) for c in cores)  # the top pattern has skips
    # the legend sits under the plot: the canvas is no wider than the columns need
    fig.canvas.draw()
    assert ax.get_legend().get_window_extent().y1 <= ax.get_window_extent().y0 + 1


def test_report_html_has_a_compression_figure_with_cis(checkpoint, data_file, tmp_path):  # noqa: F811
    from influence_patterns.viz.compression import plot_compression

    out = tmp_path / "run"
    assert runner.invoke(app, run_args(checkpoint, data_file, out, "--batch-size", "4", n=4)).exit_code == 0
    page = tmp_path / "r.html"
    res = runner.invoke(app, ["report", str(out), "--html", str(page), "--ablate", "--resamples", "50"])
    assert res.exit_code == 0, res.output
    assert page.read_text().count("<img") + page.read_text().count("<svg") >= 2  # role plot + compression
    summary = json.loads((out / "ablation.json").read_text())
    fig = plot_compression(summary)
    dots = [a for a in fig.findobj(lambda a: (a.get_gid() or "").startswith("compression:"))]
    assert len(dots) == 2 * len([m for m in summary["methods"] if m["accuracy_retained"]["value"] is not None])
    assert [ax.get_xlabel() for ax in fig.axes[:2]] == ["accuracy retained (value, 95% CI)",
                                                         "QoI retained (value, 95% CI)"]


def md_rows(markdown: str) -> list[list[str]]:
    """Every table row of a Markdown text (headers and rules left out), its cells unescaped."""
    lines = markdown.splitlines() + [""]
    rows = []
    for line, after in zip(lines, lines[1:]):
        if line.startswith("| ") and not after.startswith("|---"):
            cells = re.split(r"(?<!\\)\|", line.strip()[1:-1])
            rows.append([re.sub(r"\\([|`^(])", r"\1", c.strip()).replace("&lt;", "<").replace("&amp;", "&")
                         for c in cells])
    return rows


def test_report_html_renders_inline_markup_with_the_markdowns_numbers(run_dir, tmp_path):
    import html

    md, page = tmp_path / "r.md", tmp_path / "r.html"
    res = runner.invoke(app, ["report", str(run_dir), "--out", str(md), "--html", str(page), "--resamples", "20"])
    assert res.exit_code == 0, res.output
    text = page.read_text()
    report = text[:text.index('<section id="interactive-pattern-view"')]  # before plotly's own script
    assert "<code>--null norm-matched</code>" in report and "|I(π<sup>a</sup>)|" in report
    assert "`" not in report and "π^a" not in report
    html_rows = [[html.unescape(re.sub(r"<[^>]+>", "", c)) for c in re.findall(r"<td[^>]*>(.*?)</td>", tr)]
                 for tr in re.findall(r"<tr>(<td.*?)</tr>", report)]
    markdown_rows = md_rows(md.read_text())
    assert len(markdown_rows) >= 15 and html_rows == markdown_rows  # the same cells, the same numbers
    from influence_patterns.viz.html import render_html
    from influence_patterns.viz.report_html import html_cell

    one = render_html([{"title": "t", "tables": [{"columns": ["accuracy", "n"], "rows": [[1.0, 1200]],
                                                  "format": html_cell}]}], "t")
    assert "<td class=num>1.000</td><td class=num>1200</td>" in one  # not "1" (issue 26)
    assert re.search(r"<td class=ci>-?\d\.\d\d \[", report)  # a value and its CI stay on one line


def fake_status(name: str):
    """A built default model's status as ``models list`` reads it, with every template subtask."""
    from influence_patterns.models import defaults
    from influence_patterns.tasks.templates import TEMPLATE_TASKS

    heldout = [{"task": t, "accuracy": 0.875} for t in TEMPLATE_TASKS]
    sample = [{"task": t, "accuracy": 0.9375, "n": 38} for t in TEMPLATE_TASKS[:13]]
    accuracy = {"templates_trained_min": 1.0, "templates_untrained_mean": 0.738, "marvin_linzen_sample": 0.739,
                "marvin_linzen_subtask_mean": 0.789, "marvin_linzen_subtask_spread": 0.513, "sst2_dev_mlm_top1": 0.125}
    build = {"accuracy": {"templates_heldout": heldout, "marvin_linzen_sample": sample},
             "settings": {"tasks": list(TEMPLATE_TASKS[:8])}}
    return defaults.ModelStatus(name=name, built=True, path=Path("/home/someone/.cache/influence-patterns/models") / name,
                                accuracy=accuracy, build=build)


@pytest.mark.parametrize("width", [80, 200])
def test_models_list_uses_the_terminals_width(width, monkeypatch):
    from influence_patterns.models import defaults

    monkeypatch.setattr(defaults, "status", fake_status)
    res = runner.invoke(app, ["models", "list"], env={"COLUMNS": str(width)})
    assert res.exit_code == 0, res.output
    lines = [line.rstrip() for line in res.output.splitlines()]
    assert max(len(line) for line in lines) <= width and "…" not in res.output  # nothing cut
    header = next(line for line in lines if line.startswith("name"))
    # 200 columns: one table, every column side by side; 80: a block per model, long cells below
    assert ("measured accuracy" in header and "path" in header) == (width == 200)
    assert any("default-mlm-transfer" in line and "M&L sample 0.739" in line for line in lines) == (width == 200)
    assert "    /home/someone/.cache/influence-patterns/models/default-mlm-transfer" in lines or width == 200
    # the per-subtask table fits 80 columns too: one column per model, n once
    rows = [line.split() for line in lines if line.startswith("sva/obj_rel_no_that_across")]
    assert len(rows) == (2 if width == 80 else 1)  # four models: three side by side at 80, then one
    assert [cell for row in rows for cell in row if cell not in rows[0][:2]] == (["0.88", "0.94"]
                                                                                  * len(defaults.DEFAULT_MODELS))
    title = [line for line in lines if line.startswith("Accuracy per subtask")]
    assert len(title[0]) > 100 if width == 200 else len(title[0]) <= 80  # wrapped at the terminal, not the table


@pytest.mark.parametrize("width", [80, 200])
def test_tables_with_long_cells_fill_a_wide_terminal(width, monkeypatch):
    from influence_patterns.viz.terminal import Column, print_table

    monkeypatch.setenv("COLUMNS", str(width))
    pattern = " → ".join(f"L{l} H{l}@verb" for l in range(1, 13))  # 150 characters
    columns = [Column("task"), Column("n", "right"), Column("pattern", long=True), Column("note", long=True)]
    rows = [["sva/prep", "12", pattern, "a note on the row " * 4], ["ra/simple", "3", "L1–6 skip", "short"]]
    out = io.StringIO()
    print_table(columns, rows, "t", Console(file=out))
    lines = [line.rstrip() for line in out.getvalue().splitlines()]
    assert max(len(line) for line in lines) <= width
    assert any(line.split()[:4] == ["task", "n", "pattern", "note"] for line in lines) == (width == 200)
    pieces = [line for line in lines if "@verb" in line]
    assert all(p.rstrip().endswith(("@verb", "short", "row", "→ L12 H12@verb")) or "@verb  " in p
               for p in pieces)  # patterns broken before an arrow, never inside a step
    assert sum("@verb" in p for p in pieces) >= 2  # 150 characters take two lines even at 200


def all_commands():
    import typer

    def walk(command, path):
        yield path
        for name, sub in (getattr(command, "commands", None) or {}).items():
            if not sub.hidden:
                yield from walk(sub, [*path, name])

    return list(walk(typer.main.get_command(app), []))


@pytest.mark.parametrize("width", [80, 200])
def test_every_help_is_plain_and_fits_the_width(width):
    commands = all_commands()
    assert ["explain"] in commands and ["models", "list"] in commands and len(commands) >= 12
    for path in commands:
        res = runner.invoke(app, [*path, "--help"], env={"COLUMNS": str(width)}, terminal_width=width)
        assert res.exit_code == 0, path
        lines = res.output.splitlines()
        assert re.match(r"Usage: influence-patterns [a-z ]*\[OPTIONS\]( [A-Z.]+| COMMAND \[ARGS\]\.\.\.)?$",
                        lines[0]), lines[0]
        assert max(len(line) for line in lines) <= width, path
        for bad in ("<bool>", "{", "\\["):
            assert bad not in res.output, (path, bad)
        starts = [m.start(2) for m in (re.match(r"(\s+-\S.*?\s{2,})(\S)", line) for line in lines) if m]
        assert all(s <= 32 for s in starts), (path, max(starts))  # at 80: 48 characters or more of description


def test_report_stdout_uses_the_width_and_breaks_only_between_words(run_dir, tmp_path):
    outputs = {}
    for width in (80, 200):
        res = runner.invoke(app, ["report", str(run_dir), "--resamples", "20", "--out", str(tmp_path / "r.md")],
                            env={"COLUMNS": str(width)})
        assert res.exit_code == 0, res.output
        lines = res.output.splitlines()
        assert max(len(line) for line in lines) <= width
        outputs[width] = lines
    assert max(len(line) for line in outputs[200]) > 120 and len(outputs[200]) < len(outputs[80])
    words = {w: " ".join(lines).split() for w, lines in outputs.items()}
    assert words[80] == words[200]  # the same words: none broken at either width
    assert any(re.search(r"\d\.\d\d \[-?\d\.\d\d, -?\d\.\d\d\] .*→", line) for line in outputs[200])  # values by verdicts
