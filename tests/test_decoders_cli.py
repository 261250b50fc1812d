"""The decoder contract from outside: ``influence-patterns explain TEXT --targets are,is
--model DIR --json F`` on GPT-2, GPT-NeoX, Llama and Qwen2 checkpoint directories with a
byte-level BPE tokenizer; ``--method reference`` gives the same patterns; bad input is
one line and exit code 2."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from influence_patterns.cli import app

from decoder_models import BOS_FAMILIES, make_decoder, make_tokenizer

runner = CliRunner()
TEXT = "the keys to the cabinet"


def save_decoder(path, family: str, kind: str = "causal"):
    tok = make_tokenizer(path / "tok", bos=family in BOS_FAMILIES)
    model = make_decoder(family, kind, vocab_size=len(tok), dtype=torch.float32)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    return {f: save_decoder(tmp_path_factory.mktemp(f), f) for f in ("gpt2", "gpt_neox", "llama", "qwen2")}


def _explain(model, out, *extra):
    return runner.invoke(app, ["explain", TEXT, "--targets", "are,is", "--model", str(model), "--steps", "8",
                               "--json", str(out), *extra])


@pytest.mark.parametrize("family", ["gpt2", "gpt_neox", "llama", "qwen2"])
def test_explain_contract(checkpoints, family, tmp_path):
    res = _explain(checkpoints[family], tmp_path / "fast.json")
    assert res.exit_code == 0, res.output
    d = json.loads((tmp_path / "fast.json").read_text())
    assert d["causal"] is True and d["architecture"].startswith(family)
    assert d["target_index"] == len(d["tokens"]) - 1
    assert d["tokens"][-1] == "Ġcabinet" and d["qoi"]["name"] == "next-token"
    bos = 1 if family in BOS_FAMILIES else 0
    assert [p["source_index"] for p in d["patterns"]] == list(range(bos, len(d["tokens"])))
    for p in d["patterns"]:
        assert set(p) >= {"positions", "heads", "influence_token", "influence_head", "g"}
        assert p["positions"] == sorted(p["positions"]) and p["positions"][-1] == d["target_index"]
    res = _explain(checkpoints[family], tmp_path / "ref.json", "--method", "reference")
    assert res.exit_code == 0, res.output
    r = json.loads((tmp_path / "ref.json").read_text())
    for a, b in zip(d["patterns"], r["patterns"]):
        assert (a["positions"], a["heads"]) == (b["positions"], b["heads"])
        for key in ("g", "influence_token", "influence_head"):
            assert a[key] == pytest.approx(b[key], rel=1e-3, abs=1e-5)


@pytest.mark.parametrize("args, message", [
    (["the keys to the cabinet", "--targets", "arexyz,is"], "not a single token after the text"),
    (["the keys to the [MASK]", "--targets", "are,is"], "has a [MASK]"),
    (["the keys to the cabinet"], "needs --targets"),
])
def test_bad_decoder_input_is_one_line(checkpoints, args, message):
    res = runner.invoke(app, ["explain", *args, "--model", str(checkpoints["gpt2"]), "--steps", "2"])
    assert res.exit_code == 2, res.output
    assert message in res.output and "Traceback" not in res.output


def test_unsupported_family_is_one_line(tmp_path):
    from transformers import BloomConfig, BloomForCausalLM

    BloomForCausalLM(BloomConfig(n_layer=1, n_head=2, hidden_size=8, vocab_size=10)).save_pretrained(tmp_path)
    res = runner.invoke(app, ["explain", TEXT, "--targets", "are,is", "--model", str(tmp_path)])
    assert res.exit_code == 2, res.output
    assert "unsupported architecture 'bloom'" in res.output and "gpt_neox" in res.output and "llama" in res.output
