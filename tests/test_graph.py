"""graph/: hooks leave the model as they found it, even on an error; node names round-trip.
That the hooked graph computes what the plain model computes is tested for every family,
BERT included, in test_architectures.py."""

import pytest
import torch

from influence_patterns.errors import ModelError
from influence_patterns.graph.architectures import adapter_for
from influence_patterns.graph.hooks import Interceptor, intercept
from influence_patterns.graph.nodes import Node, parse_node

from conftest import make_model


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
