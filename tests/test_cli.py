"""The CLI as a user meets it: output that fits an 80-column terminal, help that explains
its terms and wraps cleanly, and one DPI default for every raster it writes."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
from typer.testing import CliRunner

from influence_patterns.cli import app
from influence_patterns.result import Explanation

runner = CliRunner()


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
