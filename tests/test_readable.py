"""Readable everywhere: one pattern notation, 80-column terminals, notebook methods,
progress, help texts, the interactive view (issue 16)."""

from __future__ import annotations

import ast
import json
import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from influence_patterns.attribution.inputs import Query
from influence_patterns.cli import app
from influence_patterns.explainer import Explainer
from influence_patterns.result import Explanation, Pattern, format_steps, position_label

runner = CliRunner()
SRC = Path(__file__).resolve().parents[1] / "src" / "influence_patterns"
TOKENS = ["[CLS]", "the", "boys", "near", "the", "girl", "[MASK]", "funny", ".", "[SEP]"]


def explanation() -> Explanation:
    patterns = [
        Pattern(2, "boys", 1, 1.5, [2, 2, 6, 6, 6], [None, 2, None, 1], 1.0, 0.6),
        Pattern(5, "girl", -1, -0.8, [5, 5, 5, 6, 6], [None, None, 0, None], -0.5, -0.3),
        Pattern(4, "the", 1, 0.2, [4, 1, 1, 6, 6], [1, None, 2, 0], 0.1, 0.05),
    ]
    return Explanation(
        model="tiny", text="the boys near the girl [MASK] funny .", tokens=list(TOKENS),
        target_index=6, num_layers=4, num_heads=3, steps=10, baseline="mask",
        qoi_name="agreement", qoi_value=1.234, qoi_baseline_value=0.0,
        patterns=patterns, targets=["are", "is"],
    )


# ---------------------------------------------------------------- one notation


def test_format_steps_merges_runs_of_staying_steps():
    steps = [("skip", None)] * 3 + [("H1", "[MASK]")] + [("skip", None)] * 2
    assert format_steps(steps) == "L1–3 skip → L4 H1@[MASK] → L5–6 skip"
    # A head that stays on its position prints without @; two moves never merge.
    assert format_steps([("H3", None), ("H3", None), ("H1", "x"), ("H1", "x")]) == "L1–2 H3 → L3 H1@x → L4 H1@x"
    assert format_steps([]) == ""


def test_pattern_text_names_positions_by_token():
    expl = explanation()
    boys, girl, the = expl.patterns
    assert boys.text(expl.tokens) == "L1 skip → L2 H2@[MASK] → L3 skip → L4 H1"
    assert girl.text(expl.tokens) == "L1–2 skip → L3 H0@[MASK] → L4 skip"
    # "the" occurs twice: the index tells them apart.
    assert the.text(expl.tokens) == "L1 H1@the(1) → L2 skip → L3 H2@[MASK] → L4 H0"
    assert position_label(1, TOKENS) == "the(1)" and position_label(2, TOKENS) == "boys"
    assert boys.text() == "L1 skip → L2 H2@6 → L3 skip → L4 H1"


def test_every_printer_uses_the_one_notation():
    from influence_patterns.analysis.consistency import key_text
    from influence_patterns.viz.aggregate import _compact

    assert key_text((("skip", "stay"),) * 3 + (("H1", "verb"),) + (("skip", "stay"),) * 2) == \
        "L1–3 skip → L4 H1@verb → L5–6 skip"
    nodes = (("x", "subject"),) + (("skip", "subject"),) * 3 + (("H1", "verb"),) + (("skip", "verb"),) * 2
    assert _compact(nodes) == "L1–3 skip → L4 H1@verb → L5–6 skip"
    old_forms = re.compile(r"L\d+\.H\d+|L\d+\.skip|→target")
    for path in [SRC / "viz" / "terminal.py", SRC / "viz" / "notebook.py", SRC / "viz" / "aggregate.py"]:
        assert not old_forms.search(path.read_text()), path


