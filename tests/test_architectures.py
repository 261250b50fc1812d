"""Every BERT-family adapter: hooked == plain model, completeness, decomposition,
fast GPR == reference GPR, on tiny random-weight models (float64, MLM and classifier)."""

from __future__ import annotations

import pytest
import torch

from influence_patterns import Explainer, Query
from influence_patterns.attribution.influence import Constraint, RestrictPaths, qoi_values
from influence_patterns.attribution.quadrature import make_quadrature
from influence_patterns.errors import ModelError
from influence_patterns.graph.adapters import Adapter
from influence_patterns.graph.architectures import ADAPTERS, adapter_for
from influence_patterns.graph.hooks import Interceptor, intercept
from influence_patterns.search.fast import attention_state, gpr_fast, shared_pass
from influence_patterns.search.full_width import gpr_full_width, plain_gradients
from influence_patterns.search.reference import gpr_reference

from conftest import (
    FAST_SCORERS, WORDS, assert_context_and_skip_reach_the_output, assert_decomposes, assert_same_searches,
)

# RoBERTa-style vocabularies put <s>, <pad>, </s>, <unk> first (pad id 1, so position
# ids start at 2); the others use BERT's order (pad id 0).
ROBERTA_SPECIALS = ["[CLS]", "[PAD]", "[SEP]", "[UNK]", "[MASK]"]
BERT_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
VOCAB = len(WORDS) + 5

# name → (transformers config class, MLM class, classifier class, config kwargs)
ARCHS = {
    "bert": ("BertConfig", "BertForMaskedLM", "BertForSequenceClassification", dict(pad_token_id=0)),
    "roberta": ("RobertaConfig", "RobertaForMaskedLM", "RobertaForSequenceClassification",
                dict(pad_token_id=1, bos_token_id=0, eos_token_id=2, type_vocab_size=1)),
    "xlm-roberta": ("XLMRobertaConfig", "XLMRobertaForMaskedLM", "XLMRobertaForSequenceClassification",
                    dict(pad_token_id=1, bos_token_id=0, eos_token_id=2, type_vocab_size=1)),
    "camembert": ("CamembertConfig", "CamembertForMaskedLM", "CamembertForSequenceClassification",
                  dict(pad_token_id=1, bos_token_id=0, eos_token_id=2, type_vocab_size=1)),
    "electra": ("ElectraConfig", "ElectraForMaskedLM", "ElectraForSequenceClassification",
                dict(embedding_size=16)),
    "electra-projected": ("ElectraConfig", "ElectraForMaskedLM", "ElectraForSequenceClassification",
                          dict(embedding_size=10)),
    "distilbert": ("DistilBertConfig", "DistilBertForMaskedLM", "DistilBertForSequenceClassification",
                   dict(pad_token_id=0)),
    "albert": ("AlbertConfig", "AlbertForMaskedLM", "AlbertForSequenceClassification",
               dict(embedding_size=10, num_hidden_groups=1, inner_group_num=1, pad_token_id=0)),
    # two layer groups of two distinct inner layers, each group run twice: L = 2 * 2 = 4 (3 calls are shared)
    "albert-groups": ("AlbertConfig", "AlbertForMaskedLM", "AlbertForSequenceClassification",
                      dict(embedding_size=10, num_hidden_groups=2, inner_group_num=2, pad_token_id=0)),
}
CORE = ["roberta", "electra-projected", "distilbert", "albert"]  # the full property suite runs on these


def make_arch_model(arch: str, kind: str = "mlm", layers: int = 2, heads: int = 2, hidden: int = 16,
                    seed: int = 0):
    """A tiny random model of ``arch`` in float64 with eager attention, weights widened like
    conftest's BERT (so attention is far from uniform and candidates rarely tie)."""
    import transformers

    config_cls, mlm_cls, clf_cls, extra = ARCHS[arch]
    torch.manual_seed(seed)
    common = dict(vocab_size=VOCAB, max_position_embeddings=64, num_labels=2)
    if config_cls == "DistilBertConfig":
        config = transformers.DistilBertConfig(dim=hidden, n_layers=layers, n_heads=heads, hidden_dim=2 * hidden,
                                               **common, **extra)
    else:
        config = getattr(transformers, config_cls)(
            hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
            intermediate_size=2 * hidden, **common, **extra,
        )
    config._attn_implementation = "eager"
    model = getattr(transformers, mlm_cls if kind == "mlm" else clf_cls)(config).eval().to(torch.float64)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" not in name.lower() and p.dim() > 1:
                p.mul_(8.0)
    return model


