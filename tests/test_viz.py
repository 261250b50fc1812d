"""Pictures: structure, not pixels (gids, line styles, colours, widths), the CLI, the HTML page."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

matplotlib = pytest.importorskip("matplotlib")

from matplotlib.colors import to_rgb  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402
from matplotlib.text import Text  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from influence_patterns.cli import app  # noqa: E402
from influence_patterns.errors import InputError  # noqa: E402
from influence_patterns.result import Explanation, Pattern  # noqa: E402
from influence_patterns.viz import plot_explanation, plot_run, render_html, write_html  # noqa: E402
from influence_patterns.viz.aggregate import OUTLINE_EXTRA, STEP_WIDTH  # noqa: E402

from conftest import PATTERN_A, PATTERN_B, by_gid, sample_row, sample_rows, write_sample_run  # noqa: E402, F401
from conftest import four_source_explanation as explanation  # noqa: E402

TOKENS = ["[CLS]", "the", "boys", "near", "the", "girl", "[MASK]", "funny", ".", "[SEP]"]
L, H = 4, 3


def is_green(colour) -> bool:
    r, g, _ = to_rgb(colour)
    return g > r + 0.2


def is_red(colour) -> bool:
    r, g, _ = to_rgb(colour)
    return r > g + 0.2


# ---------------------------------------------------------------- one explanation


def test_one_segment_per_layer_per_source_token():
    fig = plot_explanation(explanation())
    assert isinstance(fig, Figure)
    steps = by_gid(fig, "step:")
    assert len(steps) == 4 * L
    for src in (2, 5, 3, 7):
        layers = sorted(int(g.split(":")[2]) for g in steps if g.split(":")[1] == str(src))
        assert layers == list(range(1, L + 1))


def test_segments_join_the_positions_of_consecutive_layers():
    expl = explanation()
    fig = plot_explanation(expl)
    steps = by_gid(fig, "step:")
    for p in expl.patterns:
        for layer in range(1, L + 1):
            kind = "skip" if p.heads[layer - 1] is None else f"H{p.heads[layer - 1]}"
            line = steps[f"step:{p.source_index}:{layer}:{kind}"]
            (x0, x1), (y0, y1) = line.get_xdata(), line.get_ydata()
            assert (y0, y1) == (layer - 1, layer)
            # Small horizontal offset only, the same at both ends.
            assert x0 - p.positions[layer - 1] == pytest.approx(x1 - p.positions[layer])
            assert abs(x0 - p.positions[layer - 1]) < 0.3


def test_heads_are_solid_and_labelled_skips_dashed_and_unlabelled():
    fig = plot_explanation(explanation())
    steps = by_gid(fig, "step:")
    labels = by_gid(fig, "head-label:")
    for gid, line in steps.items():
        _, src, layer, kind = gid.split(":")
        label = labels.get(f"head-label:{src}:{layer}:{kind}")
        if kind == "skip":
            assert line.is_dashed()
            assert label is None
        else:
            assert line.get_linestyle() == "-"
            assert isinstance(label, Text) and label.get_text() == kind
    # Exactly one label per head step: boys 2, girl 1, near 3, funny 1.
    assert len(labels) == 7
    assert not any(k.endswith(":skip") for k in labels)


def test_each_source_has_its_own_colour_and_the_marker_encodes_sign():
    fig = plot_explanation(explanation())
    steps = by_gid(fig, "step:")
    nodes = by_gid(fig, "nodes:")
    colour_of: dict[str, set] = {}
    for gid, line in steps.items():
        colour_of.setdefault(gid.split(":")[1], set()).add(to_rgb(line.get_color()))
    assert all(len(c) == 1 for c in colour_of.values())  # one colour per source's path
    assert len({next(iter(c)) for c in colour_of.values()}) == 4  # four sources, four colours
    for src, colours in colour_of.items():
        assert to_rgb(nodes[f"nodes:{src}"].get_markerfacecolor()) in colours
    assert nodes["nodes:5"].get_marker() == "v"  # girl: negative head-level influence
    assert nodes["nodes:2"].get_marker() == "^"
    assert nodes["nodes:2"].get_marker() != nodes["nodes:5"].get_marker()


def test_three_bars_per_source_token_with_the_scores():
    expl = explanation()
    fig = plot_explanation(expl)
    bars = by_gid(fig, "bar:")
    assert len(bars) == 3 * len(expl.patterns)
    for p in expl.patterns:
        heights = {k: bars[f"bar:{p.source_index}:{k}"].get_height() for k in ("g", "token", "head")}
        assert heights == pytest.approx(
            {"g": p.g, "token": p.influence_token, "head": p.influence_head}
        )
        assert all(isinstance(bars[f"bar:{p.source_index}:{k}"], Rectangle) for k in heights)
    # The bars share one axes (one scale) and have a legend with the three series.
    axes = {bar.axes for bar in bars.values()}
    assert len(axes) == 1
    legend = axes.pop().get_legend()
    assert legend is not None and len(legend.get_texts()) == 3


def test_axes_labels_title_and_output():
    fig = plot_explanation(explanation())
    main = next(iter(by_gid(fig, "step:").values())).axes
    ticks = [t.get_text() for t in main.get_yticklabels()]
    assert ticks == ["h0", "L1", "L2", "L3", "L4", "y"]
    title = main.get_title(loc="left")
    assert "the boys near the girl" in title and "+1.234" in title
    assert by_gid(fig, "output")
    bars_ax = next(iter(by_gid(fig, "bar:").values())).axes
    assert [t.get_text() for t in bars_ax.get_xticklabels()] == TOKENS
    # Token names on the top axis of the pattern panel too, sources in their path's colour.
    top = by_gid(fig, "top-token:")
    assert [top[f"top-token:{i}"].get_text() for i in range(len(TOKENS))] == TOKENS
    step_colour = to_rgb(by_gid(fig, "step:2:")["step:2:1:skip"].get_color())
    assert to_rgb(top["top-token:2"].get_color()) == step_colour


def test_legend_is_keyed_by_source_token():
    fig = plot_explanation(explanation())
    main = next(iter(by_gid(fig, "step:").values())).axes
    texts = [t.get_text() for t in main.get_legend().get_texts()]
    for label in ("boys (2)", "girl (5)", "near (3)", "funny (7)"):
        assert any(t.startswith(label) for t in texts), texts


def test_token_selection_and_bad_tokens():
    fig = plot_explanation(explanation(), sources=[5, 2])
    sources = {g.split(":")[1] for g in by_gid(fig, "step:")}
    assert sources == {"2", "5"}
    old_name = plot_explanation(explanation(), tokens=[5])
    assert {g.split(":")[1] for g in by_gid(old_name, "step:")} == {"5"}
    with pytest.raises(InputError, match="token 6 is not a source token"):
        plot_explanation(explanation(), tokens=[6])


def test_overlapping_patterns_get_different_offsets():
    fig = plot_explanation(explanation())
    steps = by_gid(fig, "step:")
    # boys and girl both reach position 6 at layer 3; their segments must not coincide.
    a = steps["step:2:3:skip"].get_xdata()[1]
    b = steps["step:5:3:H0"].get_xdata()[1]
    assert a != pytest.approx(b)


def test_draws_on_a_given_axes():
    fig = Figure(figsize=(8, 6))
    ax = fig.add_axes((0.1, 0.45, 0.8, 0.45))
    assert plot_explanation(explanation(), ax=ax) is fig
    assert all(line.axes is ax for line in by_gid(fig, "step:").values())


# ---------------------------------------------------------------- aggregate over a run

def expected_steps() -> dict[str, float]:
    """agg-step gid → share, written out by hand for the rows above."""
    return {
        "agg-step:1:x@subject:skip@subject": 9 / 10,
        "agg-step:1:x@subject:H1@src+1": 1 / 10,
        "agg-step:2:skip@subject:H1@verb": 6 / 10,
        "agg-step:2:skip@subject:skip@subject": 3 / 10,
        "agg-step:2:H1@src+1:H1@verb": 1 / 10,
        "agg-step:3:H1@verb:skip@verb": 7 / 10,
        "agg-step:3:skip@subject:H2@verb": 3 / 10,
        "agg-step:4:skip@verb:H0@verb": 7 / 10,
        "agg-step:4:H2@verb:H0@verb": 3 / 10,
    }


def test_aggregate_widths_are_proportional_to_shares():
    fig = plot_run(sample_rows(), role="subject")
    steps = by_gid(fig, "agg-step:")
    expected = expected_steps()
    assert set(steps) == set(expected)
    for gid, share in expected.items():
        assert steps[gid].get_linewidth() == pytest.approx(STEP_WIDTH * share)
    assert steps["agg-step:2:skip@subject:skip@subject"].is_dashed()
    assert not steps["agg-step:2:skip@subject:H1@verb"].is_dashed()


def test_aggregate_highlights_the_most_common_pattern():
    fig = plot_run(sample_rows(), role="subject")
    steps = by_gid(fig, "agg-step:")
    outline = by_gid(fig, "top-step:")
    assert sorted(outline) == [f"top-step:{layer}" for layer in range(1, L + 1)]
    path_a = [
        "agg-step:1:x@subject:skip@subject", "agg-step:2:skip@subject:H1@verb",
        "agg-step:3:H1@verb:skip@verb", "agg-step:4:skip@verb:H0@verb",
    ]
    for layer, gid in enumerate(path_a, start=1):
        top, step = outline[f"top-step:{layer}"], steps[gid]
        assert list(top.get_xdata()) == list(step.get_xdata())
        assert list(top.get_ydata()) == list(step.get_ydata())
        assert top.get_linewidth() == pytest.approx(step.get_linewidth() + OUTLINE_EXTRA)
        assert top.get_zorder() < step.get_zorder()
    ax = outline["top-step:1"].axes
    legend_text = " ".join(t.get_text() for t in ax.get_legend().get_texts())
    assert "6/10" in legend_text and "60%" in legend_text
    assert "accuracy 70%" in ax.get_title(loc="left")


def test_aggregate_colours_by_majority_sign():
    fig = plot_run(sample_rows(), role="subject")
    steps = by_gid(fig, "agg-step:")
    assert is_green(steps["agg-step:3:skip@subject:H2@verb"].get_color())  # 2 of 3 positive
    negative = [sample_row(*PATTERN_B, sign=-1) for _ in range(2)] + [sample_row(*PATTERN_B)]
    steps = by_gid(plot_run(negative), "agg-step:")
    assert all(is_red(line.get_color()) for line in steps.values())


def test_aggregate_nodes_named_by_role_or_offset():
    fig = plot_run(sample_rows(), role="subject")
    nodes = set(by_gid(fig, "agg-node:"))
    assert "agg-node:0:x@subject" in nodes
    assert "agg-node:1:H1@src+1" in nodes
    assert "agg-node:4:H0@verb" in nodes


def test_aggregate_other_role_and_errors():
    fig = plot_run(sample_rows(), role="attractor")
    assert by_gid(fig, "agg-step:1:x@attractor:skip@attractor")
    with pytest.raises(InputError, match="role 'object' not present"):
        plot_run(sample_rows(), role="object")
    with pytest.raises(InputError, match="no instance has a pattern for its verb"):
        plot_run(sample_rows(), role="verb")
    mixed = sample_rows() + [sample_row(*PATTERN_A, task="ra_simple")]
    with pytest.raises(InputError, match="several tasks"):
        plot_run(mixed)
    assert by_gid(plot_run(mixed, task="ra_simple"), "top-step:")
    with pytest.raises(InputError, match="no results"):
        plot_run([])


def test_aggregate_reads_a_run_directory(tmp_path):
    run = write_sample_run(tmp_path / "run")
    fig = plot_run(run)
    assert "tiny" in fig.axes[0].get_title(loc="left")
    assert set(by_gid(fig, "agg-step:")) == set(expected_steps())
    assert set(by_gid(plot_run(run / "results.jsonl"), "agg-step:")) == set(expected_steps())


def test_run_figure_has_positions_across_and_fits_its_content():
    fig = plot_run(sample_rows())
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["subject", "src+1", "verb"]
    assert fig.get_figwidth() < 9  # three columns, not one per head
    assert all(t.get_fontsize() >= 8 for t in fig.findobj(lambda a: hasattr(a, "get_fontsize")))


# ---------------------------------------------------------------- the CLI

MAGIC = {".png": b"\x89PNG\r\n\x1a\n", ".pdf": b"%PDF-"}


def check_image(path: Path) -> None:
    data = path.read_bytes()
    assert len(data) > 1000
    if path.suffix == ".svg":
        assert data.lstrip().startswith(b"<?xml") and b"<svg" in data[:2000]
    else:
        assert data.startswith(MAGIC[path.suffix])


@pytest.mark.parametrize("suffix", [".svg", ".png", ".pdf"])
def test_cli_plots_an_explanation(tmp_path, suffix):
    source = tmp_path / "result.json"
    explanation().save(source)
    out = tmp_path / f"pic{suffix}"
    result = CliRunner().invoke(app, ["plot", str(source), "--out", str(out), "--tokens", "2,5"])
    assert result.exit_code == 0, result.output
    check_image(out)


@pytest.mark.parametrize("suffix", [".svg", ".png", ".pdf"])
def test_cli_plots_a_run(tmp_path, suffix):
    run = write_sample_run(tmp_path / "run")
    out = tmp_path / "figs" / f"run{suffix}"
    result = CliRunner().invoke(app, ["plot", str(run), "--out", str(out), "--role", "subject"])
    assert result.exit_code == 0, result.output
    check_image(out)


@pytest.mark.parametrize(
    "args, message",
    [
        (["{tmp}/missing.json", "--out", "{tmp}/a.png"], "no such file"),
        (["{result}", "--out", "{tmp}/a.gif"], ".svg, .png, .pdf or .html"),
        (["{result}", "--out", "{tmp}/a.png", "--sources", "6"], "not a source token"),
        (["{result}", "--out", "{tmp}/a.png", "--tokens", "6"], "not a source token"),
        (["{result}", "--out", "{tmp}/a.png", "--sources", "two"], "word-piece positions"),
        (["{run}", "--out", "{tmp}/a.html"], "one explanation"),
        (["{run}", "--out", "{tmp}/a.png", "--role", "object"], "role 'object' not present"),
        (["{run}", "--out", "{tmp}/a.png", "--tokens", "2"], "one explanation"),
        (["{bad}", "--out", "{tmp}/a.png"], "not valid JSON"),
        (["{tmp}/empty", "--out", "{tmp}/a.png"], "no results.jsonl"),
    ],
)
def test_cli_bad_input_exits_2_with_one_line(tmp_path, args, message):
    result_file = tmp_path / "result.json"
    explanation().save(result_file)
    run = write_sample_run(tmp_path / "run")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    (tmp_path / "empty").mkdir()
    values = {"tmp": tmp_path, "result": result_file, "run": run, "bad": bad}
    result = CliRunner().invoke(app, ["plot"] + [a.format(**values) for a in args])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:")
    assert message in lines[0]
    assert not (tmp_path / "a.png").exists()


def test_cli_plot_is_documented():
    result = CliRunner().invoke(app, ["plot", "--help"])
    assert result.exit_code == 0
    for option in ("--out", "--sources", "--role", "--dpi"):
        assert option in result.output
    assert "--tokens" not in result.output  # the old name still works, hidden


# ---------------------------------------------------------------- HTML


def sections() -> list[dict]:
    return [
        {
            "title": "Subject–verb agreement",
            "text": "Patterns of the subject token.\n\nSkips carry <most> of the flow & more.",
            "tables": [{"columns": ["node", "share", "count"],
                        "rows": [["skip", 0.75, 30], ["heads", 0.25, 10], ["none", None, 0]]}],
            "figures": [plot_run(sample_rows())],
        },
        {"title": "One sentence", "text": None, "tables": [],
         "figures": [plot_explanation(explanation(), tokens=[2, 5])]},
    ]


def test_html_is_self_contained_and_escaped():
    page = render_html(sections(), title="Report <1>")
    assert page.startswith("<!DOCTYPE html>")
    assert page.count("data:image/png;base64,") == 2
    assert "http://" not in page and "https://" not in page
    assert "<script" not in page and "<link" not in page
    assert "Report &lt;1&gt;" in page and "&lt;most&gt; of the flow &amp; more" in page
    assert '<td class=num>0.750</td>' in page and "<th class=num" in page
    assert 'href="#one-sentence"' in page and "max-width" in page
    svg = render_html(sections()[1:], title="t", image_format="svg")
    assert "<svg" in svg and "data:image/png" not in svg


def test_html_renders_in_headless_chromium(tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is not installed (apt-get install chromium) to render the page")
    from matplotlib.image import imread

    page = write_html(tmp_path / "report.html", sections(), title="Influence patterns report")
    shot = tmp_path / "shot.png"
    command = [
        chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}",
        "--window-size=1280,900", page.resolve().as_uri(),
    ]
    subprocess.run(command, check=False, capture_output=True, timeout=120)
    assert shot.exists(), "chromium wrote no screenshot"
    pixels = imread(shot)
    assert pixels.shape[0] >= 800 and pixels.shape[1] >= 1200
    assert pixels[..., :3].std() > 0.05  # not a blank page
    # The page is laid out in a centred column: the margins are plain background.
    assert pixels[:, :40, :3].std() < 0.02


# ---------------------------------------------------------------- compute never imports plotting


def test_compute_modules_do_not_import_matplotlib():
    """The one check that computing never loads the presentation: the compute modules
    import neither ``viz`` nor matplotlib, and the CLI starts without matplotlib."""
    code = (
        "import sys\n"
        "import influence_patterns, influence_patterns.result, influence_patterns.explainer, influence_patterns.tasks\n"
        "import influence_patterns.runs, influence_patterns.analysis.report, influence_patterns.analysis.ablation\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'matplotlib' or 'influence_patterns.viz' in m))\n"
        "import influence_patterns.cli\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'matplotlib'))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["[]", "[]"]



# --- plots of any run: every source, one instance, runs without roles ---------------------


def test_aggregate_every_source():
    fig = plot_run(sample_rows(), role="all")
    title = fig.axes[0].get_title(loc="left")
    assert "patterns of every source token (20 patterns)" in title
    labels = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert "source" in labels
    # a run without roles draws every source by default
    plain = [{**r, "roles": {}} for r in sample_rows()]
    assert "every source token" in plot_run(plain, role=None).axes[0].get_title(loc="left")
    assert "the subject token" in plot_run(sample_rows(), role=None).axes[0].get_title(loc="left")


def test_cli_plots_any_run(tmp_path):
    run = write_sample_run(tmp_path / "run")
    for args in (["--role", "all"], ["--instance", "3"], ["--instance", "3", "--sources", "3"]):
        out = tmp_path / f"pic{len(args)}.png"
        result = CliRunner().invoke(app, ["plot", str(run), "--out", str(out), *args])
        assert result.exit_code == 0, result.output
        check_image(out)
    html = tmp_path / "one.html"
    assert CliRunner().invoke(app, ["plot", str(run), "--instance", "0", "--out", str(html)]).exit_code == 0
    assert "plotly" in html.read_text().lower()
    bad = CliRunner().invoke(app, ["plot", str(run), "--instance", "99", "--out", str(tmp_path / "x.png")])
    assert bad.exit_code == 2 and "no instance 99" in bad.stderr