def test_result_never_imports_viz_at_module_level():
    tree = ast.parse((SRC / "result.py").read_text())
    for node in tree.body:  # module level only; methods may import the presentation lazily
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
            assert not any("viz" in n or "display" in n for n in names), names
    assert not (SRC / "display.py").exists()
    done = subprocess.run(
        [sys.executable, "-c", "import sys, influence_patterns.result; "
         "print(sorted(m for m in sys.modules if 'viz' in m or 'matplotlib' in m))"],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


# ---------------------------------------------------------------- 80 columns


def lines_fit(output: str, width: int = 80) -> list[str]:
    lines = output.splitlines()
    too_long = [line for line in lines if len(line.rstrip()) > width]
    assert not too_long, too_long
    return lines


def line_with(lines: list[str], *parts: str) -> str:
    """The one line holding all ``parts``: a row that did not wrap."""
    found = [line for line in lines if all(p in line for p in parts)]
    assert found, f"no line holds all of {parts}"
    return found[0]


@pytest.fixture(scope="module")
def deep_checkpoint(tmp_path_factory):
    """Six layers: patterns long enough to need the narrow layout at 80 columns."""
    from conftest import make_tokenizer, save_checkpoint

    path = tmp_path_factory.mktemp("deep")
    return save_checkpoint(path, "mlm", make_tokenizer(path), layers=6, heads=4)


@pytest.mark.parametrize("columns", [80, 200])
def test_explain_fits_the_terminal(deep_checkpoint, tmp_path, columns):
    out = tmp_path / "r.json"
    res = runner.invoke(app, ["explain", "the boys near the girl [MASK] very funny", "--targets", "are,is",
                              "--model", str(deep_checkpoint), "--steps", "3", "--json", str(out)],
                        env={"COLUMNS": str(columns)})
    assert res.exit_code == 0, res.output
    lines = lines_fit(res.output, columns)
    expl = Explanation.load(out)
    for p in expl.patterns:
        line_with(lines, f"{p.source_token}@{p.source_index}", f"{p.g:+.4f}", f"{p.influence_token:+.4f}",
                  f"{p.influence_head:+.4f}")
        text = p.text(expl.tokens)
        if columns == 200:  # wide: the pattern on the row itself
            line_with(lines, f"{p.source_token}@{p.source_index}", text)
        else:  # narrow: every step of the pattern printed, broken only at arrows
            body = " ".join(line.strip() for line in lines)
            for step in text.split(" → "):
                assert step in body
    assert "heads numbered from 0" in res.output  # the legend explains the columns


def test_tasks_fit_80_columns():
    from influence_patterns.tasks.registry import list_tasks

    res = runner.invoke(app, ["tasks"], env={"COLUMNS": "80"})
    assert res.exit_code == 0, res.output
    lines = lines_fit(res.output)
    body = " ".join(line.strip() for line in lines)
    for spec in list_tasks():
        line_with(lines, spec.name, spec.kind)
        assert " ".join(spec.description.split()) in body  # whole, never cut


def test_models_list_fits_80_columns(tmp_path, monkeypatch):
    monkeypatch.setenv("INFLUENCE_PATTERNS_CACHE", str(tmp_path / ("a-rather-long-cache-directory" * 2)))
    res = runner.invoke(app, ["models", "list"], env={"COLUMNS": "80"})
    assert res.exit_code == 0, res.output
    lines = lines_fit(res.output)
    line_with(lines, "default-mlm", "no")
    line_with(lines, "default-sst2", "no")


def test_accuracy_fits_80_columns_and_reads_a_whole_sst2_file(classifier_checkpoint, tmp_path):
    data = tmp_path / "dev.tsv"
    words = ["good movie", "bad film", "a very funny movie", "not great", "awful"]
    data.write_text("sentence\tlabel\n" + "".join(f"{words[k % 5]}\t{k % 2}\n" for k in range(230)))
    res = runner.invoke(app, ["accuracy", "--model", str(classifier_checkpoint), "--task", "sa/sst2",
                              "--data", str(data), "--json", str(tmp_path / "a.json")],
                        env={"COLUMNS": "80"})
    assert res.exit_code == 0, res.output
    lines = lines_fit(res.output)
    line_with(lines, "sa/sst2", "230")
    assert json.loads((tmp_path / "a.json").read_text())["results"][0]["n"] == 230
    assert "Wrote" in res.output
    some = runner.invoke(app, ["accuracy", "--model", str(classifier_checkpoint), "--task", "sa/sst2",
                               "--data", str(data), "--n", "20", "--quiet"], env={"COLUMNS": "80"})
    assert some.exit_code == 0, some.output
    line_with(some.output.splitlines(), "sa/sst2", "20")


# ---------------------------------------------------------------- help


def test_top_level_help_explains_the_terms():
    res = runner.invoke(app, ["--help"], env={"COLUMNS": "80"})
    assert res.exit_code == 0
    text = " ".join(res.output.split())
    for term in ("QoI (quantity of interest)", "GPR (Guided Pattern Refinement)", "π^e", "π^a", "Skip:",
                 "Role:", "Consistency:", "Layers are numbered from 1", "heads from 0", "logit[good]"):
        assert term in text, term


def test_command_help_has_no_line_broken_mid_sentence():
    """Docstring line breaks are reflowed: every command's summary wraps at the width only."""
    res = runner.invoke(app, ["--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0
    for line in res.output.splitlines():
        if not line.startswith("│"):  # the commands panel
            continue
        stripped = line.strip("│ ").rstrip()
        if stripped and stripped[0].islower() and not stripped.split()[0] in (
                "plot", "explain", "accuracy", "tasks", "run", "analyze", "ablate", "report", "models"):
            raise AssertionError(f"a help line starts mid-sentence at 200 columns: {line!r}")
    for command in (["explain"], ["plot"]):
        text = " ".join(runner.invoke(app, [*command, "--help"], env={"COLUMNS": "100"}).output.split())
        assert "--dpi" in text
        assert "(source × α)" not in text  # the α jargon is explained in words now


# ---------------------------------------------------------------- notebook


def test_notebook_methods():
    pd = pytest.importorskip("pandas")
    expl = explanation()
    df = expl.to_dataframe()
    assert isinstance(df, pd.DataFrame)
    assert list(df["source_index"]) == [2, 5, 4]
    assert list(df.columns[:7]) == ["source_index", "source_token", "sign", "g", "influence_token",
                                    "influence_head", "pattern"]
    assert df.loc[0, "pattern"] == "L1 skip → L2 H2@[MASK] → L3 skip → L4 H1"
    assert df.loc[1, "influence_head"] == pytest.approx(-0.3)
    page = expl._repr_html_()
    assert "<table" in page and "<svg" in page and "boys@2" in page
    assert "L1–2 skip → L3 H0@[MASK] → L4 skip" in page
    from matplotlib.figure import Figure

    fig = expl.plot(sources=[5])
    assert isinstance(fig, Figure)
    assert {a.get_gid().split(":")[1] for a in fig.findobj(lambda a: (a.get_gid() or "").startswith("step:"))} == {"5"}


def test_explain_batch_takes_plain_strings(mlm, tokenizer):
    ex = Explainer(mlm, tokenizer, steps=3)
    texts = ["the boy [MASK] good", "the boys near the dog [MASK] good"]
    by_query = ex.explain_batch([Query(t, ("is", "are")) for t in texts])
    by_text = ex.explain_batch(texts, targets=("is", "are"))
    assert [e.to_dict() for e in by_text] == [e.to_dict() for e in by_query]
    each = ex.explain_batch(texts, targets=[("is", "are"), ("are", "is")])
    assert each[1].targets == ["are", "is"] and each[0].targets == ["is", "are"]
    counted: list[int] = []
    ex.explain_batch(texts, targets="is,are", progress=counted.append)
    assert sum(counted) == sum(len(e.patterns) for e in by_text)  # per source-token chunk
    from influence_patterns.errors import InputError

    with pytest.raises(InputError, match="3 entries for 2 texts"):
        ex.explain_batch(texts, targets=[("is", "are")] * 3)
    with pytest.raises(InputError, match="strings or Query"):
        ex.explain_batch([42])


def test_explain_batch_takes_labels_for_a_classifier(classifier, tokenizer):
    ex = Explainer(classifier, tokenizer, steps=2)
    out = ex.explain_batch(["a very funny movie", "an awful film"], labels=[1, 0])
    assert [e.label for e in out] == [1, 0]


def test_progress_bar_is_silent_off_a_terminal(capsys):
    from influence_patterns.progress import enabled, progress_bar

    assert enabled(None) is False  # pytest captures stderr: not a terminal
    assert enabled(True) and not enabled(False) and not enabled(print)
    with progress_bar(3, "work", None) as advance:
        advance(3)
    seen: list[int] = []
    with progress_bar(3, "work", seen.append) as advance:
        advance(2)
    assert seen == [2]
    assert capsys.readouterr().err == ""


# ---------------------------------------------------------------- pictures


def png_width(path: Path) -> int:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">I", data[16:20])[0]


def test_same_dpi_default_for_every_raster(mlm_checkpoint, tmp_path):
    a, b, c = tmp_path / "explain.png", tmp_path / "plot.png", tmp_path / "low.png"
    res = runner.invoke(app, ["explain", "the boy [MASK] good", "--targets", "is,are", "--model",
                              str(mlm_checkpoint), "--steps", "2", "--json", str(tmp_path / "r.json"),
                              "--plot", str(a)])
    assert res.exit_code == 0, res.output
    assert runner.invoke(app, ["plot", str(tmp_path / "r.json"), "--out", str(b)]).exit_code == 0
    assert runner.invoke(app, ["plot", str(tmp_path / "r.json"), "--out", str(c), "--dpi", "50"]).exit_code == 0
    assert png_width(a) == png_width(b)
    assert png_width(c) == pytest.approx(png_width(b) / 4, rel=0.05)
    assert "Wrote" in res.output and "wrote" not in res.output


def test_run_figure_has_positions_across_and_fits_its_content():
    sys.path.insert(0, str(Path(__file__).parent))
    from test_viz import rows

    from influence_patterns.viz import plot_run

    fig = plot_run(rows())
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["subject", "src+1", "verb"]
    assert fig.get_figwidth() < 9  # three columns, not one per head
    assert all(t.get_fontsize() >= 8 for t in fig.findobj(lambda a: hasattr(a, "get_fontsize")))


# ---------------------------------------------------------------- the interactive view


def test_interactive_page_is_self_contained(tmp_path):
    pytest.importorskip("plotly")
    from influence_patterns.viz.interactive import interactive_figure, write_interactive

    page = write_interactive(explanation(), tmp_path / "view.html").read_text()
    assert page.lstrip().lower().startswith("<!doctype html>")
    assert "<script src=" not in page and "<link" not in page  # plotly.js is inline
    assert "plotly_hover" in page and "data-highlighted" in page
    fig = interactive_figure(explanation())
    sources = {t.meta["source"] for t in fig.data if t.meta and "source" in t.meta}
    assert sources == {2, 5, 4}
    nodes = next(t for t in fig.data if t.uid == "nodes-2")
    assert "L2 H2@[MASK]" in nodes.hovertext[2] and "L2.H2@6" in nodes.hovertext[2]
    assert "I(π^a) = +0.6" in nodes.hovertext[2]


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.skip("chromium is not installed (apt-get install chromium; .ci/run installs it)")
    return path


def browse(page: Path, profile: Path, *args: str) -> subprocess.CompletedProcess:
    command = [
        chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
        "--virtual-time-budget=5000", *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=180)


def test_interactive_page_works_in_headless_chromium(tmp_path):
    pytest.importorskip("plotly")
    from matplotlib.image import imread

    source = tmp_path / "r.json"
    explanation().save(source)
    page = tmp_path / "view.html"
    res = runner.invoke(app, ["plot", str(source), "--out", str(page)])
    assert res.exit_code == 0, res.output
    uri = page.resolve().as_uri()

    shot = tmp_path / "shot.png"
    browse(page, tmp_path / "p1", f"--screenshot={shot}", "--window-size=1000,650", uri)
    pixels = imread(shot)[..., :3]
    assert pixels.std() > 0.05  # not blank
    assert (pixels.max(axis=2) - pixels.min(axis=2) > 0.3).mean() > 0.002  # coloured paths drawn

    def trace_opacity(dom: str) -> dict[str, float]:
        found = re.findall(r'class="trace scatter trace(\w+-\d+)" style="[^"]*opacity: ([\d.]+)', dom)
        return {name: float(op) for name, op in found}

    still = browse(page, tmp_path / "p2", "--dump-dom", uri).stdout
    assert 'data-highlighted=""' in still
    assert set(trace_opacity(still).values()) == {1.0}
    # A mouse hover over token 2 ("boys"), dispatched by the page on load (#hover=2).
    hovered = browse(page, tmp_path / "p3", "--dump-dom", uri + "#hover=5").stdout
    assert 'data-highlighted="5"' in hovered
    opacity = trace_opacity(hovered)
    assert opacity["nodes-5"] == 1.0 and opacity["head-5"] == 1.0
    assert opacity["nodes-2"] < 0.5 and opacity["skip-4"] < 0.5
    assert "girl (5)" in hovered and "L1–2 skip → L3 H0@[MASK] → L4 skip" in hovered  # the tooltip


def test_interactive_view_goes_into_an_html_report_section():
    pytest.importorskip("plotly")
    from influence_patterns.viz.html import render_html
    from influence_patterns.viz.interactive import interactive_div

    first, second = interactive_div(explanation()), interactive_div(explanation(), include_plotlyjs=False)
    page = render_html([{"title": "One sentence", "html": [first, second]}], title="t")
    assert page.count("gd.on('plotly_hover'") == 2 and "<script src=" not in page
    assert len(first) > 1_000_000 > len(second)  # plotly.js travels once
