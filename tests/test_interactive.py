"""viz/interactive.py: the self-contained Plotly page of an explanation, in headless
Chromium (hover highlights a source's paths) and as a section of the HTML report."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from influence_patterns.cli import app

from conftest import browse, sample_explanation

runner = CliRunner()


def test_interactive_page_is_self_contained(tmp_path):
    pytest.importorskip("plotly")
    from influence_patterns.viz.interactive import interactive_figure, write_interactive

    page = write_interactive(sample_explanation(), tmp_path / "view.html").read_text()
    assert page.lstrip().lower().startswith("<!doctype html>")
    assert "<script src=" not in page and "<link" not in page  # plotly.js is inline
    assert "plotly_hover" in page and "data-highlighted" in page
    fig = interactive_figure(sample_explanation())
    sources = {t.meta["source"] for t in fig.data if t.meta and "source" in t.meta}
    assert sources == {2, 5, 4}
    nodes = next(t for t in fig.data if t.uid == "nodes-2")
    assert "L2 H2@[MASK]" in nodes.hovertext[2] and "L2.H2@6" in nodes.hovertext[2]
    assert "I(π<sup>a</sup>) = +0.6" in nodes.hovertext[2]  # plotly draws the superscript


@pytest.mark.slow  # three headless Chromium starts: 10-20 s
def test_interactive_page_works_in_headless_chromium(tmp_path):
    pytest.importorskip("plotly")
    from matplotlib.image import imread

    source = tmp_path / "r.json"
    sample_explanation().save(source)
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

    first, second = interactive_div(sample_explanation()), interactive_div(sample_explanation(), include_plotlyjs=False)
    page = render_html([{"title": "One sentence", "html": [first, second]}], title="t")
    assert page.count("gd.on('plotly_hover'") == 2 and "<script src=" not in page
    assert len(first) > 1_000_000 > len(second)  # plotly.js travels once
