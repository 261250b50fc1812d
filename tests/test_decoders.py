"""Causal decoders (GPT-2; Llama, Qwen2, Mistral with rotary + GQA; GPT-NeoX parallel and
sequential): hooked == plain model, completeness, decomposition, the single-position
scorer == full-width scorer == the literal reference, causal patterns, inputs and
baselines, and restricted IG recomputed independently on the plain model."""

from __future__ import annotations

import warnings

import pytest
import torch

from influence_patterns import Explainer, Query
from influence_patterns.attribution.influence import Constraint, RestrictPaths, qoi_values
from influence_patterns.attribution.quadrature import make_quadrature
from influence_patterns.errors import InputError, ModelError
from influence_patterns.graph.architectures import adapter_for
from influence_patterns.graph.hooks import Interceptor, intercept
from influence_patterns.search.fast import attention_state, gpr_fast, shared_pass
from influence_patterns.search.full_width import gpr_full_width, plain_gradients
from influence_patterns.search.reference import gpr_reference

from conftest import assert_context_and_skip_reach_the_output, assert_decomposes, assert_same_searches
from decoder_models import BOS_FAMILIES, FAMILIES, FORMS, make_decoder, make_tokenizer

TEXTS = [Query("the keys to the cabinet", ("are", "is")), Query("the authors hurt", ("themselves", "himself"))]


@pytest.fixture(scope="module")
def toks(tmp_path_factory):
    root = tmp_path_factory.mktemp("dec-tok")
    return {"gpt": make_tokenizer(root / "gpt"), "bos": make_tokenizer(root / "bos", bos=True),
            "pad": make_tokenizer(root / "pad", pad=True)}


def _tok(toks, family):
    return toks["bos" if family in BOS_FAMILIES else "gpt"]


def _explainer(toks, family, kind="causal", **kw):
    tok = _tok(toks, family)
    return Explainer(make_decoder(family, kind, vocab_size=len(tok), **kw), tok)


@pytest.mark.parametrize("kind", ["causal", "classification"])
@pytest.mark.parametrize("family", list(FAMILIES))
def test_hooked_outputs_equal_plain_model(toks, family, kind):
    tok = _tok(toks, family)
    model = make_decoder(family, kind, vocab_size=len(tok))
    adapter = adapter_for(model)  # switches float64 softmax/RMSNorm to float64 arithmetic
    enc = tok(["the keys to the cabinet", "the dog"], padding=False)["input_ids"]
    n = max(map(len, enc))
    ids = torch.tensor([e + [0] * (n - len(e)) for e in enc])
    am = torch.tensor([[1] * len(e) + [0] * (n - len(e)) for e in enc])
    target = am.sum(1) - 1
    with torch.no_grad():
        out = model.model if hasattr(model, "model") else getattr(model, adapter.base_name)
        hidden = out(input_ids=ids, attention_mask=am).last_hidden_state[torch.arange(2), target]
        expected = adapter.head()(hidden)
        if kind == "causal":
            torch.testing.assert_close(model(input_ids=ids, attention_mask=am).logits[torch.arange(2), target], expected)
    emb = model.get_input_embeddings()(ids)
    seen = []

    class Seen(Interceptor):
        def on_h(self, layer, h):
            seen.append(("h", layer))
            return h

        def on_attn(self, layer, context, skip):
            seen.append(("a", layer, tuple(context.shape), tuple(skip.shape)))
            return context, skip

    cons = [Constraint(1, "skip"), Constraint(3, 1)]
    with torch.no_grad():
        with intercept(adapter, Seen()):
            hooked = adapter.logits(emb, am, target)
        with intercept(adapter, RestrictPaths(cons, source=1, head_dim=adapter.head_dim)):
            restricted = adapter.logits(emb, am, target)
    torch.testing.assert_close(hooked, expected, rtol=0, atol=1e-12)
    torch.testing.assert_close(restricted, expected, rtol=0, atol=1e-12)  # restrictions change gradients only
    shape = (2, n, adapter.hidden_size)
    assert seen == [("h", 0), ("a", 1, shape, shape), ("h", 1), ("a", 2, shape, shape), ("h", 2)]
    for module in model.modules():
        assert not module._forward_hooks and not module._forward_pre_hooks


