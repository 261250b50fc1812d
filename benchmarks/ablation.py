"""Benchmark: where ``ablate`` spends its time, per sentence length, and what SST-2 × 200 costs.

    python benchmarks/ablation.py [--model default-mlm] [--lengths 10 20 40] [--steps 32]
                                  [--threads N] [--reference-flow-up-to 40] [--sst2 200]

One sentence per length, every source token: for an MLM (``default-mlm``) the agreement
sentence of exactly that many word pieces (``default_mlm.sentence_of_length``); for a
classifier (``--model standin-sst2``: all-MiniLM-L6-v2 with a fresh classifier head,
the architecture of ``default-sst2``; or ``default-sst2`` once built) the SST-2 dev
sentence of the nearest length. Per length it times, in one process and side by side:

- the node sets of each registered method (``Method.paths``: what the cache in the
  run directory, ``DIR/nodes-<method>.json``, saves on every later protocol), and, up to
  ``--old-up-to`` tokens, the old versions: ``attention-flow`` with the literal networkx
  Edmonds–Karp flow it used before (``methods.attention_flow_weights_reference``; it
  grows about as n⁴), ``internal-influence`` and ``layer-conductance`` without
  ``search.memory.heap_allocations`` (every large tensor a fresh mmap); the ratios old /
  new of those and of all the node sets together;
- the protocols' own passes given the node sets: keep-only and removal of every method
  under the ``mean`` reference and under ``baseline`` (forward passes only), and one
  held-out sentence's pass for the mean (``ablate`` runs at most 64 per length);
- the CPU time of the process over the length (other jobs on the machine inflate wall
  time, not CPU time).

Then it estimates ``ablate`` on the first ``--sst2`` SST-2 dev instances of ``run --task
sa/sst2 --n N`` with the ``mean`` and the ``baseline`` protocols (the node sets computed
once and reused): each instance's costs interpolated from the measured lengths (log-log,
extrapolated from the end segments), the held-out passes 64 per distinct length. Padding
inside ``ablate``'s batches of 8 and the model load are not counted.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from _timing import explainer_pair, model_arguments, parse  # benchmarks/_timing.py
from default_mlm import TARGETS, sentence_of_length

HELDOUT_PER_LENGTH = 64


def sst2_sentence(tokenizer, length: int) -> tuple[str, int]:
    """The SST-2 dev sentence whose word-piece count (with [CLS]/[SEP]) is nearest ``length``."""
    from influence_patterns.tasks.registry import get_task

    texts = [i.text for i in get_task("sa/sst2").load(None, 0)]
    lengths = [len(ids) for ids in tokenizer(texts)["input_ids"]]
    k = min(range(len(texts)), key=lambda j: (abs(lengths[j] - length), j))
    return texts[k], lengths[k]


def interpolate(xs: list[int], ys: list[float], x: np.ndarray) -> np.ndarray:
    """y(x) piecewise linear in log-log through (xs, ys), extrapolated along the end segments."""
    lx, ly = np.log(np.asarray(xs, float)), np.log(np.maximum(np.asarray(ys, float), 1e-6))
    lq = np.log(np.asarray(x, float))
    out = np.interp(lq, lx, ly)
    if len(xs) > 1:
        lo, hi = lq < lx[0], lq > lx[-1]
        out[lo] = ly[0] + (lq[lo] - lx[0]) * (ly[1] - ly[0]) / (lx[1] - lx[0])
        out[hi] = ly[-1] + (lq[hi] - lx[-1]) * (ly[-1] - ly[-2]) / (lx[-1] - lx[-2])
    return np.exp(out)


def load_explainer(args):
    """The fast explainer of ``--model``; ``standin-sst2`` is built in memory (seeded)."""
    if args.model != "standin-sst2":
        ex, _ = explainer_pair(args.model, args.device, "fast", steps=args.steps, quadrature=args.quadrature)
        return ex, args.model
    import platform

    import torch

    sys.path.insert(0, str(Path(__file__).parent))
    from quadrature import load  # benchmarks/quadrature.py: the stand-ins

    from influence_patterns import Explainer

    model, tok, description = load("standin-sst2", 0)
    print(f"machine: {platform.machine()}, CPU, {torch.get_num_threads()} torch threads, torch {torch.__version__}")
    return Explainer(model.to(args.device), tok, steps=args.steps, quadrature=args.quadrature), description


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    model_arguments(parser, steps=32, quadrature="gauss-legendre", lengths=[10, 20, 40])
    parser.add_argument("--old-up-to", type=int, default=40,
                        help="time the old versions (networkx attention-flow, no heap mode) only up to this many tokens")
    parser.add_argument("--sst2", type=int, default=200, help="estimate ablate on this many SST-2 dev instances (0: no)")
    args = parse(parser)

    import torch

    from influence_patterns import Query
    from influence_patterns.analysis import ablation as A
    from influence_patterns.analysis import methods as B
    from influence_patterns.attribution.quadrature import make_quadrature
    from influence_patterns.runs import RunRecord

    class NetworkxFlow(B.AttentionFlow):
        """``attention-flow`` with the literal networkx flow (the implementation before Dinic)."""

        name = "attention-flow-networkx"

        def _sentence(self, weights):
            return None

        def _positions(self, weights, source, target, valid, shared):
            flows = B.attention_flow_weights_reference(weights, source, target)
            pos = B.max_product_path(flows, source, target, valid) if flows is not None else None
            return pos if pos is not None else B.max_product_path(weights, source, target, valid)

    ex, description = load_explainer(args)
    classifier = ex.kind == "classification"
    print(f"model: {description}; {args.quadrature} {args.steps} points; seconds per sentence (wall) unless said")
    names = list(B.ABLATION_METHODS)
    short = {"attention-argmax": "argmax", "attention-flow": "flow", "internal-influence": "int-infl",
             "layer-conductance": "layer-cond", "random-matched": "rand-match"}
    head = (f"{'tokens':>6} {'src':>3} " + " ".join(f"{short.get(n, n)[:10]:>10}" for n in names)
            + f" {'flow-nx':>8} {'x':>5} {'ii-mmap':>8} {'x':>4} {'lc-mmap':>8} {'x':>4} {'sets old':>8} {'sets new':>8} {'x':>4}"
            + f" {'mean':>6} {'baseline':>8} {'heldout':>7} {'cpu s':>7}")
    print(head)
    measured: dict[str, list[float]] = {k: [] for k in ("sets_new", "sets_old", "mean", "baseline", "heldout")}
    lengths = []
    # First every length's input and the old versions: no heap mode has run in the process yet.
    prepared = []
    for length in args.lengths:
        if classifier:
            text, _ = sst2_sentence(ex.tokenizer, length)
            query = Query(text, None, None)
        else:
            query = Query(sentence_of_length(ex.tokenizer, length), TARGETS)
        batch = ex.prepare([query])
        quad = make_quadrature(args.steps, args.quadrature, dtype=batch.x.dtype)
        expl = ex.explain(query.text, targets=query.targets, label=query.label, progress=False)
        rows = [RunRecord(index=0, explanation=expl)]
        ctx = B.MethodInput(ex.adapter, batch, rows, quad, ex.qoi, max_rows=4096)
        t0 = time.perf_counter()
        B.node_cotangents(ctx)  # shared by internal-influence and layer-conductance
        cot = time.perf_counter() - t0
        old: dict[str, float] = {}
        if batch.lengths[0] <= args.old_up_to:
            for name, method in (("attention-flow", NetworkxFlow()),
                                 ("internal-influence", B.get_method("internal-influence")),
                                 ("layer-conductance", B.get_method("layer-conductance"))):
                paths = getattr(type(method).paths, "__wrapped__", type(method).paths)  # without the heap mode
                t0 = time.perf_counter()
                paths(method, ctx)
                old[name] = time.perf_counter() - t0
        prepared.append((query, batch, ctx, cot, old))
    cpu_all = time.process_time()
    for query, batch, ctx, cot, old in prepared:
        cpu0 = time.process_time()
        took, sets = {}, {}
        for name in names:
            t0 = time.perf_counter()
            paths = B.get_method(name).paths(ctx)
            took[name] = time.perf_counter() - t0
            sets[name] = [A.node_set(paths[0])]
        n = batch.lengths[0]
        real, _ = A.record_nodes(ex.adapter, batch.x, batch.attention_mask, batch.target_index)
        ctx.cache["mean_nodes"] = real  # stands in for the held-out mean: the same shapes, the same passes
        protocol = {}
        for reference in ("mean", "baseline"):
            t0 = time.perf_counter()
            for name in names:
                A.ablated_qoi(ctx, sets[name], keep=True, reference=reference)
                A.ablated_qoi(ctx, sets[name], keep=False, reference=reference)
            protocol[reference] = time.perf_counter() - t0
        held = ex.prepare([query] * 32)  # one batch of same-length held-out inputs
        t0 = time.perf_counter()
        ref = A.MeanReference("timing", False)
        nodes, _ = A.record_nodes(ex.adapter, held.x, held.attention_mask, held.target_index)
        ref.add(nodes, held.lengths)
        heldout = (time.perf_counter() - t0) / 32
        new = cot + sum(took.values())
        total_old = new + sum(v - took[k] for k, v in old.items()) if old else float("nan")
        cpu = time.process_time() - cpu0
        lengths.append(n)
        for k, v in (("sets_new", new), ("sets_old", total_old), ("mean", protocol["mean"]),
                     ("baseline", protocol["baseline"]), ("heldout", heldout)):
            measured[k].append(v)

        def pair(name: str, width: int, ratio: int) -> str:
            if name not in old:
                return f"{'-':>{width}} {'-':>{ratio}}"
            return f"{old[name]:>{width}.2f} {old[name] / max(took[name], 1e-9):>{ratio}.{0 if ratio == 5 else 1}f}"

        print(f"{n:>6} {len(batch.sources[0]):>3} " + " ".join(f"{took[m]:>10.2f}" for m in names)
              + f" {pair('attention-flow', 8, 5)} {pair('internal-influence', 8, 4)} {pair('layer-conductance', 8, 4)}"
              + f" {total_old:>8.2f} {new:>8.2f} {total_old / new:>4.1f}"
              + f" {protocol['mean']:>6.2f} {protocol['baseline']:>8.2f} {heldout:>7.3f} {cpu:>7.1f}", flush=True)
    print(f"(sets: all methods and the shared cotangent pass; cpu s: process CPU seconds of the new sets, the passes "
          f"and the held-out batch; {time.process_time() - cpu_all:.0f} s for all lengths)")

    if args.sst2 and len(lengths) >= 2:
        from influence_patterns.tasks.registry import get_task

        insts = get_task("sa/sst2").load(args.sst2, 0)
        ns = np.array([len(ids) for ids in ex.tokenizer([i.text for i in insts])["input_ids"]])
        est = {k: interpolate(lengths, v, ns) for k, v in measured.items() if k != "sets_old"}
        sets_new = float(est["sets_new"].sum())
        heldout = float(interpolate(lengths, measured["heldout"], np.unique(ns)).sum() * HELDOUT_PER_LENGTH)
        mean, baseline = float(est["mean"].sum()), float(est["baseline"].sum())
        total = sets_new + heldout + mean + baseline
        print(f"\nSST-2 × {len(insts)} (dev, seed 0; {ns.min()}–{ns.max()} word pieces, median {int(np.median(ns))}, "
              f"{len(np.unique(ns))} lengths), estimated from the lengths above on this model:")
        print(f"  node sets, all methods, once: {sets_new:7.0f} s")
        print(f"  --reference mean:     passes {mean:5.0f} s + held-out means {heldout:5.0f} s")
        print(f"  --reference baseline: passes {baseline:5.0f} s")
        print(f"  total, mean + baseline protocols: {total:7.0f} s = {total / 60:.1f} min")
        if all(np.isfinite(measured["sets_old"])):
            old_total = float(interpolate(lengths, measured["sets_old"], ns).sum()) + heldout + mean + baseline
            print(f"  the same with the old node sets (networkx flow, no heap mode): {old_total:7.0f} s = "
                  f"{old_total / 60:.1f} min (node sets {old_total - total + sets_new:.0f} s)")


if __name__ == "__main__":
    main()