@pytest.fixture(scope="module")
def tokenizers(tmp_path_factory):
    from transformers import BertTokenizer

    out = {}
    for key, specials in (("roberta", ROBERTA_SPECIALS), ("bert", BERT_SPECIALS)):
        path = tmp_path_factory.mktemp(key) / "vocab.txt"
        path.write_text("\n".join(specials + WORDS) + "\n")
        out[key] = BertTokenizer(str(path), do_lower_case=True)
    return out


def _tok(tokenizers, arch):
    return tokenizers["roberta" if ARCHS[arch][3].get("pad_token_id") == 1 else "bert"]


class Seen(Interceptor):
    def __init__(self):
        self.h, self.attn = [], []

    def on_h(self, layer, h):
        self.h.append(layer)
        return h

    def on_attn(self, layer, context, skip):
        self.attn.append((layer, tuple(context.shape), tuple(skip.shape)))
        return context, skip


MLM_TEXTS = [
    Query("the boy near the girls [MASK] good", ("is", "are")),
    Query("the dogs [MASK] bad", ("are", "is")),
]
CLF_TEXTS = [Query("a very funny movie", label=1), Query("the film was not good and bad", label=0)]


def _texts(kind):
    return MLM_TEXTS if kind == "mlm" else CLF_TEXTS


@pytest.mark.parametrize("kind", ["mlm", "classification"])
@pytest.mark.parametrize("arch", list(ARCHS))
def test_hooked_outputs_equal_plain_model(tokenizers, arch, kind):
    layers = 2
    model = make_arch_model(arch, kind, layers=layers)
    tok = _tok(tokenizers, arch)
    texts = ["the boy [MASK] good", "the dogs near the cat [MASK] bad"]  # padded batch
    enc = tok(texts, padding=True, return_tensors="pt")
    ids, am = enc["input_ids"], enc["attention_mask"]
    target = (ids == tok.mask_token_id).int().argmax(1) if kind == "mlm" else torch.zeros(2, dtype=torch.long)
    with torch.no_grad():
        plain = model(input_ids=ids, attention_mask=am).logits
    expected = plain if kind == "classification" else plain[torch.arange(2), target]

    adapter = adapter_for(model)
    L = adapter.num_layers
    assert L == (4 if arch == "albert-groups" else layers)
    emb = model.get_input_embeddings()(ids)
    seen = Seen()
    head_dim = adapter.hidden_size // adapter.num_heads
    cons = [Constraint(1), Constraint(2, "skip"), Constraint(1, 0), Constraint(3, 1)][:L]
    with torch.no_grad():
        with intercept(adapter, seen):
            hooked = adapter.logits(emb, am, target)
        with intercept(adapter, RestrictPaths(cons, source=1, head_dim=head_dim)):
            restricted = adapter.logits(emb, am, target)
        unhooked_again = adapter.logits(emb, am, target)
    torch.testing.assert_close(hooked, expected)
    torch.testing.assert_close(restricted, expected)  # restrictions change gradients, not values
    torch.testing.assert_close(unhooked_again, expected)
    assert seen.h == list(range(L + 1))
    assert [l for l, *_ in seen.attn] == list(range(1, L + 1))
    assert all(c == (2, ids.shape[1], adapter.hidden_size) == s for _, c, s in seen.attn)
    for module in model.modules():
        assert not module._forward_hooks and not module._forward_pre_hooks


@pytest.mark.parametrize("arch", CORE)
def test_interceptor_replacements_reach_the_output(tokenizers, arch):
    """The hooks are live: zeroing the context or the skip at one layer changes y, and
    each does so differently (the skip is a node of its own, not the attention input)."""
    ex = Explainer(make_arch_model(arch, "mlm"), _tok(tokenizers, arch))
    assert_context_and_skip_reach_the_output(ex.adapter, ex.prepare(MLM_TEXTS[:1]))


