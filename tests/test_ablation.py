"""Baselines registry and ablation: well-formed node paths for every method, the
DP / max-flow helpers on hand-made graphs, the interceptor against an independent
weight edit, remove / keep-only semantics, and the `ablate` command."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from influence_patterns import Explainer, Query
from influence_patterns.analysis import methods as B
from influence_patterns.analysis.ablation import ablated_qoi, ablation_masks, node_set
from influence_patterns.attribution.quadrature import make_quadrature
from influence_patterns.cli import app
from influence_patterns.runs import RunRecord

from conftest import make_model, run_args

runner = CliRunner()
TEXTS = ["the boys near the girl [MASK]", "the dog [MASK]", "the cats by the teacher [MASK] funny"]
TARGETS = [("laugh", "laughs"), ("runs", "run"), ("are", "is")]


@pytest.fixture(scope="module")
def small_run(tmp_path_factory, tokenizer):
    """A 3-layer, 2-head run of three sentences (float64) and its method input."""
    torch.set_num_threads(1)
    explainer = Explainer(make_model("mlm", layers=3, heads=2, seed=1), tokenizer, steps=6)
    out = tmp_path_factory.mktemp("abl") / "run"
    rows = []
    for i, (text, targets) in enumerate(zip(TEXTS, TARGETS)):
        e = explainer.explain(text, targets=targets)
        rows.append({"index": i, **e.to_dict(), "roles": {"subject": 2}, "correct": e.correct})
    batch = explainer.prepare([Query(t, g) for t, g in zip(TEXTS, TARGETS)])
    ctx = B.MethodInput(explainer.adapter, batch, [RunRecord.from_dict(r) for r in rows], make_quadrature(6, explainer.config.quadrature, dtype=batch.x.dtype), explainer.qoi, seed=0)
    return explainer, rows, ctx, out


@pytest.mark.parametrize("name", list(B.ABLATION_METHODS))
def test_every_method_gives_well_formed_paths(small_run, name):
    explainer, rows, ctx, _ = small_run
    L, H = explainer.adapter.num_layers, explainer.adapter.num_heads
    paths = B.get_method(name).paths(ctx)
    assert len(paths) == len(TEXTS)
    for b, per_sentence in enumerate(paths):
        n, target = ctx.batch.lengths[b], int(ctx.batch.target_index[b])
        assert [p.source for p in per_sentence] == ctx.batch.sources[b]
        for p in per_sentence:
            assert len(p.positions) == L + 1 and len(p.heads) == L
            assert p.positions[0] == p.source and p.positions[-1] == target
            assert all(0 <= t < n for t in p.positions)
            for l, h in enumerate(p.heads):
                if h is None:  # a skip only continues the same position
                    assert p.positions[l] == p.positions[l + 1]
                else:
                    assert 0 <= h < H


def test_pattern_method_reads_the_rows(small_run):
    _, rows, ctx, _ = small_run
    paths = B.get_method("pattern").paths(ctx)
    p = rows[0]["patterns"][0]
    assert paths[0][0].positions == tuple(p["positions"]) and paths[0][0].heads == tuple(p["heads"])


def test_random_is_seeded(small_run):
    _, _, ctx, _ = small_run
    m = B.get_method("random")
    assert m.paths(ctx) == m.paths(ctx)
    other = B.MethodInput(ctx.adapter, ctx.batch, ctx.rows, ctx.quad, ctx.qoi, seed=1)
    assert m.paths(other) != m.paths(ctx)


def test_registry_one_class_one_line(small_run):
    class Stay(B.Method):
        name = "test-stay"
        group = "control"

        def paths(self, ctx):
            L = ctx.num_layers
            return [[B.NodePath(i, (i,) * L + (int(ctx.batch.target_index[b]),), (None,) * (L - 1) + (0,))
                     for i in ctx.batch.sources[b]] for b in range(len(ctx.batch))]

    try:
        B.register_method(Stay)
        assert B.get_method("test-stay").paths(small_run[2])[0][0].heads[-1] == 0
    finally:
        B.ABLATION_METHODS.pop("test-stay", None)
    with pytest.raises(Exception, match="unknown ablation method"):
        B.get_method("test-stay")


def test_max_product_path():
    # layer 1: from 0 to 1 (0.9) or stay (0.1); layer 2: 1 -> 2 (0.5), 0 -> 2 (0.2)
    w1 = np.array([[0.1, 0, 0], [0.9, 0, 0], [0.0, 0, 0]])
    w2 = np.array([[0, 0, 0], [0, 0, 0], [0.2, 0.5, 0]])
    assert B.max_product_path([w1, w2], 0, 2, np.ones(3, bool)) == [0, 1, 2]
    w2[2, 1] = 0.05  # now 0.1*0.2 = 0.02 < 0.9*0.05 = 0.045: still via 1
    assert B.max_product_path([w1, w2], 0, 2, np.ones(3, bool)) == [0, 1, 2]
    w2[2, 1] = 0.01  # 0.009 < 0.02: stay, then jump
    assert B.max_product_path([w1, w2], 0, 2, np.ones(3, bool)) == [0, 0, 2]
    assert B.max_product_path([w1, np.zeros((3, 3))], 0, 2, np.ones(3, bool)) is None


def test_attention_flow_weights_by_hand():
    # Two routes 0 -> {0, 1} -> 1; capacities (query, key): the bottleneck is layer 2.
    w1 = np.array([[0.5, 0.0], [0.5, 0.0]])
    w2 = np.array([[0.0, 0.0], [0.2, 0.6]])
    flows = B.attention_flow_weights([w1, w2], 0, 1)
    # max flow = min(0.5, 0.2) + min(0.5, 0.6) = 0.7; route via 1 carries 0.5/0.7
    assert flows[1][1, 1] == pytest.approx(0.5 / 0.7, abs=1e-5)
    assert flows[1][1, 0] == pytest.approx(0.2 / 0.7, abs=1e-5)
    assert B.max_product_path(flows, 0, 1, np.ones(2, bool)) == [0, 1, 1]
    assert B.attention_flow_weights([w1, np.zeros((2, 2))], 0, 1) is None


def test_internal_influence_scores_decompose(small_run):
    """Σ_t score(h^l_t) = g(x_i) at every layer; heads + skip at t = score(h^l_t)."""
    _, rows, ctx, _ = small_run
    b, p = 0, rows[0]["patterns"][1]
    i = p["source_index"]
    tangent = torch.zeros_like(ctx.batch.x[[b]])
    tangent[0, i] = (ctx.batch.x - ctx.batch.baseline)[b, i]
    sc = B.conductance_scores(ctx, torch.tensor([b]), tangent)
    for l in range(ctx.num_layers):
        assert float(sc.h[l][0].sum()) == pytest.approx(p["g"], rel=1e-6, abs=1e-9)
        torch.testing.assert_close(sc.heads[l][0].sum(-1) + sc.skips[l][0], sc.h[l][0])


REFERENCE = Path(__file__).parent / "data" / "layer_baselines_reference.json"


def test_layer_baselines_match_their_pre_refactor_numbers(small_run):
    """Internal influence and layer conductance give the node sets and scores they gave
    with their own copy of the gradient code (tests/data/layer_baselines_reference.json,
    written by that code at commit 37eeb56 on this fixture) now that they run on the
    shared pass of ``attribution.gradients``."""
    _, _, ctx, _ = small_run
    ref = json.loads(REFERENCE.read_text())
    batch = ctx.batch
    for name in ("internal-influence", "layer-conductance"):
        got = [[{"source": p.source, "positions": list(p.positions), "heads": list(p.heads)} for p in ps]
               for ps in B.get_method(name).paths(ctx)]
        assert got == ref[name], name
    pairs = [tuple(p) for p in ref["internal"]["pairs"]]
    assert pairs == [(b, i) for b in range(len(batch)) for i in batch.sources[b]]
    sent, src = torch.tensor([b for b, _ in pairs]), torch.tensor([i for _, i in pairs])
    tangent = torch.zeros_like(batch.x[sent])
    tangent[torch.arange(len(pairs)), src] = (batch.x - batch.baseline)[sent, src]
    all_inputs = (batch.x - batch.baseline) * batch.attention_mask[..., None]
    for key, scores in (("internal", B.conductance_scores(ctx, sent, tangent)),
                        ("conductance", B.conductance_scores(ctx, torch.arange(len(batch)), all_inputs))):
        for kind, got in (("h", scores.h), ("heads", scores.heads), ("skips", scores.skips)):
            assert len(got) == len(ref[key][kind]) == ctx.num_layers
            for l, t in enumerate(got):
                torch.testing.assert_close(t, torch.tensor(ref[key][kind][l], dtype=t.dtype), rtol=1e-9, atol=1e-12)


def test_remove_head_everywhere_equals_zeroing_its_output_weights(small_run):
    """Independent check of the interceptor: zero head j's context at every position ==
    zero the W_O columns that read head j."""
    explainer, _, ctx, _ = small_run
    adapter, batch = explainer.adapter, ctx.batch
    n, layer, j = batch.x.shape[1], 2, 1
    sets = [{(layer, t, j) for t in range(n)} for _ in range(len(batch))]
    q_removed = ablated_qoi(ctx, sets, keep=False, reference="zero")
    dense = adapter.attention_output(adapter.layers()[layer - 1]).dense
    hd = adapter.hidden_size // adapter.num_heads
    saved = dense.weight.detach().clone()
    try:
        with torch.no_grad():
            dense.weight[:, j * hd : (j + 1) * hd] = 0
            logits = adapter.logits(batch.x, batch.attention_mask, batch.target_index)
        q_edit = explainer.qoi(logits, batch.classes).double()
    finally:
        with torch.no_grad():
            dense.weight.copy_(saved)
    torch.testing.assert_close(q_removed, q_edit)


def test_remove_nothing_and_keep_everything_change_nothing(small_run):
    explainer, _, ctx, _ = small_run
    batch = ctx.batch
    with torch.no_grad():
        q = explainer.qoi(explainer.adapter.logits(batch.x, batch.attention_mask, batch.target_index), batch.classes)
        q_ref = explainer.qoi(explainer.adapter.logits(batch.baseline, batch.attention_mask, batch.target_index),
                              batch.classes)
    empty = [set() for _ in range(len(batch))]
    for reference in ("baseline", "zero"):
        torch.testing.assert_close(ablated_qoi(ctx, empty, keep=False, reference=reference), q.double())
    # keeping nothing is the reference input's pass
    torch.testing.assert_close(ablated_qoi(ctx, empty, keep=True, reference="baseline"), q_ref.double())
    L, H, n = ctx.num_layers, ctx.adapter.num_heads, batch.x.shape[1]
    everything = [{(l, t, j) for l in range(1, L + 1) for t in range(n) for j in [None, *range(H)]}
                  for _ in range(len(batch))]
    torch.testing.assert_close(ablated_qoi(ctx, everything, keep=True, reference="baseline"), q.double())
    torch.testing.assert_close(ablated_qoi(ctx, everything, keep=False, reference="baseline"), q_ref.double())
    # removing every node at the target of the last layer changes the QoI
    cut = [{(L, int(batch.target_index[b]), j) for j in [None, *range(H)]} for b in range(len(batch))]
    assert not torch.allclose(ablated_qoi(ctx, cut, keep=False), q.double())


def test_masks_remove_and_keep_only():
    nodes = {(1, 2, None), (1, 2, 0), (2, 3, 1)}
    heads, skips = ablation_masks([nodes], L=2, n=4, H=2, keep=False)
    assert not skips[0, 0, 2] and not heads[0, 0, 2, 0] and heads[0, 0, 2, 1]
    assert not heads[1, 0, 3, 1] and skips[1, 0, 3]
    assert heads.sum() == 2 * 4 * 2 - 2 and skips.sum() == 2 * 4 - 1
    heads, skips = ablation_masks([nodes], L=2, n=4, H=2, keep=True)
    # keep only is global: the real value stays at the three nodes and nowhere else
    assert skips[0, 0, 2] and heads[0, 0, 2].tolist() == [True, False]
    assert not skips[1, 0, 3] and heads[1, 0, 3].tolist() == [False, True]
    assert heads.sum() == 2 and skips.sum() == 1


def test_node_set_union_and_role_filter():
    a = B.NodePath(1, (1, 1, 4), (None, 0))
    b = B.NodePath(2, (2, 4, 4), (1, 0))
    assert node_set([a, b]) == {(1, 1, None), (2, 4, 0), (1, 4, 1)}
    assert node_set([a, b], {2}) == {(1, 4, 1), (2, 4, 0)}


def test_ablate_command(checkpoint, data_file, tmp_path):  # noqa: F811
    out = tmp_path / "run"
    assert runner.invoke(app, run_args(checkpoint, data_file, out, "--batch-size", "5", n=5)).exit_code == 0
    js = tmp_path / "abl.json"
    result = runner.invoke(app, ["ablate", str(out), "--json", str(js)])
    assert result.exit_code == 0, result.output
    data = json.loads(js.read_text())
    names = [m["name"] for m in data["methods"]]
    assert names == list(B.ABLATION_METHODS)
    # the contract of issue 15
    for key in ("run", "task", "instances", "sources", "reference", "removal", "bootstrap", "methods",
                "comparisons", "per_instance"):
        assert key in data
    assert data["bootstrap"]["resamples"] >= 1000 and data["reference"] == "mean" and data["replace"] == "as"
    assert data["removal"] == "reference"
    for m in data["methods"]:
        assert {"name", "group", "nodes"} <= set(m)
        for key in ("accuracy_retained", "qoi_retained", "comprehensiveness", "accuracy_after_removal"):
            assert set(m[key]) == {"value", "ci"} and len(m[key]["ci"]) == 2
        assert 0 <= m["accuracy_after_removal"]["value"] <= 1
    comps = data["comparisons"]
    assert {c["b"] for c in comps} == set(names) - {"pattern"}
    for c in comps:
        assert c["a"] == "pattern" and c["verdict"] == "too few instances"  # n = 5 < 30
        assert set(c["difference"]) == {"value", "ci"}
    assert len(data["per_instance"]) == 5 * len(names)
    assert {"index", "method", "q", "q_kept", "q_removed"} <= set(data["per_instance"][0])
    assert (out / "ablation.json").is_file()  # for `report`
    # comprehensiveness is the mean QoI drop: consistent with the other fields
    pat = data["methods"][0]
    assert pat["comprehensiveness"]["value"] == pytest.approx(data["qoi"] - pat["qoi_after_removal"])

    result = runner.invoke(app, ["ablate", str(out), "--methods", "pattern,random", "--sources", "subject",
                                 "--json", str(js)])
    assert result.exit_code == 0, result.output
    data = json.loads(js.read_text())
    assert [m["name"] for m in data["methods"]] == ["pattern", "random"] and data["sources"] == "subject"
    assert all(m["nodes"] <= 2 for m in data["methods"])  # one path of a 2-layer model
    assert (out / "ablation-subject.json").is_file()
    assert json.loads((out / "ablation.json").read_text())["sources"] == "all"  # not overwritten

    result = runner.invoke(app, ["ablate", str(out), "--methods", "nope"])
    assert result.exit_code == 2 and "unknown ablation method" in result.output
    result = runner.invoke(app, ["ablate", str(out), "--sources", "nobody"])
    assert result.exit_code == 2 and "role" in result.output


def test_report_uses_ablation(checkpoint, data_file, tmp_path):  # noqa: F811
    out = tmp_path / "run"
    assert runner.invoke(app, run_args(checkpoint, data_file, out, "--batch-size", "4", n=4)).exit_code == 0
    md = tmp_path / "r.md"
    result = runner.invoke(app, ["report", str(out), "--out", str(md), "--ablate"])
    assert result.exit_code == 0, result.output
    text = md.read_text()
    assert "| pattern | pattern |" in text and "attention-flow" in text and "random-matched" in text
    assert "accuracy retained" in text and "subject token only" not in text
    assert "too few instances" in text  # n = 4
    # a subject-only ablation adds its own table and comparison
    assert runner.invoke(app, ["ablate", str(out), "--sources", "subject"]).exit_code == 0
    result = runner.invoke(app, ["report", str(out), "--out", str(md)])
    assert result.exit_code == 0, result.output
    assert "subject token only" in result.output
    text = md.read_text()
    assert "Node set: the subject token only." in text and text.count("| pattern | pattern |") == 2


def test_report_pools_two_ablated_runs_and_shows_each_task(checkpoint, data_file, tmp_path):  # noqa: F811
    dirs = []
    for name, extra in (("a", []), ("b", ["--seed", "1"])):
        out = tmp_path / name
        assert runner.invoke(app, run_args(checkpoint, data_file, out, *extra, n=3)).exit_code == 0
        assert runner.invoke(app, ["ablate", str(out), "--methods", "pattern,stay,rollout"]).exit_code == 0
        dirs.append(out)
    md = tmp_path / "r.md"
    result = runner.invoke(app, ["report", *map(str, dirs), "--out", str(md)])
    assert result.exit_code == 0, result.output
    text = md.read_text()
    assert "Pooled over 2 run(s), node set: every source token (6 instances)" in text
    assert "Per task: patterns against the best method of each group." in text
    per = [json.loads((d / "ablation.json").read_text()) for d in dirs]
    stay = [r for a in per for r in a["per_instance"] if r["method"] == "stay"]
    want = np.mean([r["q"] - r["q_removed"] for r in stay])  # pooled comprehensiveness (QoI drop)
    row = next(line for line in text.splitlines() if line.startswith("| stay | control | "))
    assert row.split("|")[-2].strip().startswith(f"{want:.2f} [")  # the last column: QoI drop


def test_batches_by_length_change_no_number_and_keep_the_run_order(small_run):
    """ablate_rows batches instances of similar length (padding is costly for the IG
    baselines); the per-instance results must not depend on the batching and come
    back in the run's order."""
    from influence_patterns.analysis.ablation import AblationOptions, ablate_rows

    explainer, rows, _, _ = small_run
    methods = ("pattern", "internal-influence", "layer-conductance", "random")
    one = ablate_rows(explainer, rows, AblationOptions(methods=methods, batch_size=1, resamples=50, reference="baseline"), progress=False)
    two = ablate_rows(explainer, rows, AblationOptions(methods=methods, batch_size=2, resamples=50, reference="baseline"), progress=False)
    assert [r["index"] for r in two["per_instance"]] == [i for i in range(len(rows)) for _ in methods]
    # lengths 7, 4, 8 tokens: batched by length the run order is not the batch order
    assert sorted(range(len(rows)), key=lambda i: len(rows[i]["tokens"])) != list(range(len(rows)))
    for a, b in zip(one["per_instance"], two["per_instance"]):
        assert (a["index"], a["method"], a["nodes"]) == (b["index"], b["method"], b["nodes"])
        for k in ("q", "q_kept", "q_removed"):
            assert a[k] == pytest.approx(b[k], rel=1e-9, abs=1e-12)
