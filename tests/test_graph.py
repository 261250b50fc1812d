"""The hooked graph computes exactly what the plain Hugging Face model computes."""

import pytest
import torch

from influence_patterns.attribution.influence import Constraint, RestrictPaths
from influence_patterns.errors import ModelError
from influence_patterns.graph.architectures import adapter_for
from influence_patterns.graph.hooks import Interceptor, intercept
from influence_patterns.graph.nodes import Node, parse_node

from conftest import make_model


def _inputs(tokenizer, texts):
    enc = tokenizer(texts, padding=True, return_tensors="pt")
    return enc["input_ids"], enc["attention_mask"]


class Seen(Interceptor):
    def __init__(self):
        self.h, self.attn = [], []

    def on_h(self, layer, h):
        self.h.append((layer, tuple(h.shape)))
        return h

    def on_attn(self, layer, context, skip):
        self.attn.append((layer, tuple(context.shape), tuple(skip.shape)))
        return context, skip


@pytest.mark.parametrize("kind", ["mlm", "classification"])
def test_hooked_outputs_equal_plain_model(tokenizer, kind):
    model = make_model(kind, layers=3, heads=2)
    ids, am = _inputs(tokenizer, ["the boy [MASK] good", "the dogs near the cat [MASK] bad"])
    target = (ids == tokenizer.mask_token_id).int().argmax(1)
    with torch.no_grad():
        plain = model(input_ids=ids, attention_mask=am).logits
    adapter = adapter_for(model)
    emb = model.get_input_embeddings()(ids)
    seen = Seen()
    restrict = RestrictPaths([Constraint(1), Constraint(2, "skip"), Constraint(1, 0)], source=1, head_dim=8)
    with torch.no_grad():
        with intercept(adapter, seen):
            hooked = adapter.logits(emb, am, target)
        with intercept(adapter, restrict):
            restricted = adapter.logits(emb, am, target)
        unhooked_again = adapter.logits(emb, am, target)
    expected = plain if kind == "classification" else plain[torch.arange(2), target]
    torch.testing.assert_close(hooked, expected)
    torch.testing.assert_close(restricted, expected)  # restrictions change gradients, not values
    torch.testing.assert_close(unhooked_again, expected)  # hooks are removed
    assert [l for l, _ in seen.h] == [0, 1, 2, 3]
    assert [l for l, *_ in seen.attn] == [1, 2, 3]
    assert seen.attn[0][1] == (2, ids.shape[1], 16)


def test_hooks_removed_after_error(tokenizer):
    model = make_model("mlm")
    adapter = adapter_for(model)

    class Boom(Interceptor):
        def on_h(self, layer, h):
            raise RuntimeError("boom")

    emb = torch.zeros(1, 4, 16, dtype=torch.float64)
    with pytest.raises(RuntimeError):
        with intercept(adapter, Boom()):
            adapter.logits(emb, torch.ones(1, 4, dtype=torch.long), torch.tensor([1]))
    for module in model.modules():
        assert not module._forward_hooks and not module._forward_pre_hooks


def test_node_names_round_trip():
    for name in ["x3", "L0@2", "L2@5", "L2.H7@5", "L3.skip@0", "y"]:
        assert str(parse_node(name)) == name
    assert parse_node("L2.H7@5") == Node("head", 2, 5, 7)
    with pytest.raises(ValueError, match="not a node name"):
        parse_node("L2.Q@1")


def test_unsupported_architecture_is_named():
    from transformers import BloomConfig, BloomForCausalLM

    model = BloomForCausalLM(BloomConfig(n_layer=1, n_head=2, hidden_size=8, vocab_size=10))
    with pytest.raises(ModelError, match="unsupported architecture 'bloom'.*bert"):
        adapter_for(model)