@pytest.mark.parametrize("kind", ["mlm", "classification"])
@pytest.mark.parametrize("arch", CORE)
def test_completeness(tokenizers, arch, kind):
    """Σ_i g(x_i) = q(x) - q(b) with Gauss–Legendre (error far below the tolerance)."""
    model = make_arch_model(arch, kind, layers=2)
    ex = Explainer(model, _tok(tokenizers, arch))
    batch = ex.prepare(_texts(kind))
    # DistilBERT's classifier head has a ReLU: the integrand has kinks, so no rule
    # converges fast there; everywhere else 24 Gauss–Legendre points are exact to 1e-6.
    kinked = arch == "distilbert" and kind == "classification"
    quad = make_quadrature(400 if kinked else 24, "gauss-legendre", dtype=batch.x.dtype)
    _, g = plain_gradients(ex.adapter, batch, quad, ex.qoi)
    q_x, q_b = qoi_values(ex.adapter, batch, ex.qoi)
    assert float((q_x - q_b).abs().min()) > 1e-3  # a non-trivial check
    tol = 2e-3 if kinked else 1e-6
    torch.testing.assert_close(g.sum(1), q_x - q_b, atol=tol, rtol=tol)


@pytest.mark.parametrize("method", list(FAST_SCORERS))
@pytest.mark.parametrize("kind", ["mlm", "classification"])
@pytest.mark.parametrize("arch", CORE)
def test_fast_equals_reference_and_decomposes(tokenizers, arch, kind, method):
    model = make_arch_model(arch, kind, layers=2, heads=2)
    ex = Explainer(model, _tok(tokenizers, arch))
    batch = ex.prepare(_texts(kind))
    quad = make_quadrature(5, "riemann", dtype=batch.x.dtype)
    search = FAST_SCORERS[method]
    fast = search(ex.adapter, batch, quad, ex.qoi)
    assert_same_searches(fast, gpr_reference(ex.adapter, batch, quad, ex.qoi))
    assert_same_searches(search(ex.adapter, batch, quad, ex.qoi, max_rows=1 if method == "fast" else 7), fast)  # chunked
    for row in fast:
        for s in row:
            assert_decomposes(s, ex.adapter.num_layers, atol=1e-9)
    assert any(h is not None for row in fast for s in row for h in s.heads)  # heads are exercised, not only skips


def test_albert_shared_layers_fast_equals_reference(tokenizers):
    """Three layers computed by one shared module (and, below, four by two groups)."""
    for arch, layers in (("albert", 3), ("albert-groups", 2)):
        model = make_arch_model(arch, "mlm", layers=layers)
        ex = Explainer(model, _tok(tokenizers, arch))
        assert ex.adapter.num_layers == (3 if arch == "albert" else 4)
        batch = ex.prepare(MLM_TEXTS[1:])
        quad = make_quadrature(4, "gauss-legendre", dtype=batch.x.dtype)
        fast = gpr_fast(ex.adapter, batch, quad, ex.qoi)
        assert_same_searches(fast, gpr_reference(ex.adapter, batch, quad, ex.qoi))
        assert_same_searches(gpr_full_width(ex.adapter, batch, quad, ex.qoi), fast)
        for s in fast[0]:
            assert_decomposes(s, ex.adapter.num_layers, atol=1e-9)


