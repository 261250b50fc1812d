"""result.py: one printed notation of a pattern for every printer, and the notebook
methods of an Explanation (table, HTML view, figure)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from influence_patterns.result import format_steps, position_label

from conftest import SAMPLE_TOKENS, sample_explanation


def test_format_steps_merges_runs_of_staying_steps():
    steps = [("skip", None)] * 3 + [("H1", "[MASK]")] + [("skip", None)] * 2
    assert format_steps(steps) == "L1–3 skip → L4 H1@[MASK] → L5–6 skip"
    # A head that stays on its position prints without @; two moves never merge.
    assert format_steps([("H3", None), ("H3", None), ("H1", "x"), ("H1", "x")]) == "L1–2 H3 → L3 H1@x → L4 H1@x"
    assert format_steps([]) == ""


def test_pattern_text_names_positions_by_token():
    expl = sample_explanation()
    boys, girl, the = expl.patterns
    assert boys.text(expl.tokens) == "L1 skip → L2 H2@[MASK] → L3 skip → L4 H1"
    assert girl.text(expl.tokens) == "L1–2 skip → L3 H0@[MASK] → L4 skip"
    # "the" occurs twice: the index tells them apart.
    assert the.text(expl.tokens) == "L1 H1@the(1) → L2 skip → L3 H2@[MASK] → L4 H0"
    assert position_label(1, SAMPLE_TOKENS) == "the(1)" and position_label(2, SAMPLE_TOKENS) == "boys"
    assert boys.text() == "L1 skip → L2 H2@6 → L3 skip → L4 H1"


def test_every_printer_uses_the_one_notation():
    from influence_patterns.analysis.consistency import key_text
    from influence_patterns.viz.aggregate import _compact

    assert key_text((("skip", "stay"),) * 3 + (("H1", "verb"),) + (("skip", "stay"),) * 2) == \
        "L1–3 skip → L4 H1@verb → L5–6 skip"
    nodes = (("x", "subject"),) + (("skip", "subject"),) * 3 + (("H1", "verb"),) + (("skip", "verb"),) * 2
    assert _compact(nodes) == "L1–3 skip → L4 H1@verb → L5–6 skip"
    old_forms = re.compile(r"L\d+\.H\d+|L\d+\.skip|→target")
    src = Path(__file__).resolve().parents[1] / "src" / "influence_patterns"
    for path in [src / "viz" / "terminal.py", src / "viz" / "notebook.py", src / "viz" / "aggregate.py"]:
        assert not old_forms.search(path.read_text()), path


def test_notebook_methods():
    pd = pytest.importorskip("pandas")
    expl = sample_explanation()
    df = expl.to_dataframe()
    assert isinstance(df, pd.DataFrame)
    assert list(df["source_index"]) == [2, 5, 4]
    assert list(df.columns[:7]) == ["source_index", "source_token", "sign", "g", "influence_token",
                                    "influence_head", "pattern"]
    assert df.loc[0, "pattern"] == "L1 skip → L2 H2@[MASK] → L3 skip → L4 H1"
    assert df.loc[1, "influence_head"] == pytest.approx(-0.3)
    page = expl._repr_html_()
    assert "<table" in page and "data:image/png;base64," in page and "boys@2" in page
    assert "L1–2 skip → L3 H0@[MASK] → L4 skip" in page
    from matplotlib.figure import Figure

    fig = expl.plot(sources=[5])
    assert isinstance(fig, Figure)
    assert {a.get_gid().split(":")[1] for a in fig.findobj(lambda a: (a.get_gid() or "").startswith("step:"))} == {"5"}