@pytest.mark.parametrize("family", ["llama", "gpt_neox"])
def test_wide_softmax_and_norm_equal_eager_in_float32(toks, family):
    """The float64-exact attention and RMSNorm are the model's own arithmetic in float32."""
    tok = _tok(toks, family)
    model = make_decoder(family, vocab_size=len(tok), dtype=torch.float32)
    ids = torch.tensor([tok("the keys to the cabinet")["input_ids"]])
    with torch.no_grad():
        before = model(input_ids=ids).logits
        adapter_for(model)
        after = model(input_ids=ids).logits
    assert torch.equal(before, after)


def test_prepared_float64_model_pickles_and_copies(toks):
    """The float64 RMSNorm and attention survive pickling (Ray workers) and deepcopy (nulls)."""
    import copy
    import pickle

    model = make_decoder("llama", vocab_size=len(toks["bos"]))
    adapter_for(model)
    ids = torch.tensor([[3, 4, 5, 6]])
    with torch.no_grad():
        expected = model(input_ids=ids).logits
        for other in (pickle.loads(pickle.dumps(model)), copy.deepcopy(model)):
            assert torch.equal(other(input_ids=ids).logits, expected)
            assert other.model.norm.forward.args[0] is other.model.norm


@pytest.mark.parametrize("family", FORMS)
def test_interceptor_replacements_reach_the_output(toks, family):
    """Zeroing a^2 or s^2 changes y, each differently: the skip is a node of its own (in the
    parallel form, the skip and the MLP together)."""
    ex = _explainer(toks, family)
    assert_context_and_skip_reach_the_output(ex.adapter, ex.prepare(TEXTS[:1]))