@pytest.mark.parametrize("kind", ["mlm", "classification"])
@pytest.mark.parametrize("arch", list(ARCHS))
def test_single_position_parts_match_the_hooked_model(tokenizers, arch, kind):
    """What the single-position scorer rebuilds from the adapter's position-wise parts
    (Q/K/V projections, scaling, softmax; F_l = W_O, residual, LN, FFN, LN) equals what
    the hooked model computes: a^l from s^l, and h^l from (a^l, s^l), at every layer."""
    model = make_arch_model(arch, kind, layers=2)
    ex = Explainer(model, _tok(tokenizers, arch))
    adapter = ex.adapter
    assert adapter.single_position_unsupported() is None
    batch = ex.prepare(_texts(kind)[1:])
    n = batch.lengths[0]

    class Keep(Interceptor):
        def __init__(self):
            self.h, self.attn = [], []

        def on_h(self, layer, h):
            self.h.append(h)
            return h

        def on_attn(self, layer, context, skip):
            self.attn.append((context, skip))
            return context, skip

    keep = Keep()
    with torch.no_grad(), intercept(adapter, keep):
        adapter.logits(batch.x[:, :n], batch.attention_mask[:, :n], batch.target_index)
    for l, layer in enumerate(adapter.layers(), start=1):
        context, skip = keep.attn[l - 1]
        with torch.no_grad():
            st = attention_state(adapter, layer, skip)
            torch.testing.assert_close(st.context, context, rtol=1e-12, atol=1e-12)
            torch.testing.assert_close(adapter.after_attention(layer, context, skip), keep.h[l], rtol=1e-12, atol=1e-12)
    quad = make_quadrature(3, "gauss-legendre", dtype=batch.x.dtype)
    shared = shared_pass(adapter, batch, 0, quad, ex.qoi)
    _, g = plain_gradients(adapter, batch, quad, ex.qoi)
    torch.testing.assert_close(shared.g, g[0, :n], rtol=1e-10, atol=1e-12)


def test_training_mode_falls_back_to_full_width_tangents(tokenizers):
    model = make_arch_model("distilbert", "mlm")
    adapter = adapter_for(model.train())
    assert "training" in adapter.single_position_unsupported()
    model.eval()


def test_roberta_length_limit_counts_the_position_offset(tokenizers):
    model = make_arch_model("roberta", "mlm")
    adapter = adapter_for(model)
    assert adapter.max_length == 64 - 1 - 1  # positions 2..63


def test_explainer_runs_end_to_end(tokenizers):
    model = make_arch_model("distilbert", "mlm")
    expl = Explainer(model, _tok(tokenizers, "distilbert"), steps=4).explain("the dogs [MASK] bad", targets=("are", "is"))
    assert [p.source_index for p in expl.patterns] == [1, 2, 4]
    assert all(len(p.positions) == 3 and len(p.heads) == 2 for p in expl.patterns)


def test_unsupported_architecture_lists_the_supported_ones():
    from transformers import BloomConfig, BloomForCausalLM

    model = BloomForCausalLM(BloomConfig(n_layer=1, n_head=2, hidden_size=8, vocab_size=10))
    with pytest.raises(ModelError, match="unsupported architecture 'bloom'") as err:
        adapter_for(model)
    for name in ("albert", "bert", "distilbert", "electra", "roberta", "xlm-roberta",
                 "gpt2", "gpt_neox", "llama", "mistral", "qwen2"):
        assert name in str(err.value)
    assert set(ADAPTERS) >= {"albert", "bert", "camembert", "distilbert", "electra", "roberta", "xlm-roberta"}


def test_loader_accepts_exactly_the_registered_types():
    from transformers import BloomConfig, DistilBertConfig

    from influence_patterns.models.loading import check_supported, supported_model_types

    assert supported_model_types() == tuple(sorted(ADAPTERS))
    check_supported(DistilBertConfig())  # no error
    with pytest.raises(ModelError, match="unsupported architecture 'bloom'.*albert, bert, camembert, distilbert"):
        check_supported(BloomConfig())


def test_electra_discriminator_is_refused():
    from transformers import ElectraConfig, ElectraForPreTraining

    model = ElectraForPreTraining(ElectraConfig(vocab_size=10, embedding_size=8, hidden_size=8, num_hidden_layers=1,
                                                num_attention_heads=2, intermediate_size=8))
    with pytest.raises(ModelError, match="no masked-LM or sequence-classification head"):
        adapter_for(model)


@pytest.mark.parametrize("arch", ["roberta", "distilbert", "albert"])
def test_auto_max_rows_follows_the_measured_row_cost(arch):
    from influence_patterns.search.memory import SAFETY, auto_max_rows, row_bytes, saved_activation_bytes

    adapter = adapter_for(make_arch_model(arch, "mlm"))
    L, H = adapter.num_layers, adapter.num_heads
    small, large = saved_activation_bytes(adapter, 8), saved_activation_bytes(adapter, 32)
    # at least the attention probabilities of every layer are kept (8 bytes in float64)
    assert large >= L * H * 32 * 32 * 8
    assert large > 4 * small  # grows faster than linearly with the attention term
    per_row = row_bytes(adapter, 32)
    assert auto_max_rows(adapter, 32, budget_bytes=int(100 * SAFETY * per_row) + 1) == 100
    assert auto_max_rows(adapter, 32, budget_bytes=1) == 1
    assert auto_max_rows(adapter, 32) >= 1  # budget from free memory
    with pytest.raises(ValueError, match="budget_bytes"):
        auto_max_rows(adapter, 32, budget_bytes=0)


