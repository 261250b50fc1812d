"""The Explainer entry point: results, JSON, user patterns and clear errors."""

import json

import pytest

from influence_patterns import Explainer, Explanation, Query
from influence_patterns.errors import InputError, ModelError
from influence_patterns.models.loading import load_model

TEXT = "the boy near the girls [MASK] good"


def test_explanation_fields_and_round_trip(mlm, tokenizer, tmp_path):
    ex = Explainer(mlm, tokenizer, steps=6, name="tiny")
    result = ex.explain(TEXT, targets=("is", "are"))
    d = result.to_dict()
    assert d["tokens"] == ["[CLS]", "the", "boy", "near", "the", "girls", "[MASK]", "good", "[SEP]"]
    assert d["target_index"] == 6 and d["num_layers"] == 3 and d["num_heads"] == 2
    assert d["qoi"]["name"] == "agreement"
    assert [p["source_index"] for p in d["patterns"]] == [1, 2, 3, 4, 5, 7]
    for p in d["patterns"]:
        assert len(p["positions"]) == 4 and len(p["heads"]) == 3
        assert p["positions"][0] == p["source_index"] and p["positions"][-1] == 6
        assert p["sign"] in (1, -1)
        assert all(h is None or 0 <= h < 2 for h in p["heads"])
    result.save(tmp_path / "r.json")
    again = Explanation.load(tmp_path / "r.json")
    assert again.to_dict() == json.loads((tmp_path / "r.json").read_text())
    assert again.patterns[0].text(again.tokens).startswith("L1")


def test_user_pattern_influence_matches_gpr(mlm, tokenizer):
    ex = Explainer(mlm, tokenizer, steps=6)
    result = ex.explain(TEXT, targets=("is", "are"))
    p = result.pattern_for(2)
    token_level = ex.influence(TEXT, 2, positions=p.positions, targets=("is", "are"))
    head_level = ex.influence(TEXT, 2, positions=p.positions[1:], heads=p.heads, targets=("is", "are"))
    whole = ex.influence(TEXT, 2, targets=("is", "are"))
    assert token_level == pytest.approx(p.influence_token, rel=1e-9)
    assert head_level == pytest.approx(p.influence_head, rel=1e-9)
    assert whole == pytest.approx(p.g, rel=1e-9)
    with pytest.raises(InputError, match="needs 3 positions"):
        ex.influence(TEXT, 2, positions=[1, 2], targets=("is", "are"))


def test_classifier_explains_prediction_by_default(classifier, tokenizer):
    ex = Explainer(classifier, tokenizer, steps=4)
    result = ex.explain("a very funny movie")
    assert result.target_index == 0 and result.qoi_name == "classification"
    assert result.qoi_value >= 0  # gold = the predicted class
    assert result.label in (0, 1)
    other = ex.explain("a very funny movie", label=1 - result.label)
    assert other.qoi_value == pytest.approx(-result.qoi_value)
    with pytest.raises(InputError, match="out of range"):
        ex.explain("a very funny movie", label=5)


@pytest.mark.parametrize(
    "text, targets, message",
    [
        ("the boy is good", ("is", "are"), "no \\[MASK\\]"),
        ("the [MASK] [MASK] good", ("is", "are"), "found 2 \\[MASK\\]"),
        ("the boy [MASK] good", ("girlss", "are"), "not a single word piece"),
        ("the boy [MASK] good", ("zebra", "are"), "not in the model's vocabulary"),
        ("the boy [MASK] good", ("is", "is"), "targets are equal"),
        ("the boy [MASK] good", None, "needs two targets"),
        ("the boy " * 40 + "[MASK]", ("is", "are"), "at most 64"),
        ("   ", ("is", "are"), "empty"),
    ],
)
def test_bad_input_is_named(mlm, tokenizer, text, targets, message):
    ex = Explainer(mlm, tokenizer, steps=2)
    with pytest.raises(InputError, match=message):
        ex.explain(text, targets=targets)


def test_bad_options(mlm, tokenizer):
    with pytest.raises(InputError, match="unknown baseline"):
        Explainer(mlm, tokenizer, baseline="noise")
    with pytest.raises(InputError, match="unknown GPR method"):
        Explainer(mlm, tokenizer, method="slow")
    with pytest.raises(InputError, match="steps must be at least 1"):
        Explainer(mlm, tokenizer, steps=0)


def test_load_model_errors(tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        load_model(str(tmp_path / "nope"))
    from transformers import BloomConfig, BloomForCausalLM

    BloomForCausalLM(BloomConfig(n_layer=1, n_head=2, hidden_size=8, vocab_size=10)).save_pretrained(tmp_path / "bloom")
    with pytest.raises(ModelError, match="unsupported architecture 'bloom'.*bert"):
        load_model(str(tmp_path / "bloom"))


def test_load_checkpoint_dir(mlm_checkpoint, classifier_checkpoint):
    assert load_model(str(mlm_checkpoint)).kind == "mlm"
    assert load_model(str(classifier_checkpoint)).kind == "classification"


def test_device_resolution():
    import torch

    from influence_patterns.models.loading import resolve_device

    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else resolve_device("auto"))
    if not torch.cuda.is_available():
        with pytest.raises(ModelError, match="no CUDA device"):
            resolve_device("cuda")
    with pytest.raises(ModelError, match="unknown device 'tpu'"):
        resolve_device("tpu")


def test_explain_batch_takes_plain_strings(mlm, tokenizer):
    ex = Explainer(mlm, tokenizer, steps=3)
    texts = ["the boy [MASK] good", "the boys near the dog [MASK] good"]
    by_query = ex.explain_batch([Query(t, ("is", "are")) for t in texts])
    by_text = ex.explain_batch(texts, targets=("is", "are"))
    assert [e.to_dict() for e in by_text] == [e.to_dict() for e in by_query]
    each = ex.explain_batch(texts, targets=[("is", "are"), ("are", "is")])
    assert each[1].targets == ["are", "is"] and each[0].targets == ["is", "are"]
    counted: list[int] = []
    ex.explain_batch(texts, targets="is,are", progress=counted.append)
    assert sum(counted) == sum(len(e.patterns) for e in by_text)  # per source-token chunk
    from influence_patterns.errors import InputError

    with pytest.raises(InputError, match="3 entries for 2 texts"):
        ex.explain_batch(texts, targets=[("is", "are")] * 3)
    with pytest.raises(InputError, match="strings or Query"):
        ex.explain_batch([42])


def test_explain_batch_takes_labels_for_a_classifier(classifier, tokenizer):
    ex = Explainer(classifier, tokenizer, steps=2)
    out = ex.explain_batch(["a very funny movie", "an awful film"], labels=[1, 0])
    assert [e.label for e in out] == [1, 0]
