"""Compression against an independent implementation: forward pre-hooks written here on
the plain Hugging Face BertForMaskedLM (input ids, not the project's Interceptor or
Batch), the reference pass on an all-[MASK] input. ``q_kept`` / ``q_removed`` of
``ablate_rows`` must match to 1e-4 relative. Also: the controls, and the bootstrap
against scipy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from influence_patterns import Explainer
from influence_patterns.analysis import bootstrap as bs
from influence_patterns.analysis.ablation import AblationOptions, ablate_rows, summarise
from influence_patterns.errors import InputError
from influence_patterns.runs import RunRecord

from conftest import make_model

TEXTS = ["the boys near the girl [MASK]", "the dog [MASK]", "the cats by the teacher [MASK] funny"]
TARGETS = [("laugh", "laughs"), ("runs", "run"), ("are", "is")]


def independent_qoi(model, tokenizer, text, targets, nodes, keep, reference="mask"):
    """QoI of ``text`` with every head context / skip outside (keep) or inside (remove)
    ``nodes`` replaced by its value on the all-[MASK] input (or zero)."""
    enc = tokenizer(text, return_tensors="pt")
    ids = enc["input_ids"]
    n = ids.shape[1]
    mask_id = tokenizer.mask_token_id
    target = int((ids[0] == mask_id).nonzero()[0, 0])
    good, bad = tokenizer.convert_tokens_to_ids(list(targets))
    cfg = model.config
    H = cfg.num_attention_heads
    hd = cfg.hidden_size // H
    outputs = [layer.attention.output for layer in model.bert.encoder.layer]
    recorded: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def record(l):
        def hook(module, args):
            recorded[l] = (args[0].detach().clone(), args[1].detach().clone())
        return hook

    handles = [o.register_forward_pre_hook(record(l)) for l, o in enumerate(outputs, start=1)]
    try:
        with torch.no_grad():
            model(input_ids=torch.full_like(ids, mask_id))
    finally:
        for h in handles:
            h.remove()

    def patch(l):
        def hook(module, args):
            context, skip = args[0].clone(), args[1].clone()
            ref_c, ref_s = recorded[l]
            if reference == "zero":
                ref_c, ref_s = torch.zeros_like(ref_c), torch.zeros_like(ref_s)
            for t in range(n):
                for j in [None, *range(H)]:
                    if ((l, t, j) in nodes) == keep:
                        continue
                    if j is None:
                        skip[0, t] = ref_s[0, t]
                    else:
                        context[0, t, j * hd : (j + 1) * hd] = ref_c[0, t, j * hd : (j + 1) * hd]
            return (context, skip) + tuple(args[2:])
        return hook

    handles = [o.register_forward_pre_hook(patch(l)) for l, o in enumerate(outputs, start=1)]
    try:
        with torch.no_grad():
            logits = model(input_ids=ids).logits[0, target]
    finally:
        for h in handles:
            h.remove()
    return float(logits[good] - logits[bad])


@pytest.fixture(scope="module")
def run_rows(tokenizer):
    torch.set_num_threads(1)
    model = make_model("mlm", layers=3, heads=2, seed=3)
    explainer = Explainer(model, tokenizer, steps=6)
    rows = []
    for i, (text, targets) in enumerate(zip(TEXTS, TARGETS)):
        e = explainer.explain(text, targets=targets)
        rows.append({"index": i, **e.to_dict(), "roles": {"subject": 2}, "correct": e.correct, "task": "t"})
    return explainer, rows


def _pattern_nodes(row, sources=None):
    out = set()
    for p in row["patterns"]:
        if sources is not None and p["source_index"] not in sources:
            continue
        for l, h in enumerate(p["heads"], start=1):
            out.add((l, p["positions"][l], h))
    return out


@pytest.mark.parametrize("sources", ["all", "subject"])
def test_q_kept_matches_an_independent_implementation(run_rows, tokenizer, sources):
    explainer, rows = run_rows
    result = ablate_rows(explainer, rows, AblationOptions(methods=("pattern",), sources=sources, resamples=50,
                                                          reference="baseline", replace="as"))
    per = {r["index"]: r for r in result["per_instance"]}
    for row, text, targets in zip(rows, TEXTS, TARGETS):
        nodes = _pattern_nodes(row, None if sources == "all" else {row["roles"]["subject"]})
        want_kept = independent_qoi(explainer.model, tokenizer, text, targets, nodes, keep=True)
        want_removed = independent_qoi(explainer.model, tokenizer, text, targets, nodes, keep=False)
        got = per[row["index"]]
        assert got["q_kept"] == pytest.approx(want_kept, rel=1e-4, abs=1e-9)
        assert got["q_removed"] == pytest.approx(want_removed, rel=1e-4, abs=1e-9)
        assert got["q"] == pytest.approx(row["qoi"]["value"], rel=1e-6)
        assert got["nodes"] == len(nodes)
        # compression changes something: keeping a few nodes is not the whole model
        assert got["q_kept"] != pytest.approx(got["q"], rel=1e-6)
    # the floor: keeping no node at all is the reference pass
    for f in result["floor"]["per_instance"]:
        want = independent_qoi(explainer.model, tokenizer, TEXTS[f["index"]], TARGETS[f["index"]], set(), keep=True)
        assert f["q_kept"] == pytest.approx(want, rel=1e-4, abs=1e-9)
    assert set(result["floor"]) == {"accuracy_retained", "qoi_retained", "per_instance"}


def test_zero_reference_matches_an_independent_implementation(run_rows, tokenizer):
    explainer, rows = run_rows
    result = ablate_rows(explainer, rows, AblationOptions(methods=("stay",), reference="zero", removal="zero",
                                                          resamples=50))
    for got in result["per_instance"]:
        row = rows[got["index"]]
        L, target = row["num_layers"], row["target_index"]
        # the stay control's nodes, rebuilt here from the attention weights of the plain model
        with torch.no_grad():
            att = explainer.model(**tokenizer(TEXTS[got["index"]], return_tensors="pt"),
                                  output_attentions=True).attentions
        nodes = set()
        for p in row["patterns"]:
            i = p["source_index"]
            nodes |= {(l, i, None) for l in range(1, L)}
            nodes.add((L, target, None if i == target else int(att[-1][0, :, target, i].argmax())))
        assert got["nodes"] == len(nodes)
        for keep, key in ((True, "q_kept"), (False, "q_removed")):
            want = independent_qoi(explainer.model, tokenizer, TEXTS[got["index"]], TARGETS[got["index"]], nodes,
                                   keep=keep, reference="zero")
            assert got[key] == pytest.approx(want, rel=1e-4, abs=1e-9)


def test_controls_are_well_formed(run_rows):
    explainer, rows = run_rows
    from influence_patterns.analysis import methods as B
    from influence_patterns.attribution.inputs import Query
    from influence_patterns.attribution.quadrature import make_quadrature

    batch = explainer.prepare([Query(t, g) for t, g in zip(TEXTS, TARGETS)])
    ctx = B.MethodInput(explainer.adapter, batch, [RunRecord.from_dict(r) for r in rows], make_quadrature(4, "riemann", dtype=batch.x.dtype),
                        explainer.qoi, seed=0)
    matched = B.get_method("random-matched").paths(ctx)
    for b, row in enumerate(rows):
        for path, p in zip(matched[b], row["patterns"]):
            assert [h is None for h in path.heads] == [h is None for h in p["heads"]]
            assert path.positions[-1] == row["target_index"]
    assert B.get_method("random-matched").paths(ctx) == matched  # seeded
    other = B.MethodInput(ctx.adapter, ctx.batch, ctx.rows, ctx.quad, ctx.qoi, seed=5)
    assert B.get_method("random-matched").paths(other) != matched
    stay = B.get_method("stay").paths(ctx)
    L = explainer.adapter.num_layers
    for b in range(len(rows)):
        for path in stay[b]:
            assert path.heads[: L - 1] == (None,) * (L - 1)
            assert path.positions[: L] == (path.source,) * L


def test_bad_options_name_the_parameter(run_rows):
    explainer, rows = run_rows
    with pytest.raises(InputError, match="batch_size must be at least 1"):
        ablate_rows(explainer, rows, AblationOptions(batch_size=0))
    with pytest.raises(InputError, match="unknown reference 'nosuch'"):
        ablate_rows(explainer, rows, AblationOptions(reference="nosuch"))
    with pytest.raises(InputError, match="unknown ablation method"):
        ablate_rows(explainer, rows, AblationOptions(methods=("nosuch",)))


# --- bootstrap ---------------------------------------------------------------------------


def test_bootstrap_ci_agrees_with_scipy():
    from scipy.stats import bootstrap

    rng = np.random.default_rng(1)
    q = rng.normal(1.0, 1.0, 60)
    k = q * 0.6 + rng.normal(0, 0.3, 60)
    stat = lambda q, k: k.mean(axis=-1) / q.mean(axis=-1)  # noqa: E731
    idx = bs.resample_indices(60, 20000, seed=0)
    ours = bs.estimate(stat, [q, k], idx)
    ref = bootstrap((q, k), lambda q, k, axis=-1: stat(q, k), paired=True, vectorized=True, n_resamples=20000, method="percentile",
                    random_state=np.random.default_rng(2))
    width = ref.confidence_interval.high - ref.confidence_interval.low
    assert ours["value"] == pytest.approx(k.mean() / q.mean())
    assert ours["ci"][0] == pytest.approx(ref.confidence_interval.low, abs=0.05 * width)
    assert ours["ci"][1] == pytest.approx(ref.confidence_interval.high, abs=0.05 * width)
    # the paired difference of two means is the mean difference: same CI as scipy's
    d = bs.difference(lambda a: a.mean(axis=-1), [q], lambda b: b.mean(axis=-1), [k], idx)
    ref = bootstrap((q - k,), lambda x, axis: x.mean(axis=axis), n_resamples=20000, method="percentile",
                    random_state=np.random.default_rng(3))
    width = ref.confidence_interval.high - ref.confidence_interval.low
    assert d["ci"][0] == pytest.approx(ref.confidence_interval.low, abs=0.05 * width)
    assert d["ci"][1] == pytest.approx(ref.confidence_interval.high, abs=0.05 * width)


def test_bootstrap_is_seeded_and_verdicts_follow_the_ci():
    assert (bs.resample_indices(10, 5, 1) == bs.resample_indices(10, 5, 1)).all()
    assert bs.verdict([0.1, 0.3], 30) == "holds"
    assert bs.verdict([-0.3, -0.1], 30) == "does not hold"
    assert bs.verdict([-0.3, -0.1], 30, higher_favours=False) == "holds"
    assert bs.verdict([-0.1, 0.1], 30) == "inconclusive"
    assert bs.verdict([0.1, 0.3], 29) == "too few instances"


def test_summarise_verdicts_against_the_best_of_each_group():
    rng = np.random.default_rng(0)
    n = 40
    q = rng.normal(2.0, 0.5, n)
    per = []
    kept = {"pattern": q * 0.9, "rollout": q * 0.2, "attention-flow": q * 0.85 + rng.normal(0, 0.2, n),
            "stay": q * 0.1}
    for m, k in kept.items():
        per += [{"index": i, "task": "t", "method": m, "q": q[i], "q_kept": k[i], "q_removed": q[i] - 1,
                 "q_floor": 0.0, "nodes": 3}
                for i in range(n)]
    groups = {"pattern": "pattern", "rollout": "attention", "attention-flow": "attention", "stay": "control"}
    s = summarise(per, groups, resamples=500, seed=0)
    v = {(x["group"], x["metric"]): x for x in s["verdicts"]}
    assert v[("attention", "qoi_recovered")]["best"] == "attention-flow"
    assert v[("control", "qoi_recovered")]["verdict"] == "holds"
    d = v[("attention", "qoi_recovered")]["difference"]
    assert d["ci"][0] <= d["value"] <= d["ci"][1]


def test_recovered_is_undefined_where_the_model_is_not_above_the_floor():
    # a task the model gets right no more often than the reference alone: (kept − floor) /
    # (model − floor) divides by about nothing, so it is withheld, not printed as 2.0 [−3, 5]
    rng = np.random.default_rng(1)
    n = 60
    q = rng.normal(0.1, 1.0, n)  # about half right
    floor = q + rng.normal(0.0, 0.1, n)  # the reference alone: as often right as the model
    per = []
    for m, k in {"pattern": q * 0.9, "rollout": q * 0.2}.items():
        per += [{"index": i, "task": "t", "method": m, "q": q[i], "q_kept": k[i], "q_removed": q[i] - 1,
                 "q_floor": floor[i], "nodes": 3} for i in range(n)]
    s = summarise(per, {"pattern": "pattern", "rollout": "attention"}, resamples=500, seed=0)
    pattern = next(x for x in s["methods"] if x["name"] == "pattern")
    for metric in ("accuracy_recovered", "qoi_recovered"):
        assert pattern[metric]["value"] is None and "not above the floor" in pattern[metric]["note"]
        assert s["headroom"][metric.split("_")[0]]["ci"][0] <= 0
        assert not any(c["metric"] == metric for c in s["comparisons"])
    assert pattern["fidelity"]["value"] is not None  # still measurable
    # with headroom (the floor far below the model) both are estimated
    per2 = [dict(r, q=abs(r["q"]) + 1.0, q_floor=-1.0) for r in per]
    s2 = summarise(per2, {"pattern": "pattern", "rollout": "attention"}, resamples=500, seed=0)
    pattern2 = next(x for x in s2["methods"] if x["name"] == "pattern")
    assert pattern2["accuracy_recovered"]["value"] is not None and pattern2["qoi_recovered"]["value"] is not None
    assert s2["headroom"]["accuracy"]["ci"][0] > 0