@pytest.mark.parametrize("kind", ["causal", "classification"])
@pytest.mark.parametrize("family", list(FAMILIES))
def test_completeness(toks, family, kind):
    ex = _explainer(toks, family, kind)
    batch = ex.prepare(TEXTS if kind == "causal" else [Query(q.text) for q in TEXTS])
    quad = make_quadrature(32, "gauss-legendre", dtype=batch.x.dtype)
    _, g = plain_gradients(ex.adapter, batch, quad, ex.qoi)
    q_x, q_b = qoi_values(ex.adapter, batch, ex.qoi)
    assert float((q_x - q_b).abs().min()) > 1e-3
    torch.testing.assert_close(g.sum(1), q_x - q_b, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_fast_equals_reference_and_decomposes(toks, family):
    ex = _explainer(toks, family)
    batch = ex.prepare(TEXTS)
    assert len(set(batch.lengths)) > 1  # a padded batch
    quad = make_quadrature(4, "gauss-legendre", dtype=batch.x.dtype)
    ref = gpr_reference(ex.adapter, batch, quad, ex.qoi)
    fast = gpr_fast(ex.adapter, batch, quad, ex.qoi)
    assert_same_searches(fast, ref)
    assert_same_searches(gpr_fast(ex.adapter, batch, quad, ex.qoi, max_rows=1), ref)  # chunked
    assert_same_searches(gpr_full_width(ex.adapter, batch, quad, ex.qoi), ref)
    for row in fast:
        for s in row:
            assert_decomposes(s, ex.adapter.num_layers, atol=1e-9)
            assert s.positions == sorted(s.positions)  # causal: never leftwards
            assert s.positions[-1] == int(batch.target_index[s.sentence])
    assert any(h is not None for row in fast for s in row for h in s.heads)


@pytest.mark.parametrize("family", FORMS)
def test_classifier_fast_equals_reference(toks, family):
    ex = _explainer(toks, family, "classification", layers=3, heads=2)
    batch = ex.prepare([Query("the dogs are bad")])
    assert batch.target_index.tolist() == [batch.lengths[0] - 1]  # the score head reads the last token
    quad = make_quadrature(3, "gauss-legendre", dtype=batch.x.dtype)
    assert_same_searches(gpr_fast(ex.adapter, batch, quad, ex.qoi), gpr_reference(ex.adapter, batch, quad, ex.qoi))


@pytest.mark.parametrize("family", ["gpt2", "qwen2", "gemma", "gpt_neox"])
def test_single_position_parts_match_the_hooked_model(toks, family):
    """a^l rebuilt from s^l (norm, projections, rotary, GQA, causal softmax) and h^l from
    (a^l, s^l) equal what the hooked model computes, at every layer."""
    ex = _explainer(toks, family)
    adapter = ex.adapter
    assert adapter.single_position_unsupported() is None
    batch = ex.prepare(TEXTS[:1])
    n = batch.lengths[0]
    kept = {"h": [], "attn": []}

    class Keep(Interceptor):
        def on_h(self, layer, h):
            kept["h"].append(h)
            return h

        def on_attn(self, layer, context, skip):
            kept["attn"].append((context, skip))
            return context, skip

    with torch.no_grad(), intercept(adapter, Keep()):
        adapter.logits(batch.x[:, :n], batch.attention_mask[:, :n], batch.target_index)
    for l, layer in enumerate(adapter.layers(), start=1):
        context, skip = kept["attn"][l - 1]
        with torch.no_grad():
            st = attention_state(adapter, layer, skip)
            torch.testing.assert_close(st.context, context, rtol=1e-12, atol=1e-12)
            torch.testing.assert_close(adapter.after_attention(layer, context, skip), kept["h"][l],
                                       rtol=1e-12, atol=1e-12)
    quad = make_quadrature(3, "gauss-legendre", dtype=batch.x.dtype)
    _, g = plain_gradients(adapter, batch, quad, ex.qoi)
    torch.testing.assert_close(shared_pass(adapter, batch, 0, quad, ex.qoi).g, g[0, :n], rtol=1e-10, atol=1e-12)


# --- restricted IG, recomputed on the plain model with detach masks -------------------------
def _rope(q, k, cos, sin, rot):
    """Rotary written out: the first ``rot`` dims of each head, halves rotated."""
    def one(x):
        xr, xp = x[..., :rot], x[..., rot:]
        half = torch.cat([-xr[..., rot // 2:], xr[..., : rot // 2]], -1)
        return torch.cat([xr * cos + half * sin, xp], -1)

    return one(q), one(k)


def _rotary_tables(n, rot, theta, dtype):
    """cos, sin of each position's rotation, in float32 as the models compute them."""
    inv = 1.0 / theta ** (torch.arange(0, rot, 2, dtype=torch.int64).float() / rot)
    freqs = torch.arange(n).float()[:, None] * inv
    emb = torch.cat([freqs, freqs], -1)
    return emb.cos().to(dtype), emb.sin().to(dtype)


def _rms(x, norm):
    return norm.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + norm.variance_epsilon))


def _plain_influence(model, x, base, source, constraints, alphas, weights, good, bad):
    """I(x_source, π) written from the definition on the model's parameters (no adapter, no
    hooks, the attention and norms written out here): every layer computed in this
    function, nodes restricted with ``m·v + (1−m)·v.detach()``. GPT-2, Llama (RMSNorm,
    rotary, GQA) and GPT-NeoX (parallel residual, partial rotary)."""
    cfg = model.config
    family = cfg.model_type
    n, d = x.shape
    H = cfg.num_attention_heads
    dh = d // H
    path = (base + alphas.view(-1, 1, 1) * (x - base)).detach().requires_grad_(True)  # (A, n, d)
    causal = torch.ones(n, n, dtype=torch.bool).tril()

    def keep(v, mask):
        return mask * v + (1 - mask) * v.detach()

    def at(t, v):
        m = torch.zeros_like(v)
        m[:, t] = 1
        return m

    def heads(t, k=H):
        return t.reshape(-1, n, k, dh).transpose(1, 2)

    if family == "gpt2":
        blocks, h = model.transformer.h, path + model.transformer.wpe(torch.arange(n))
    elif family == "llama":
        blocks, h = model.model.layers, path
        cos, sin = _rotary_tables(n, dh, cfg.rope_parameters["rope_theta"], x.dtype)
    else:
        blocks, h = model.gpt_neox.layers, path
        rot = int(dh * cfg.rope_parameters["partial_rotary_factor"])
        cos, sin = _rotary_tables(n, rot, cfg.rope_parameters["rope_theta"], x.dtype)
    h = keep(h, at(source, h))
    for l, block in enumerate(blocks):
        if family == "gpt2":
            q, k, v = (heads(t) for t in block.attn.c_attn(block.ln_1(h)).split(d, dim=2))
        elif family == "llama":
            at_ = block.self_attn
            y = _rms(h, block.input_layernorm)
            kv = cfg.num_key_value_heads
            q, k, v = heads(at_.q_proj(y)), heads(at_.k_proj(y), kv), heads(at_.v_proj(y), kv)
            q, k = _rope(q, k, cos, sin, dh)
            k, v = k.repeat_interleave(H // kv, 1), v.repeat_interleave(H // kv, 1)
        else:
            qkv = block.attention.query_key_value(block.input_layernorm(h)).view(-1, n, H, 3 * dh).transpose(1, 2)
            q, k, v = qkv.chunk(3, -1)
            q, k = _rope(q, k, cos, sin, rot)
        p = torch.softmax((q @ k.transpose(-1, -2) / dh**0.5).masked_fill(~causal, float("-inf")), -1)
        a = (p @ v).transpose(1, 2).reshape(-1, n, d)
        s = h
        c = constraints[l]
        if c is not None and c.node == "skip":
            a, s = a.detach(), keep(s, at(c.position, s))
        elif c is not None and c.node != "h":
            m = torch.zeros_like(a)
            m[:, c.position, c.node * dh:(c.node + 1) * dh] = 1
            a, s = keep(a, m), s.detach()
        if family == "gpt2":
            u = s + block.attn.c_proj(a)
            h = u + block.mlp(block.ln_2(u))
        elif family == "llama":
            u = s + block.self_attn.o_proj(a)
            h = u + block.mlp(_rms(u, block.post_attention_layernorm))
        else:  # parallel: the MLP reads s, the skip node
            h = s + block.attention.dense(a) + block.mlp(block.post_attention_layernorm(s))
        if c is not None:
            h = keep(h, at(c.position, h))
    if family == "gpt2":
        last = model.transformer.ln_f(h[:, -1])
    elif family == "llama":
        last = _rms(h[:, -1], model.model.norm)
    else:
        last = model.gpt_neox.final_layer_norm(h[:, -1])
    logits = model.get_output_embeddings()(last)
    q = logits[:, good] - logits[:, bad]
    (grad,) = torch.autograd.grad(q.sum(), path)
    return float((grad[:, source] @ (x[source] - base[source])) @ weights)


@pytest.mark.parametrize("family", ["gpt2", "llama", "gpt_neox"])
def test_every_influence_equals_restricted_ig_on_the_plain_model(toks, family):
    ex = _explainer(toks, family, layers=3, heads=4)
    ex.config.steps = 6
    text, targets = TEXTS[0].text, TEXTS[0].targets
    expl = ex.explain(text, targets=targets)
    batch = ex.prepare([Query(text, targets)])
    quad = make_quadrature(6, expl.quadrature, dtype=batch.x.dtype)
    good, bad = batch.classes[0].tolist()
    x, base = batch.x[0], batch.baseline[0]
    L = ex.adapter.num_layers
    assert any(h is not None for p in expl.patterns for h in p.heads)
    for p in expl.patterns:
        args = (ex.model, x, base, p.source_index)
        rest = (quad.alphas, quad.weights, good, bad)
        assert p.g == pytest.approx(_plain_influence(*args, [None] * L, *rest), rel=1e-9, abs=1e-12)
        token = [Constraint(t) for t in p.positions[1:]]
        assert p.influence_token == pytest.approx(_plain_influence(*args, token, *rest), rel=1e-9, abs=1e-12)
        heads = [Constraint(t, "skip" if h is None else h) for t, h in zip(p.positions[1:], p.heads)]
        assert p.influence_head == pytest.approx(_plain_influence(*args, heads, *rest), rel=1e-9, abs=1e-12)
    p = expl.patterns[0]  # the public API gives the same number for a user-given pattern
    assert ex.influence(text, p.source_index, p.positions, p.heads, targets=targets) == pytest.approx(
        p.influence_head, rel=1e-9, abs=1e-12)
    gap = sum(p.g for p in expl.patterns) - (expl.qoi_value - expl.qoi_baseline_value)
    assert expl.extra["completeness_gap"] == pytest.approx(gap) and abs(gap) < 1e-2  # 6 points: quadrature error


# --- inputs ---------------------------------------------------------------------------------
def test_prefix_inputs_bos_targets_and_sources(toks):
    ex = _explainer(toks, "llama")
    batch = ex.prepare(TEXTS)
    assert batch.tokens[0][0] == "<s>" and batch.tokens[0][-1] == "Ġcabinet"
    assert batch.target_index.tolist() == [5, 3]  # the last token
    assert batch.sources == [[1, 2, 3, 4, 5], [1, 2, 3]]  # every token but BOS, the last one included
    tok = ex.tokenizer
    assert tok.convert_ids_to_tokens(batch.classes[0].tolist()) == ["Ġare", "Ġis"]  # with the leading space
    torch.testing.assert_close(batch.baseline[:, 0], batch.x[:, 0])  # BOS stays real
    eos = ex.adapter.word_embeddings().weight[tok.eos_token_id]
    torch.testing.assert_close(batch.baseline[0, 1:], eos.expand(5, -1))
    assert ex.prepare([Query("the keys to the cabinet  ", ("are", "is"))]).tokens[0] == batch.tokens[0]
    expl = ex.explain("the keys to the cabinet", targets=("are", "is"))
    d = expl.to_dict()
    assert d["causal"] is True and d["architecture"] == "llama (sequential)"
    assert d["target_index"] == 5 and d["baseline_fill"].startswith("eos")
    assert abs(d["completeness_gap"]) < 1e-6


def test_baseline_pad_row_and_its_fallbacks(toks):
    tok = toks["pad"]
    model = make_decoder("gpt_neox", vocab_size=len(tok))
    ex = Explainer(model, tok)
    emb = ex.adapter.word_embeddings().weight
    pad = tok.pad_token_id
    batch = ex.prepare(TEXTS[:1])
    assert batch.baseline_fill == "pad <pad>"
    torch.testing.assert_close(batch.baseline[0, 0], emb[pad])
    with torch.no_grad():
        emb[pad] = 0  # as Hugging Face initialises the padding row
    assert ex.prepare(TEXTS[:1]).baseline_fill == "eos <|endoftext|>, as the pad row is all zero"
    with torch.no_grad():
        emb[tok.eos_token_id] = 0
    batch = ex.prepare(TEXTS[:1])
    assert batch.baseline_fill.startswith("mean")
    torch.testing.assert_close(batch.baseline[0, 0], emb.mean(0))
    assert Explainer(model, tok, baseline="eos").prepare(TEXTS[:1]).baseline_fill.startswith("mean")


def test_gemma_baseline_rows_are_scaled_like_its_inputs(toks):
    ex = _explainer(toks, "gemma")
    batch = ex.prepare(TEXTS[:1])
    emb = ex.adapter.word_embeddings()
    eos = emb(torch.tensor([ex.tokenizer.eos_token_id]))[0]  # the module scales rows by √d
    assert not torch.allclose(eos, emb.weight[ex.tokenizer.eos_token_id])
    torch.testing.assert_close(batch.baseline[0, 1], eos)


def test_zero_baseline_warns_on_rmsnorm(toks):
    ex = Explainer(make_decoder("llama", vocab_size=len(toks["bos"])), toks["bos"], baseline="zero")
    with pytest.warns(UserWarning, match="RMSNorm"):
        batch = ex.prepare(TEXTS[:1])
    assert float(batch.baseline[0, 1:].abs().max()) == 0.0
    ex = Explainer(make_decoder("gpt2", vocab_size=len(toks["gpt"])), toks["gpt"], baseline="zero")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ex.prepare(TEXTS[:1])  # LayerNorm: no warning


def test_bad_decoder_inputs_are_one_clear_error(toks):
    ex = _explainer(toks, "gpt2")
    with pytest.raises(InputError, match=r"not a single token after the text: .*pieces \["):
        ex.explain("the keys to the cabinet", targets=("arexyz", "is"))
    with pytest.raises(InputError, match="has a \\[MASK\\].*causal LM"):
        ex.explain("the keys to the [MASK] cabinet", targets=("are", "is"))
    with pytest.raises(InputError, match="causal LM.*not a label"):
        ex.explain("the keys to the cabinet", label=1)
    with pytest.raises(InputError, match="two continuations"):
        ex.explain("the keys to the cabinet")
    with pytest.raises(InputError, match="equal"):
        ex.explain("the keys to the cabinet", targets=("are", "are"))


def test_texts_stay_within_a_sliding_window(toks):
    tok = toks["bos"]
    model = make_decoder("mistral", vocab_size=len(tok))
    model.config.sliding_window = 4
    ex = Explainer(model, tok)
    assert ex.adapter.max_length == 4
    with pytest.raises(InputError, match="at most 4"):
        ex.prepare(TEXTS[:1])


def test_encoder_with_a_causal_head_is_refused():
    from transformers import BertConfig, BertLMHeadModel

    model = BertLMHeadModel(BertConfig(vocab_size=10, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                                       intermediate_size=8, is_decoder=True))
    with pytest.raises(ModelError, match="no masked-LM or sequence-classification head"):
        adapter_for(model)
