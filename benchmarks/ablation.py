"""Benchmark: where ``ablate`` spends its time, per sentence length, on default-mlm.

    python benchmarks/ablation.py [--lengths 10 20 40] [--steps 32] [--threads N] [--device cpu]

One agreement sentence per length (``default_mlm.sentence_of_length``), every source
token. Per length it times, in one process and side by side:

- the node sets of each registered method (``Method.paths``: what the cache in the
  run directory, ``DIR/nodes-<method>.json``, saves on every later protocol);
- the protocol's own passes given the node sets: the reference (``mean`` of the held-out
  inputs is measured as its per-batch part, ``baseline`` as one pass), keep-only,
  removal and the two interchange patches of every method (forward passes only).

It prints seconds per sentence and the ratio *node sets / protocol passes*: how much a
second or third protocol on the same run costs compared with the first. The growth of
the layer baselines with length (n sources × n positions × A points) is the n³ part.
"""

from __future__ import annotations

import argparse
import time

from _timing import explainer_pair, model_arguments, parse  # benchmarks/_timing.py
from default_mlm import TARGETS, sentence_of_length


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    model_arguments(parser, steps=32, quadrature="gauss-legendre", lengths=[10, 20, 40])
    args = parse(parser)

    from influence_patterns import Query
    from influence_patterns.analysis import ablation as A
    from influence_patterns.analysis import methods as B
    from influence_patterns.attribution.quadrature import make_quadrature

    ex, _ = explainer_pair(args.model, args.device, "fast", steps=args.steps, quadrature=args.quadrature)
    names = list(B.ABLATION_METHODS)
    print(f"{'tokens':>6} " + " ".join(f"{n[:10]:>10}" for n in names) + f" {'all sets':>9} {'passes':>7} {'ratio':>6}")
    for length in args.lengths:
        text = sentence_of_length(ex.tokenizer, length)
        batch = ex.prepare([Query(text, TARGETS)])
        quad = make_quadrature(args.steps, args.quadrature, dtype=batch.x.dtype)
        expl = ex.explain(text, targets=TARGETS, progress=False)
        from influence_patterns.runs import RunRecord

        rows = [RunRecord(index=0, explanation=expl)]
        ctx = B.MethodInput(ex.adapter, batch, rows, quad, ex.qoi, max_rows=4096)
        took = {}
        sets = {}
        for name in names:
            t0 = time.perf_counter()
            paths = B.get_method(name).paths(ctx)
            took[name] = time.perf_counter() - t0
            sets[name] = [A.node_set(paths[0])]
        t0 = time.perf_counter()
        real, _ = A.record_nodes(ex.adapter, batch.x, batch.attention_mask, batch.target_index)
        ctx.cache["mean_nodes"] = real  # stands in for the held-out mean: the same shapes, the same passes
        for name in names:
            for reference in ("mean", "baseline"):
                A.ablated_qoi(ctx, sets[name], keep=True, reference=reference)
                A.ablated_qoi(ctx, sets[name], keep=False, reference=reference)
            A.ablated_qoi(ctx, sets[name], keep=False, reference=real)
            A.ablated_qoi(ctx, sets[name], keep=True, reference=real)
        passes = time.perf_counter() - t0
        total = sum(took.values())
        print(f"{batch.lengths[0]:>6} " + " ".join(f"{took[n]:>10.2f}" for n in names)
              + f" {total:>9.2f} {passes:>7.2f} {total / passes:>6.1f}")


if __name__ == "__main__":
    main()
