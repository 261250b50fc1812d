"""Tasks for causal decoders: prefix forms of the template tasks and of Marvin & Linzen
data, IOI with its roles and balance, the task/model kind check, and a run → analyze →
plot on a decoder checkpoint."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from influence_patterns.cli import app
from influence_patterns.errors import DataError, InputError
from influence_patterns.tasks import Instance, get_task, list_tasks
from influence_patterns.tasks.prefix import IOI_NAMES, ioi_instances, to_prefix
from influence_patterns.tasks.registry import check_task_kind
from influence_patterns.tasks.templates import TEMPLATES

from decoder_models import CORPUS, make_decoder, make_tokenizer

runner = CliRunner()


def test_every_template_task_has_a_prefix_twin():
    names = {t.name for t in list_tasks()}
    for t in TEMPLATES:
        spec = get_task(f"prefix/{t.name}")
        assert spec.kind == "causal" and get_task(t.name).kind == "mlm"
        for masked, prefix in zip(get_task(t.name).load(6, 3), spec.load(6, 3)):
            words = masked.text.split()
            cut = words.index("[MASK]")
            assert prefix.text == " ".join(words[:cut]) and "[MASK]" not in prefix.text
            assert prefix.targets == masked.targets and prefix.condition == masked.condition
            assert prefix.task == f"prefix/{t.name}" and prefix.roles["end"] == cut - 1
            assert all(i < cut for i in prefix.roles.values())
            assert "verb" not in prefix.roles and "reflexive" not in prefix.roles
            assert prefix.roles.get("subject") == masked.roles.get("subject")
    assert "ioi" in names


def test_marvin_linzen_pairs_become_prefixes(tmp_path):
    from influence_patterns.data import __file__ as data_init
    from pathlib import Path

    sample = Path(data_init).parent / "marvin_linzen_sample.tsv"
    prefixed = get_task("prefix/sva/simple").load(None, 0, sample)
    masked = get_task("sva/simple").load(None, 0, sample)
    assert prefixed and len(prefixed) == len(masked)
    for p, m in zip(prefixed, masked):
        assert m.text.startswith(p.text + " [MASK]") and p.targets == m.targets


def test_to_prefix_refuses_what_has_no_prefix():
    with pytest.raises(DataError, match="first word"):
        to_prefix(Instance("[MASK] is here", ("it", "they")))
    with pytest.raises(DataError, match="exactly one"):
        to_prefix(Instance("the dogs are here", ("it", "they")))


def test_ioi_roles_and_balance():
    insts = ioi_instances(40, seed=1)
    assert insts == ioi_instances(40, seed=1) and insts != ioi_instances(40, seed=2)
    assert [i.condition for i in insts[:4]] == ["ABBA", "BABA", "ABBA", "BABA"]
    for inst in insts:
        words = [w.strip(",") for w in inst.text.split()]
        io, s = inst.targets
        assert io != s and io in IOI_NAMES and s in IOI_NAMES
        r = inst.roles
        assert words[r["IO"]] == io and words[r["S1"]] == s and words[r["S2"]] == s
        assert r["S1"] < r["S2"] and r["END"] == len(words) - 1 and words[-1] == "to"
        assert (r["IO"] < r["S1"]) == (inst.condition == "ABBA")
    with pytest.raises(InputError, match="give a number n"):
        ioi_instances(None)


def test_task_and_model_kinds_must_match():
    check_task_kind(get_task("prefix/sva/simple"), "causal")
    check_task_kind(get_task("sva/simple"), "mlm")
    with pytest.raises(InputError, match="is for a masked LM, but the model is a causal LM.*use prefix/sva/simple"):
        check_task_kind(get_task("sva/simple"), "causal")
    with pytest.raises(InputError, match="is for a causal LM.*but the model is a masked LM; use sva/simple"):
        check_task_kind(get_task("prefix/sva/simple"), "mlm")
    with pytest.raises(InputError, match="task ioi is for a causal LM"):
        check_task_kind(get_task("ioi"), "classification")


@pytest.fixture(scope="module")
def gpt2_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("gpt2-tasks")
    corpus = CORPUS + [i.text + " " + w for t in ("ioi", "prefix/sva/simple") for i in get_task(t).load(40, 0)
                       for w in i.targets]
    tok = make_tokenizer(root / "tok", corpus=corpus)
    model = make_decoder("gpt2", vocab_size=len(tok), dtype=torch.float32)
    model.save_pretrained(root)
    tok.save_pretrained(root)
    return root


def test_run_analyze_plot_on_a_decoder(gpt2_dir, tmp_path):
    out = tmp_path / "run"
    res = runner.invoke(app, ["run", "--task", "ioi", "--n", "4", "--model", str(gpt2_dir), "--out", str(out),
                              "--steps", "4", "--quiet"])
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and all(r["causal"] is True for r in rows)
    assert set(rows[0]["roles"]) == {"IO", "S1", "S2", "END"}
    for r in rows:
        for p in r["patterns"]:
            assert p["positions"] == sorted(p["positions"])
    res = runner.invoke(app, ["analyze", str(out)])
    assert res.exit_code == 0, res.output
    assert "IO" in res.output and "S2" in res.output
    res = runner.invoke(app, ["plot", str(out), "--role", "IO", "--out", str(tmp_path / "p.png")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "p.png").stat().st_size > 0


def test_masked_task_on_a_decoder_is_one_line(gpt2_dir, tmp_path):
    res = runner.invoke(app, ["run", "--task", "sva/simple", "--n", "2", "--model", str(gpt2_dir),
                              "--out", str(tmp_path / "r"), "--quiet"])
    assert res.exit_code == 2, res.output
    assert "use prefix/sva/simple" in res.output and "Traceback" not in res.output


def test_prefix_task_on_an_encoder_is_one_line(mlm_checkpoint, tmp_path):
    res = runner.invoke(app, ["run", "--task", "prefix/sva/simple", "--n", "2", "--model", str(mlm_checkpoint),
                              "--out", str(tmp_path / "r"), "--quiet"])
    assert res.exit_code == 2, res.output
    assert "use sva/simple" in res.output and "Traceback" not in res.output


def test_accuracy_of_a_decoder(gpt2_dir):
    from influence_patterns.models.loading import load_model
    from influence_patterns.tasks.accuracy import qoi

    loaded = load_model(str(gpt2_dir))
    assert loaded.kind == "causal"
    insts = get_task("ioi").load(3, 0)
    scores = qoi(loaded, insts, batch_size=2)
    from influence_patterns import Explainer

    ex = Explainer(loaded.model, loaded.tokenizer, steps=2)
    with pytest.raises(InputError, match="use prefix/sva/simple"):
        qoi(loaded, get_task("sva/simple").load(2, 0))
    for inst, q in zip(insts, scores):
        assert q == pytest.approx(ex.explain(inst.text, targets=inst.targets, sources=[1]).qoi_value, abs=1e-4)


# --- own data on a decoder: prefix rows, masked rows read in prefix form ------------------

PREFIX_CSV = ("text,good,bad,task,counterfactual\n"
              "the keys to the cabinet,are,is,agr,the key to the cabinet\n"
              "the dogs,are,is,agr,\n")
MASKED_CSV = ("text,good,bad,task,counterfactual\n"
              "the keys to the cabinet [MASK] here,are,is,agr,the key to the cabinet [MASK] here\n"
              "the dogs [MASK] bad,are,is,agr,\n")


def test_loader_reads_prefix_rows_and_refuses_what_is_neither(tmp_path):
    from influence_patterns.tasks.loaders import load_instances

    f = tmp_path / "p.csv"
    f.write_text(PREFIX_CSV)
    rows = load_instances(f)
    assert [r.text for r in rows] == ["the keys to the cabinet", "the dogs"]
    assert rows[0].targets == ("are", "is") and rows[0].counterfactual == "the key to the cabinet"
    f.write_text("text,good,bad\nthe [MASK] keys [MASK],are,is\n")
    with pytest.raises(DataError, match=r"p.csv line 2, column 'text': text must contain at most one"):
        load_instances(f)
    f.write_text("text,good,bad,counterfactual\nthe keys [MASK],are,is,the key\n")
    with pytest.raises(DataError, match=r"line 2, column 'counterfactual': the text is masked"):
        load_instances(f)


@pytest.mark.parametrize("body", [PREFIX_CSV, MASKED_CSV], ids=["prefix", "masked"])
def test_own_data_runs_on_a_decoder(gpt2_dir, tmp_path, body):
    f = tmp_path / "rows.csv"
    f.write_text(body)
    out = tmp_path / "run"
    res = runner.invoke(app, ["run", "--data", str(f), "--model", str(gpt2_dir), "--out", str(out),
                              "--steps", "4", "--quiet"])
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [r["text"] for r in rows] == ["the keys to the cabinet", "the dogs"]
    assert rows[0]["counterfactual"] == "the key to the cabinet" and "counterfactual" not in rows[1]
    res = runner.invoke(app, ["accuracy", "--model", str(gpt2_dir), "--data", str(f)])
    assert res.exit_code == 0, res.output


def test_prefix_rows_on_a_masked_lm_are_one_line(mlm_checkpoint, tmp_path):
    f = tmp_path / "rows.csv"
    f.write_text(PREFIX_CSV)
    for cmd in (["run", "--out", str(tmp_path / "r"), "--quiet"], ["accuracy"]):
        res = runner.invoke(app, [*cmd, "--data", str(f), "--model", str(mlm_checkpoint)])
        assert res.exit_code == 2, res.output
        assert f"{f} line 2: a prefix row (no [MASK]" in res.output and "Traceback" not in res.output
        assert "causal LM" in res.output
