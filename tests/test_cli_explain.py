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
        (["the boy [MASK] good", "--targets", "is,are", "--sources", "2,x"], "--sources: 'x' is not a word of the sentence"),
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


# --- words, not only pieces ------------------------------------------------------------------


def test_word_groups_of_three_tokenizer_schemes():
    from influence_patterns.result import find_word, word_groups

    wp = ["[CLS]", "the", "gi", "##raf", "##fe", "##s", "near", "the", "keys", "[MASK]", "[SEP]"]
    assert word_groups(wp)[2] == ("giraffes", [2, 3, 4, 5])
    assert [w for w, _ in word_groups(wp)] == ["[CLS]", "the", "giraffes", "near", "the", "keys", "[MASK]", "[SEP]"]
    bpe = ["<s>", "the", "Ġgir", "aff", "es", "Ġnear", "<mask>", "</s>"]
    assert word_groups(bpe)[1:4] == [("the", [1]), ("giraffes", [2, 3, 4]), ("near", [5])]
    sp = ["[CLS]", "▁the", "▁gir", "affe", "s", "[MASK]", "[SEP]"]
    assert word_groups(sp)[2] == ("giraffes", [2, 3, 4])
    assert find_word(wp, "Giraffes") == [2, 3, 4, 5]
    assert find_word(wp, "the@2") == [7]
    with pytest.raises(ValueError, match="occurs 2 time"):
        find_word(wp, "the@3")
    with pytest.raises(ValueError, match="not one of its words"):
        find_word(wp, "cabinet")


def test_explain_by_word(mlm_checkpoint, tmp_path):
    text = "the funnys near the dog [MASK] good"  # funnys: funny ##s
    out, table = tmp_path / "w.json", tmp_path / "w.csv"
    res = runner.invoke(app, ["explain", text, "--targets", "is,are", "--model", str(mlm_checkpoint), "--steps", "4",
                              "--sources", "funnys,dog", "--by-word", "--json", str(out), "--csv", str(table)])
    assert res.exit_code == 0, res.output
    assert "funny@2 ##s@3" in res.output and "dog@6" in res.output
    d = json.loads(out.read_text())
    assert sorted(p["source_index"] for p in d["patterns"]) == [2, 3, 6]
    words = {w["word"]: w for w in d["words"]}
    assert set(words) == {"funnys", "dog"}
    pieces = {p["source_index"]: p for p in d["patterns"]}
    assert words["funnys"]["g"] == pytest.approx(pieces[2]["g"] + pieces[3]["g"])
    assert words["funnys"]["influence_head"] == pytest.approx(pieces[2]["influence_head"] + pieces[3]["influence_head"])
    assert words["funnys"]["positions"] == pieces[2]["positions"]  # the first piece's pattern
    import pandas as pd

    frame = pd.read_csv(table)
    assert list(frame["word"]) == ["funnys", "dog"]
    from influence_patterns.result import Explanation

    assert list(Explanation.load(out).to_dataframe(by="word")["word"]) == ["funnys", "dog"]
    bad = runner.invoke(app, ["explain", text, "--targets", "is,are", "--model", str(mlm_checkpoint),
                              "--sources", "cabinet"])
    assert bad.exit_code == 2 and "'cabinet' is not a word of the sentence" in bad.output
