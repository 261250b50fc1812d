"""The ablation protocols of issue 20 against independent implementations written here
with plain forward pre-hooks on the Hugging Face BertForMaskedLM (input ids, not the
project's Interceptor, Batch or node recorder):

- the ``mean`` reference: the per-position mean of the node values of the OTHER
  instances of the same length (leave one out) or of given held-out inputs;
- ``--interchange``: the kept nodes' values taken from the counterfactual's pass
  (``q_iia``) and the complementary patch (``q_iia_complement``);
- ``--replace as+h``: the layer outputs h^l at the positions no node uses replaced too;

and the contract's JSON keys, the bad inputs (one line, exit 2, nothing written), the
counterfactuals of the templates, the node-set cache, the norm-matched null, the
reframed skip statistics and the stratified tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from influence_patterns import Explainer, Query
from influence_patterns.analysis import bootstrap as bs
from influence_patterns.analysis.ablation import AblationOptions, ablate_rows
from influence_patterns.cli import app
from influence_patterns.errors import InputError

from conftest import SINGULAR, make_model, run_args

runner = CliRunner()

# three sentences of 8 word pieces and two of 5, each with its counterfactual (subject's
# number flipped, same length) and targets (good, bad) of the real sentence
ROWS = [
    ("the boys near the girl [MASK]", "the boy near the girl [MASK]", ("laugh", "laughs")),
    ("the dog near the cats [MASK]", "the dogs near the cats [MASK]", ("runs", "run")),
    ("the cats by the teacher [MASK]", "the cat by the teacher [MASK]", ("are", "is")),
    ("the dog [MASK]", "the dogs [MASK]", ("runs", "run")),
    ("the girls [MASK]", "the girl [MASK]", ("laugh", "laughs")),
]


# --- the independent implementation -----------------------------------------------------


def _outputs(model):
    return [layer.attention.output for layer in model.bert.encoder.layer]


def record(model, tokenizer, text):
    """Per layer l = 1..L: (a^l, s^l) of ``text`` from pre-hooks on attention.output,
    and h^l from forward hooks on the layers, each (n, ·)."""
    ids = tokenizer(text, return_tensors="pt")["input_ids"]
    att, hs = {}, {}

    def pre(l):
        def hook(module, args):
            att[l] = (args[0][0].detach().clone(), args[1][0].detach().clone())
        return hook

    def post(l):
        def hook(module, args, output):
            out = output[0] if isinstance(output, tuple) else output
            hs[l] = out[0].detach().clone()
        return hook

    handles = [o.register_forward_pre_hook(pre(l)) for l, o in enumerate(_outputs(model), start=1)]
    handles += [layer.register_forward_hook(post(l)) for l, layer in enumerate(model.bert.encoder.layer, start=1)]
    try:
        with torch.no_grad():
            model(input_ids=ids)
    finally:
        for h in handles:
            h.remove()
    return att, hs


def patched_qoi(model, tokenizer, text, targets, ref_att, replace_node, ref_h=None, keep_h=None):
    """QoI of ``text`` where every (l, t, j) with ``replace_node(l, t, j)`` takes its value
    from ``ref_att`` (and, with ``ref_h``, h^l_t for (l, t) not in ``keep_h``)."""
    enc = tokenizer(text, return_tensors="pt")
    ids = enc["input_ids"]
    n = ids.shape[1]
    target = int((ids[0] == tokenizer.mask_token_id).nonzero()[0, 0])
    good, bad = tokenizer.convert_tokens_to_ids(list(targets))
    H = model.config.num_attention_heads
    hd = model.config.hidden_size // H

    def pre(l):
        def hook(module, args):
            context, skip = args[0].clone(), args[1].clone()
            ref_c, ref_s = ref_att[l]
            for t in range(n):
                if replace_node(l, t, None):
                    skip[0, t] = ref_s[t]
                for j in range(H):
                    if replace_node(l, t, j):
                        context[0, t, j * hd : (j + 1) * hd] = ref_c[t, j * hd : (j + 1) * hd]
            return (context, skip) + tuple(args[2:])
        return hook

    def post(l):
        def hook(module, args, output):
            out = output[0] if isinstance(output, tuple) else output
            out = out.clone()
            for t in range(n):
                if (l, t) not in keep_h:
                    out[0, t] = ref_h[l][t]
            return (out,) + tuple(output[1:]) if isinstance(output, tuple) else out
        return hook

    handles = [o.register_forward_pre_hook(pre(l)) for l, o in enumerate(_outputs(model), start=1)]
    if ref_h is not None:
        handles += [layer.register_forward_hook(post(l)) for l, layer in enumerate(model.bert.encoder.layer, start=1)]
    try:
        with torch.no_grad():
            logits = model(input_ids=ids).logits[0, target]
    finally:
        for h in handles:
            h.remove()
    return float(logits[good] - logits[bad])


def _mean(recorded):
    """Per layer the mean of several (a^l, s^l) records / h^l records."""
    first = recorded[0]
    if isinstance(first[1], tuple):
        return {l: (torch.stack([r[l][0] for r in recorded]).mean(0), torch.stack([r[l][1] for r in recorded]).mean(0))
                for l in first}
    return {l: torch.stack([r[l] for r in recorded]).mean(0) for l in first}


def _nodes(row):
    return {(l, p["positions"][l], h) for p in row["patterns"] for l, h in enumerate(p["heads"], start=1)}


@pytest.fixture(scope="module")
def rows(tokenizer):
    torch.set_num_threads(1)
    model = make_model("mlm", layers=3, heads=2, seed=4)
    explainer = Explainer(model, tokenizer, steps=6)
    out = []
    for i, (text, cf, targets) in enumerate(ROWS):
        e = explainer.explain(text, targets=targets)
        out.append({"index": i, **e.to_dict(), "roles": {"subject": 2}, "correct": e.correct, "task": "t",
                    "counterfactual": cf})
    return explainer, out


# --- the mean reference -----------------------------------------------------------------


@pytest.mark.parametrize("replace", ["as", "as+h"])
def test_mean_reference_leave_one_out_matches_a_direct_computation(rows, tokenizer, replace):
    explainer, data = rows
    model = explainer.model
    result = ablate_rows(explainer, data, AblationOptions(methods=("pattern",), reference="mean", replace=replace,
                                                          resamples=50), progress=False)
    assert result["reference"] == "mean" and result["replace"] == replace
    ref = result["reference_instances"]
    assert ref["per_length"] == {"5": 1, "8": 2} and "left out" in ref["source"]
    per = {r["index"]: r for r in result["per_instance"]}
    recorded = [record(model, tokenizer, text) for text, _, _ in ROWS]
    lengths = [len(tokenizer(text)["input_ids"]) for text, _, _ in ROWS]
    for i, (text, _, targets) in enumerate(ROWS):
        others = [k for k in range(len(ROWS)) if k != i and lengths[k] == lengths[i]]
        mean_att = _mean([recorded[k][0] for k in others])
        mean_h = _mean([recorded[k][1] for k in others]) if replace == "as+h" else None
        nodes = _nodes(data[i])
        keep_h = {(l, t) for l, t, _ in nodes}
        want = patched_qoi(model, tokenizer, text, targets, mean_att, lambda l, t, j: (l, t, j) not in nodes,
                           mean_h, keep_h)
        assert per[i]["q_kept"] == pytest.approx(want, rel=1e-5, abs=1e-9)
        floor = patched_qoi(model, tokenizer, text, targets, mean_att, lambda l, t, j: True, mean_h, set())
        assert per[i]["q_floor"] == pytest.approx(floor, rel=1e-5, abs=1e-9)
        removed = patched_qoi(model, tokenizer, text, targets, mean_att, lambda l, t, j: (l, t, j) in nodes)
        assert per[i]["q_removed"] == pytest.approx(removed, rel=1e-5, abs=1e-9)
    # the mean differs from the baseline protocol: the reference is a real choice
    base = ablate_rows(explainer, data, AblationOptions(methods=("pattern",), reference="baseline", resamples=50),
                       progress=False)
    assert [r["q_kept"] for r in base["per_instance"]] != pytest.approx([r["q_kept"] for r in result["per_instance"]])


def test_mean_reference_from_held_out_inputs_matches_a_direct_computation(rows, tokenizer):
    explainer, data = rows
    model = explainer.model
    heldout = ["the girl near the boys [MASK]", "the cat by the dogs [MASK]", "the teachers by the dog [MASK]",
               "the cat [MASK]", "the boy [MASK]", "the boys like the girl [MASK] funny"]
    queries = [Query(t, ("is", "are")) for t in heldout]
    result = ablate_rows(explainer, data, AblationOptions(methods=("stay",), resamples=50),
                         heldout=("test inputs", queries), progress=False)
    assert result["reference_instances"]["per_length"] == {"5": 2, "8": 3}
    assert result["reference_instances"]["source"] == "test inputs"
    by_len = {}
    for t in heldout:
        by_len.setdefault(len(tokenizer(t)["input_ids"]), []).append(record(model, tokenizer, t)[0])
    for r in result["per_instance"]:
        text, _, targets = ROWS[r["index"]]
        mean_att = _mean(by_len[len(tokenizer(text)["input_ids"])])
        floor = patched_qoi(model, tokenizer, text, targets, mean_att, lambda l, t, j: True)
        assert r["q_floor"] == pytest.approx(floor, rel=1e-5, abs=1e-9)


def test_mean_reference_refuses_a_length_without_other_instances(rows):
    explainer, data = rows
    with pytest.raises(InputError, match="reference mean: no other instance of length 8"):
        ablate_rows(explainer, data[:1] + data[3:], AblationOptions(methods=("pattern",)), progress=False)


# --- interchange ----------------------------------------------------------------------------


def test_interchange_matches_an_independent_hook_implementation(rows, tokenizer):
    explainer, data = rows
    model = explainer.model
    result = ablate_rows(explainer, data, AblationOptions(methods=("pattern", "random"), reference="baseline",
                                                          interchange=True, resamples=50), progress=False)
    assert result["interchange"]["instances"] == len(ROWS) and result["interchange"]["excluded"] == 0
    for r in result["per_instance"]:
        text, cf, targets = ROWS[r["index"]]
        cf_att, _ = record(model, tokenizer, cf)
        row = data[r["index"]]
        if r["method"] == "pattern":
            nodes = _nodes(row)
        else:  # the random control's node set, as ablate counted it
            nodes = None
        if nodes is not None:
            want = patched_qoi(model, tokenizer, text, targets, cf_att, lambda l, t, j: (l, t, j) in nodes)
            assert r["q_iia"] == pytest.approx(want, rel=1e-5, abs=1e-9)
            want_c = patched_qoi(model, tokenizer, text, targets, cf_att, lambda l, t, j: (l, t, j) not in nodes)
            assert r["q_iia_complement"] == pytest.approx(want_c, rel=1e-5, abs=1e-9)
        # everything patched is the counterfactual's own pass, read with the real targets
        want_cf = patched_qoi(model, tokenizer, text, targets, cf_att, lambda l, t, j: True)
        assert r["q_cf"] == pytest.approx(want_cf, rel=1e-5, abs=1e-9)
    for m in result["methods"]:
        share = np.mean([r["q_iia"] < 0 for r in result["per_instance"] if r["method"] == m["name"]])
        assert m["iia"]["value"] == pytest.approx(share) and len(m["iia"]["ci"]) == 2
    assert {c["metric"] for c in result["comparisons"]} >= {"iia", "iia_complement"}


def test_interchange_leaves_out_a_counterfactual_of_another_length(rows):
    explainer, data = rows
    changed = [dict(r) for r in data]
    changed[0]["counterfactual"] = "the boys near the girl [MASK] funny"
    result = ablate_rows(explainer, changed, AblationOptions(methods=("pattern",), reference="zero", interchange=True,
                                                             resamples=50), progress=False)
    assert result["interchange"] == {**result["interchange"], "instances": 4, "excluded": 1}
    first = next(r for r in result["per_instance"] if r["index"] == 0)
    assert first["q_iia"] is None


def test_interchange_refuses_rows_without_counterfactuals(rows):
    explainer, data = rows
    bare = [{k: v for k, v in r.items() if k != "counterfactual"} for r in data]
    with pytest.raises(InputError, match="no counterfactual for instance 0"):
        ablate_rows(explainer, bare, AblationOptions(methods=("pattern",), reference="zero", interchange=True))


# --- the command: contract and bad inputs ------------------------------------------------


def test_ablate_contract_keys(checkpoint, data_file, tmp_path):
    out = tmp_path / "run"
    assert runner.invoke(app, run_args(checkpoint, data_file, out, n=6)).exit_code == 0
    js = tmp_path / "a.json"
    # the data file has no counterfactuals: refused before anything is written
    res = runner.invoke(app, ["ablate", str(out), "--interchange", "--json", str(js)])
    assert res.exit_code == 2 and "no counterfactual" in res.output and len(res.output.strip().splitlines()) == 1
    assert not js.exists() and not list(out.glob("ablation*")) and not list(out.glob("nodes-*"))
    for ref, rep in (("mean", "as"), ("baseline", "as"), ("zero", "as+h")):
        res = runner.invoke(app, ["ablate", str(out), "--methods", "pattern,stay", "--reference", ref,
                                  "--replace", rep, "--json", str(js), "--resamples", "50", "-q"])
        assert res.exit_code == 0, res.output
        data = json.loads(js.read_text())
        assert list(data)[:2] == ["reference", "replace"] and (data["reference"], data["replace"]) == (ref, rep)
        for m in data["methods"]:
            for key in ("fidelity", "accuracy_recovered", "qoi_recovered"):
                assert set(m[key]) >= {"value", "ci"} and len(m[key]["ci"]) == 2
    assert (out / "ablation.json").is_file() and (out / "ablation-baseline.json").is_file()
    assert (out / "ablation-zero-as+h.json").is_file()
    assert (out / "nodes-pattern.json").is_file() and (out / "nodes-stay.json").is_file()
    for bad, msg in ((["--reference", "median"], "unknown reference"), (["--replace", "h"], "unknown --replace")):
        res = runner.invoke(app, ["ablate", str(out), *bad, "--json", str(tmp_path / "no.json")])
        assert res.exit_code == 2 and msg in res.output and "Traceback" not in res.output
        assert not (tmp_path / "no.json").exists()


def test_template_runs_find_counterfactuals_and_held_out_inputs():
    """Runs of template tasks written before counterfactuals were stored get them from
    the template again (matched by text); held-out inputs are generated with another
    seed and never repeat an instance of the run."""
    from influence_patterns.analysis.ablation import HELDOUT_SEED, counterfactuals, heldout_queries
    from influence_patterns.runs import RunRecord
    from influence_patterns.tasks.templates import generate

    insts = generate("sva/prep", 6, 2)
    recs = [RunRecord.from_dict(_line(i, x.text)) for i, x in enumerate(insts)]
    got = counterfactuals(recs, task="sva/prep", n=6, seed=2, generated=True)
    assert got == {i: x.counterfactual for i, x in enumerate(insts)}
    with pytest.raises(InputError, match="no counterfactual"):
        counterfactuals(recs, task="sva/prep", n=6, seed=2, generated=False)
    source, queries = heldout_queries("sva/prep", 2, "mlm")
    assert str(HELDOUT_SEED + 2) in source and len(queries) > 100
    assert not {q.text for q in queries} & {x.text for x in insts}
    assert heldout_queries("sva/prep", 2, "classification") is None


def test_ablate_interchange_on_a_data_file_with_counterfactuals(checkpoint, tmp_path):
    """`--data` rows give their counterfactual; the run stores it; `ablate --interchange`
    writes `iia` for every method (the contract)."""
    plural = {v: k for k, v in SINGULAR.items()}
    data = tmp_path / "cf.jsonl"
    with open(data, "w") as f:
        for k in range(6):
            s, a = sorted(SINGULAR)[k % 5], sorted(SINGULAR)[(k + 2) % 5]
            subj = SINGULAR[s] if k % 2 else s
            flipped = s if k % 2 else SINGULAR[s]
            good, bad = ("laugh", "laughs") if k % 2 else ("laughs", "laugh")
            f.write(json.dumps({"text": f"the {subj} near the {a} [MASK]", "targets": [good, bad],
                                "task": "sva/prep", "roles": {"subject": 1, "attractor": 4},
                                "counterfactual": f"the {flipped} near the {a} [MASK]"}) + "\n")
    assert plural  # the tiny vocabulary has both forms
    out = tmp_path / "run"
    res = runner.invoke(app, ["run", "--task", "sva/prep", "--data", str(data), "--model", str(checkpoint), "--out",
                              str(out), "--steps", "4", "--quiet"])
    assert res.exit_code == 0, res.output
    first = json.loads((out / "results.jsonl").read_text().splitlines()[0])
    assert first["counterfactual"].startswith("the ")
    js = tmp_path / "a.json"
    res = runner.invoke(app, ["ablate", str(out), "--methods", "pattern,stay,random", "--interchange", "--json",
                              str(js), "-q", "--resamples", "50"])
    assert res.exit_code == 0, res.output
    result = json.loads(js.read_text())
    assert result["interchange"]["instances"] == 6 and result["reference"] == "mean"
    for m in result["methods"]:
        assert set(m["iia"]) >= {"value", "ci"} and 0 <= m["iia"]["value"] <= 1 and len(m["iia"]["ci"]) == 2


def test_ablate_reuses_cached_node_sets(checkpoint, data_file, tmp_path, monkeypatch):
    from influence_patterns.analysis import methods as B

    out = tmp_path / "run"
    assert runner.invoke(app, run_args(checkpoint, data_file, out, n=6)).exit_code == 0
    first = runner.invoke(app, ["ablate", str(out), "--methods", "pattern,rollout", "--reference", "baseline",
                                "--json", str(tmp_path / "1.json"), "-q", "--resamples", "20"])
    assert first.exit_code == 0, first.output

    def boom(self, ctx):
        raise AssertionError("node sets recomputed")

    monkeypatch.setattr(B.Rollout, "paths", boom)
    again = runner.invoke(app, ["ablate", str(out), "--methods", "pattern,rollout", "--reference", "zero",
                                "--json", str(tmp_path / "2.json"), "-q", "--resamples", "20"])
    assert again.exit_code == 0, again.output
    a, b = (json.loads((tmp_path / f).read_text()) for f in ("1.json", "2.json"))
    assert [m["nodes"] for m in a["methods"]] == [m["nodes"] for m in b["methods"]]


# --- templates: counterfactuals ----------------------------------------------------------


def test_template_counterfactuals_flip_the_answer_and_keep_the_rest():
    from influence_patterns.tasks.templates import TEMPLATE_TASKS, generate

    for task in TEMPLATE_TASKS:
        for inst in generate(task, 8, 3):
            if task == "sva/conjoined":  # always plural: flipping a number does not flip it
                assert inst.counterfactual is None
                continue
            cf = inst.counterfactual.split()
            words = inst.text.split()
            assert len(cf) == len(words) and cf[inst.roles["subject"]] != words[inst.roles["subject"]]
            assert cf[inst.roles["verb" if "verb" in inst.roles else "reflexive"]] == "[MASK]"
            if "attractor" in inst.roles:
                assert cf[inst.roles["attractor"]] == words[inst.roles["attractor"]]
    # adding the counterfactuals changed no instance
    a, b = generate("sva/prep", 20, 0), generate("sva/prep", 5, 0)
    assert [i.text for i in a[:5]] == [i.text for i in b]


# --- analyze: the null and the reframed statistics ----------------------------------------


def test_norm_matched_copy_matches_each_tensors_moments_and_is_seeded():
    from influence_patterns.analysis.null import norm_matched_copy

    model = make_model("mlm", layers=2, heads=2, hidden=32, seed=0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    a, b, c = norm_matched_copy(model, 0), norm_matched_copy(model, 0), norm_matched_copy(model, 1)
    for (name, p), q in zip(model.named_parameters(), a.parameters()):
        p, q = p.detach(), q.detach()
        if p.numel() >= 100:
            assert float(q.mean()) == pytest.approx(float(p.mean()), abs=0.25 * float(p.std()) + 1e-6)
            assert float(q.std()) == pytest.approx(float(p.std()), rel=0.25)
            assert not torch.equal(p, q)
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))
    assert not all(torch.equal(x, y) for x, y in zip(a.parameters(), c.parameters()))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def _line(index, text="a b c", patterns=(), num_layers=1, task="t"):
    """A minimal results.jsonl line."""
    return {"index": index, "model": "m", "text": text, "tokens": ["[CLS]", "a", "[SEP]"], "target_index": 2,
            "num_layers": num_layers, "num_heads": 2, "steps": 4, "baseline": "mask",
            "qoi": {"name": "agreement", "value": 1.0, "baseline_value": 0.0}, "patterns": list(patterns),
            "task": task}


def _record(positions, heads, influence=1.0, index=0, task="t"):
    from influence_patterns.runs import RunRecord

    pattern = {"source_index": positions[0], "source_token": "x", "sign": 1, "positions": list(positions),
               "heads": list(heads), "influence_token": influence, "influence_head": influence, "g": influence}
    return RunRecord.from_dict(_line(index, patterns=[pattern], num_layers=len(heads), task=task))


def test_reframed_skip_statistics_by_hand():
    from influence_patterns.analysis.skip import reframed_estimates

    # pattern 1: stays (skip), stays (head 0), moves (head 1); pattern 2: stays (skip) x2, moves (head 0)
    recs = [_record((1, 1, 1, 2), (None, 0, 1), influence=1.0, index=0),
            _record((0, 0, 0, 2), (None, None, 0), influence=3.0, index=1)]
    est = reframed_estimates(recs, num_heads=2, idx=bs.resample_indices(2, 50, 0))
    assert est["heads_per_pattern"]["value"] == pytest.approx(1.5)  # (2 + 1) / 2
    s = est["skip_when_staying"]
    assert s["value"] == pytest.approx(3 / 4) and s["uniform"] == pytest.approx(1 / 3) and s["steps"] == 4
    assert s["weighted"]["value"] == pytest.approx((1 + 3 * 2) / (1 * 2 + 3 * 2))
    assert len(s["ci"]) == 2


def test_stratified_resampling_stays_within_strata():
    strata = ["a"] * 5 + ["b"] * 3
    idx = bs.resample_indices_stratified(strata, 200, 0)
    assert idx.shape == (200, 8)
    assert (idx[:, :5] < 5).all() and (idx[:, 5:] >= 5).all()
    assert (bs.resample_indices_stratified(["a"] * 4, 10, 1) == bs.resample_indices(4, 10, 1)).all()


def test_instance_level_test_is_within_tasks():
    """Two tasks: one easy (high QoI, mostly top patterns), one hard. Pooled, top
    instances look better; within each task top and rest are the same: the stratified
    test must not find a difference."""
    from influence_patterns.analysis.correlation import instance_level

    rng = np.random.default_rng(0)
    recs, top, strata = [], [], []
    for task, q0, share in (("easy", 5.0, 0.9), ("hard", 0.0, 0.2)):
        for i in range(60):
            recs.append(type("R", (), {"q": q0 + rng.normal(0, 1)})())
            top.append(i < 60 * share)
            strata.append(task)
    out = instance_level(recs, top, 500, 0, strata)
    assert out["pooled"]["qoi_difference"] > 2 and out["pooled"]["p_value"] < 1e-6
    lo, hi = out["qoi_difference"]["ci"]
    assert lo < 0 < hi and out["p_value"] > 0.05 and out["informative_strata"] == 2


def test_analyze_norm_matched_contract_and_unknown_null(checkpoint, data_file, tmp_path):
    out = tmp_path / "run"
    assert runner.invoke(app, run_args(checkpoint, data_file, out, n=4)).exit_code == 0
    js = tmp_path / "a.json"
    res = runner.invoke(app, ["analyze", str(out), "--null", "norm-matched", "--json", str(js), "-q",
                              "--resamples", "50"])
    assert res.exit_code == 0, res.output
    run = json.loads(js.read_text())["runs"][0]
    assert set(run["heads_per_pattern"]) >= {"value", "ci"}
    assert set(run["skip_when_staying"]) >= {"value", "ci", "uniform"}
    assert run["null"]["kind"] == "norm-matched" and "warning" not in run["null"]
    assert set(run["null"]["skip_when_staying"]) >= {"value", "ci", "uniform"}
    norms = run["null"]["head_norm"]
    assert norms["model"]["mean"] > 0 and norms["null"]["mean"] > 0
    assert len(norms["model"]["per_layer_head"]) == 2 and len(norms["model"]["per_layer_head"][0]) == 2
    assert (out / "null-norm-matched-seed0.json").is_file()
    res = runner.invoke(app, ["analyze", str(out), "--null", "random-init", "--json", str(js), "-q",
                              "--resamples", "50"])
    assert res.exit_code == 0 and "nearly silent" in res.output
    assert "nearly silent" in json.loads(js.read_text())["runs"][0]["null"]["warning"]
    js2 = tmp_path / "b.json"
    res = runner.invoke(app, ["analyze", str(out), "--null", "shuffled", "--json", str(js2)])
    assert res.exit_code == 2 and "unknown null 'shuffled'" in res.output and not js2.exists()
    assert len(res.output.strip().splitlines()) == 1


def test_node_sets_are_cached_as_they_go_and_resume(checkpoint, data_file, tmp_path, monkeypatch):
    """``DIR/nodes-<method>.json`` grows after every batch; a file holding only some
    instances (an interrupted ablate) is completed by computing the missing batch alone,
    and the result is the one of an uninterrupted run."""
    from influence_patterns.analysis import methods as B

    out = tmp_path / "run"
    assert runner.invoke(app, run_args(checkpoint, data_file, out, n=6)).exit_code == 0
    args = ["ablate", str(out), "--methods", "stay,random", "--batch-size", "2", "--reference", "baseline",
            "--resamples", "20", "-q", "--json", str(tmp_path / "a.json")]
    assert runner.invoke(app, args).exit_code == 0
    whole = json.loads((out / "nodes-stay.json").read_text())
    assert len(whole["paths"]) == 6
    first = json.loads((tmp_path / "a.json").read_text())["per_instance"]
    cut = dict(whole, paths=dict(sorted(whole["paths"].items())[:4]))  # the last batch was never written
    (out / "nodes-stay.json").write_text(json.dumps(cut))
    calls = []
    real = B.Stay.paths
    monkeypatch.setattr(B.Stay, "paths", lambda self, ctx: calls.append(len(ctx.rows)) or real(self, ctx))
    assert runner.invoke(app, args).exit_code == 0
    assert calls == [2]  # one batch of two instances computed again, the others read
    assert json.loads((out / "nodes-stay.json").read_text()) == whole
    assert json.loads((tmp_path / "a.json").read_text())["per_instance"] == first
