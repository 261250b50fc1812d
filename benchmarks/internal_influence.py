"""Benchmark: the ablation's internal-influence baseline, literal (one forward-mode row
per (source, α): ``methods.conductance_scores``) against the shared pass (the IG
path's forward once per sentence, tangents per source under vmap:
``methods.source_scores``), seconds per sentence on default-mlm.

    python benchmarks/internal_influence.py [--lengths 10 20 50] [--steps 32]
                                            [--repeats 2] [--threads N] [--device cpu]

One agreement sentence per length (``default_mlm.sentence_of_length``), every source
token. The two are timed alternately, ``--repeats`` times each, in one process, and
their scores compared (the script asserts they agree to 1e-4 relative; float32).
"""

from __future__ import annotations

import argparse
import time

import torch

from _timing import explainer_pair, model_arguments, parse  # benchmarks/_timing.py
from default_mlm import TARGETS, sentence_of_length


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    model_arguments(parser, steps=32, quadrature="gauss-legendre", lengths=[10, 20, 50])
    parser.add_argument("--repeats", type=int, default=2)
    args = parse(parser)

    from influence_patterns import Query
    from influence_patterns.analysis import methods as B
    from influence_patterns.attribution.quadrature import make_quadrature

    ex, _ = explainer_pair(args.model, args.device, "fast", steps=args.steps, quadrature=args.quadrature)
    print(f"{'tokens':>6} {'sources':>7} {'literal s':>10} {'shared s':>9} {'ratio':>6}")
    for length in args.lengths:
        batch = ex.prepare([Query(sentence_of_length(ex.tokenizer, length), TARGETS)])
        quad = make_quadrature(args.steps, args.quadrature, dtype=batch.x.dtype)
        ctx = B.MethodInput(ex.adapter, batch, [], quad, ex.qoi, max_rows=4096)
        B.node_cotangents(ctx)  # shared by both; not timed
        src = batch.sources[0]
        sent = torch.zeros(len(src), dtype=torch.long)
        tangent = torch.zeros_like(batch.x[sent])
        tangent[torch.arange(len(src)), torch.tensor(src)] = (batch.x - batch.baseline)[0, src]
        took = {"literal": 0.0, "shared": 0.0}
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            literal = B.conductance_scores(ctx, sent, tangent)
            took["literal"] += time.perf_counter() - t0
            t0 = time.perf_counter()
            shared = B.source_scores(ctx, 0, src)
            took["shared"] += time.perf_counter() - t0
        for a, b in zip(shared.h, literal.h):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4 * float(b.abs().max()))
        lit, sh = took["literal"] / args.repeats, took["shared"] / args.repeats
        print(f"{length:>6} {len(src):>7} {lit:>10.2f} {sh:>9.2f} {lit / sh:>6.2f}")


if __name__ == "__main__":
    main()