@pytest.mark.parametrize("kind", ["mlm", "classification"])
@pytest.mark.parametrize("arch", list(ARCHS))
def test_internal_influence_shared_pass_equals_one_row_per_source(tokenizers, arch, kind):
    """``methods.source_scores`` (the IG path's forward once per sentence, tangents per
    source under vmap) equals the literal ``conductance_scores`` with one dual row per
    source, at every node, on a padded batch; the method's paths follow."""
    from influence_patterns.analysis import methods as B
    from influence_patterns.runs import RunRecord

    model = make_arch_model(arch, kind, layers=3)
    ex = Explainer(model, _tok(tokenizers, arch), steps=4)
    texts = _texts(kind)
    batch = ex.prepare(texts)
    assert len(set(batch.lengths)) > 1  # padding is exercised
    rows = [RunRecord.from_dict({"index": k, **e.to_dict()}) for k, e in enumerate(ex.explain_batch(texts))]
    quad = make_quadrature(4, "gauss-legendre", dtype=batch.x.dtype)
    ctx = B.MethodInput(ex.adapter, batch, rows, quad, ex.qoi, seed=0)
    for b in range(len(batch)):
        n, src = batch.lengths[b], batch.sources[b]
        shared = B.source_scores(ctx, b, src)
        # the default f(context, skip) layout (BERT, RoBERTa, ELECTRA) runs the rest of
        # layer L on the one row the QoI reads (the MLM target, a classifier's first token)
        read = B._read_row(ex.adapter, B.node_cotangents(ctx), b, n)
        if type(ex.adapter).install_hooks is Adapter.install_hooks:
            assert read == (int(batch.target_index[b]) if kind == "mlm" else 0)
        else:
            assert read is None
        sent = torch.tensor([b] * len(src))
        tangent = torch.zeros_like(batch.x[sent])
        tangent[torch.arange(len(src)), torch.tensor(src)] = (batch.x - batch.baseline)[b, src]
        literal = B.conductance_scores(ctx, sent, tangent)
        for l in range(ex.adapter.num_layers):
            for a, r in ((shared.h[l], literal.h[l]), (shared.heads[l], literal.heads[l]),
                         (shared.skips[l], literal.skips[l])):
                torch.testing.assert_close(a, r[:, :n], rtol=1e-9, atol=1e-12)
        target = int(batch.target_index[b])
        assert [B._select(shared, s, i, target, n) for s, i in enumerate(src)] == \
               [B._select(literal, s, i, target, n) for s, i in enumerate(src)]


@pytest.mark.parametrize("kind", ["mlm", "classification"])
@pytest.mark.parametrize("arch", CORE)
def test_three_layers_second_seed_fast_equals_reference(tokenizers, arch, kind):
    """Beyond the 2-layer, seed-0 models above: a middle layer to choose in, other weights."""
    model = make_arch_model(arch, kind, layers=3, heads=2, seed=1)
    ex = Explainer(model, _tok(tokenizers, arch))
    L = ex.adapter.num_layers
    assert L == 3
    batch = ex.prepare((MLM_TEXTS if kind == "mlm" else CLF_TEXTS)[:1])
    quad = make_quadrature(4, "gauss-legendre", dtype=batch.x.dtype)
    ref = gpr_reference(ex.adapter, batch, quad, ex.qoi)
    for search in FAST_SCORERS.values():
        fast = search(ex.adapter, batch, quad, ex.qoi)
        assert_same_searches(fast, ref)
    for s in ref[0]:
        assert_decomposes(s, L, atol=1e-9)
    # a 3-layer pattern has a middle layer: the search really chooses there
    assert len({s.positions[1] for s in ref[0]}) > 1 or any(h is not None for s in ref[0] for h in s.heads[:-1])
