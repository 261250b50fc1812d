"""``influence-patterns explain`` in-process: the table, --json shape, and one-line errors."""

import json

import pytest
from typer.testing import CliRunner

from influence_patterns.cli import app

runner = CliRunner()


def test_explain_prints_table_and_writes_json(mlm_checkpoint, tmp_path):
    out = tmp_path / "r.json"
    res = runner.invoke(app, ["explain", "the boy [MASK] good", "--targets", "is,are",
                              "--model", str(mlm_checkpoint), "--steps", "4", "--json", str(out)])
    assert res.exit_code == 0, res.output
    assert "boy@2" in res.output and "@[MASK]" in res.output and "I(π^a)" in res.output
    assert "logit[is] - logit[are]" in res.output  # brackets are text, not rich markup
    d = json.loads(out.read_text())
    for key, typ in [("model", str), ("text", str), ("tokens", list), ("target_index", int), ("num_layers", int),
                     ("num_heads", int), ("steps", int), ("baseline", str), ("qoi", dict), ("patterns", list)]:
        assert isinstance(d[key], typ), key
    assert set(d["qoi"]) >= {"name", "value", "baseline_value"}
    p = d["patterns"][0]
    assert set(p) >= {"source_index", "source_token", "sign", "g", "positions", "heads",
                      "influence_token", "influence_head"}
    assert len(p["positions"]) == d["num_layers"] + 1 and len(p["heads"]) == d["num_layers"]


def test_explain_only_some_sources(mlm_checkpoint, tmp_path):
    full, part = tmp_path / "full.json", tmp_path / "part.json"
    base = ["explain", "the boy near the dogs [MASK] good", "--targets", "is,are", "--model", str(mlm_checkpoint),
            "--steps", "4"]
    assert runner.invoke(app, [*base, "--json", str(full)]).exit_code == 0
    res = runner.invoke(app, [*base, "--sources", "5,2,2", "--json", str(part)])
    assert res.exit_code == 0, res.output
    every = {p["source_index"]: p for p in json.loads(full.read_text())["patterns"]}
    chosen = json.loads(part.read_text())["patterns"]
    assert [p["source_index"] for p in chosen] == [2, 5]  # sorted, once each
    for p in chosen:  # a token's pattern does not depend on which other tokens are explained
        q = every[p["source_index"]]
        assert (p["positions"], p["heads"]) == (q["positions"], q["heads"])
        assert p["influence_head"] == pytest.approx(q["influence_head"], rel=1e-6)


def test_explain_classifier_with_label(classifier_checkpoint):
    res = runner.invoke(app, ["explain", "a very funny movie", "--label", "1",
                              "--model", str(classifier_checkpoint), "--steps", "3", "--method", "reference"])
    assert res.exit_code == 0, res.output
    assert "logit[1]" in res.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["the boy is good", "--targets", "is,are"], "no [MASK]"),
        (["the [MASK] [MASK]", "--targets", "is,are"], "found 2 [MASK]"),
        (["the boy [MASK]", "--targets", "girlss,are"], "not a single word piece"),
        (["the boy [MASK]", "--targets", "is,is"], "targets are equal"),
        (["the boy [MASK]", "--targets", "is"], "exactly two targets"),
        (["the boy [MASK]"], "needs --targets"),
        (["the boy " * 40 + "[MASK]", "--targets", "is,are"], "at most 64"),
        (["the boy [MASK]", "--targets", "is,are", "--baseline", "noise"], "unknown baseline"),
        (["the boy [MASK] good", "--targets", "is,are", "--sources", "2,x"], "--sources takes word-piece positions"),
        (["the boy [MASK] good", "--targets", "is,are", "--sources", "9"], "source 9 is out of range"),
        (["the boy [MASK] good", "--targets", "is,are", "--sources", "3"], "source 3 is the target position"),
        (["the boy [MASK] good", "--targets", "is,are", "--sources", "0"], "source 0 is the special token '[CLS]'"),
        (["the boy [MASK] good", "--targets", "is,are", "--sources", ","], "no sources given"),
    ],
)
def test_explain_errors_are_one_line(mlm_checkpoint, args, message):
    res = runner.invoke(app, ["explain", *args, "--model", str(mlm_checkpoint), "--steps", "2"])
    assert res.exit_code == 2
    assert message in res.output
    assert "Traceback" not in res.output
    assert len(res.output.strip().splitlines()) == 1


def test_explain_missing_checkpoint(tmp_path):
    res = runner.invoke(app, ["explain", "the [MASK]", "--targets", "is,are", "--model", str(tmp_path / "none")])
    assert res.exit_code == 2 and "does not exist" in res.output


def test_every_command_is_documented():
    res = runner.invoke(app, ["--help"])
    assert res.exit_code == 0
    import typer.main

    group = typer.main.get_command(app)
    for name, cmd in group.commands.items():
        assert (cmd.help or "").strip(), f"command {name} has no help text"
        sub = runner.invoke(app, [name, "--help"])
        assert sub.exit_code == 0, name
