"""Ablation and analysis on a causal decoder (issue #25): every method's paths respect
causality (positions never decrease, as GPR's), and run → ablate (mean, baseline,
interchange) → analyze --null norm-matched work end to end on a tiny random Llama."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from influence_patterns import Explainer, Query
from influence_patterns.analysis import methods as B
from influence_patterns.attribution.quadrature import make_quadrature
from influence_patterns.cli import app
from influence_patterns.runs import RunRecord
from influence_patterns.tasks import get_task

from decoder_models import CORPUS, make_decoder, make_tokenizer

runner = CliRunner()
TEXTS = ["the keys to the cabinet", "when mary and john went to the store, john gave a drink to",
         "the pilot that the guards like"]
TARGETS = [("are", "is"), ("mary", "john"), ("is", "are")]


@pytest.fixture(scope="module")
def decoder_ctx(tmp_path_factory):
    torch.set_num_threads(1)
    tok = make_tokenizer(tmp_path_factory.mktemp("tok"), bos=True)
    explainer = Explainer(make_decoder("llama", layers=3, vocab_size=len(tok), seed=2), tok, steps=6)
    rows = []
    for i, (text, targets) in enumerate(zip(TEXTS, TARGETS)):
        e = explainer.explain(text, targets=targets)
        rows.append({"index": i, **e.to_dict(), "roles": {}, "correct": e.correct})
    batch = explainer.prepare([Query(t, g) for t, g in zip(TEXTS, TARGETS)])
    quad = make_quadrature(6, explainer.config.quadrature, dtype=batch.x.dtype)
    ctx = B.MethodInput(explainer.adapter, batch, [RunRecord.from_dict(r) for r in rows], quad, explainer.qoi, seed=0)
    return explainer, ctx


@pytest.mark.parametrize("name", list(B.ABLATION_METHODS))
def test_every_method_is_causal_on_a_decoder(decoder_ctx, name):
    explainer, ctx = decoder_ctx
    assert explainer.adapter.causal
    paths = B.get_method(name).paths(ctx)
    for b, per_sentence in enumerate(paths):
        n, target = ctx.batch.lengths[b], int(ctx.batch.target_index[b])
        assert target == n - 1
        for p in per_sentence:
            assert p.positions[-1] == target and all(0 <= t < n for t in p.positions)
            # layer-conductance shares one path per sentence (it starts from no source)
            steps = p.positions[1:] if name == "layer-conductance" else p.positions
            assert list(steps) == sorted(steps), (name, p)
            for l, h in enumerate(p.heads):
                if h is None:
                    assert p.positions[l] == p.positions[l + 1]


def test_layer_baselines_choose_among_later_positions(decoder_ctx):
    """The causal choice is the best of the positions t ≥ t_{l-1} (on the model's scores),
    and on scores whose best position lies to the left it does not move left."""
    explainer, ctx = decoder_ctx
    b = 1  # the long IOI prefix
    n, target = ctx.batch.lengths[b], int(ctx.batch.target_index[b])
    sources = ctx.batch.sources[b]
    scores = B.source_scores(ctx, b, sources)
    for s, i in enumerate(sources):
        causal = B._select(scores, s, i, target, n, causal=True)
        sign = 1.0 if float(scores.h[-1][s, :n].sum()) >= 0 else -1.0
        for l in range(len(scores.h) - 1):
            prev, t = causal.positions[l], causal.positions[l + 1]
            best = max(range(prev, n), key=lambda u: (float(sign * scores.h[l][s, u]), -u))
            assert t == best >= prev
    # hand-made scores (1 source, 3 layers, 5 positions, 2 heads): layer 1 prefers
    # position 3, layer 2 position 0 (left of 3), the last layer sums positive
    h = [torch.tensor([[0.0, 0.1, 0.2, 0.9, 0.1]]), torch.tensor([[0.8, 0.0, 0.0, 0.1, 0.3]]),
         torch.tensor([[0.0, 0.0, 0.0, 0.0, 1.0]])]
    heads = [torch.rand(1, 5, 2) for _ in range(3)]
    skips = [torch.rand(1, 5) for _ in range(3)]
    hand = B.NodeScores(h, heads, skips)
    assert B._select(hand, 0, 1, 4, 5, causal=False).positions == (1, 3, 0, 4)
    assert B._select(hand, 0, 1, 4, 5, causal=True).positions == (1, 3, 4, 4)


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("llama-abl")
    corpus = CORPUS + [text + " " + w for t in ("ioi", "prefix/sva/simple") for i in get_task(t).load(8, 0)
                       for text in (i.text, i.counterfactual) for w in i.targets]
    tok = make_tokenizer(root / "tok", bos=True, corpus=corpus)
    make_decoder("llama", vocab_size=len(tok), dtype=torch.float32).save_pretrained(root)
    tok.save_pretrained(root)
    return root


@pytest.mark.parametrize("task", ["prefix/sva/simple", "ioi"])
def test_run_ablate_analyze_on_a_decoder(llama_dir, tmp_path, task):
    out = tmp_path / "run"
    res = runner.invoke(app, ["run", "--task", task, "--n", "4", "--model", str(llama_dir), "--out", str(out),
                              "--steps", "4", "--quiet"])
    assert res.exit_code == 0, res.output
    for ref in ("mean", "baseline"):
        extra = ["--interchange"] if ref == "mean" else []
        res = runner.invoke(app, ["ablate", str(out), "--reference", ref, "--quiet",
                                  "--json", str(tmp_path / f"{ref}.json"), *extra])
        assert res.exit_code == 0, res.output
        body = json.loads((tmp_path / f"{ref}.json").read_text())
        assert body["reference"] == ref and body["methods"]
        if ref == "mean":  # held-out generated prompts of the run's task, not its own instances
            assert body["reference_instances"]["source"].startswith("held-out")
        if extra:  # interchange measured on every instance (prefix and IOI counterfactuals)
            assert all(r["q_cf"] is not None for r in body["per_instance"])
    res = runner.invoke(app, ["analyze", str(out), "--null", "norm-matched", "--quiet",
                              "--json", str(tmp_path / "a.json")])
    assert res.exit_code == 0, res.output
    body = json.loads((tmp_path / "a.json").read_text())
    assert body
