"""Benchmark: single-position GPR (``method="fast"``) against one plain IG and the
earlier full-width scorer (``method="fast-full"``), seconds per sentence on default-mlm.

    python benchmarks/single_position.py [--lengths 10 20 50 128 512] [--old-up-to 20]
                                         [--steps 32] [--quadrature gauss-legendre]
                                         [--memory-budget-gb 2] [--threads N] [--device cpu]

One agreement sentence per length (``default_mlm.sentence_of_length``), every source
token, through the public ``Explainer``. Per length it prints: the time of one plain
IG of the sentence (one forward + backward at every quadrature point, all tokens,
in chunks of ``max_rows`` points), the new GPR's time and its ratio to that IG, the
old scorer's time where the length is at most ``--old-up-to`` (its patterns must be
identical to the new ones: the script asserts it), the process's peak resident
memory after the new GPR (``ru_maxrss``, so including the model and
earlier lengths; run a length alone to read its own peak) and the load
average before and after (the machine may be shared; the figures are wall times).
``--memory-budget-gb`` sizes ``max_rows`` with ``search.memory.auto_max_rows`` for
that budget (default: half of the free memory, as the CLI does).
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

import torch

from _timing import explainer_pair, model_arguments, parse, timed  # benchmarks/_timing.py (run as python benchmarks/...)
from default_mlm import TARGETS, sentence_of_length


def _load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def plain_ig(adapter, batch, quad, qoi, max_rows: int) -> torch.Tensor:
    """One plain IG of sentence 0, every token: ``g`` (n,), α rows in chunks of ``max_rows``."""
    n = batch.lengths[0]
    x, base = batch.x[0, :n], batch.baseline[0, :n]
    alphas = quad.alphas.to(x).view(-1, 1, 1)
    path = base + alphas * (x - base)
    w = quad.weights.to(x)
    g = torch.zeros(n, dtype=x.dtype, device=x.device)
    for r0 in range(0, len(quad), max_rows):
        p = path[r0 : r0 + max_rows].detach().requires_grad_(True)
        R = p.shape[0]
        q = qoi(adapter.logits(p, batch.attention_mask[0, :n].expand(R, n), batch.target_index[0].expand(R)),
                batch.classes[0].expand(R, 2))
        (grad,) = torch.autograd.grad(q.sum(), p)
        g += torch.einsum("and,nd,a->n", grad, x - base, w[r0 : r0 + R])
    return g


def cpu_timed(fn, device: str):
    """``(wall s, process CPU s, fn())``: on a shared machine with one torch thread the
    CPU seconds are what the call would take on an idle core."""
    c0 = time.process_time()
    wall, out = timed(fn, device)
    return wall, time.process_time() - c0, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    model_arguments(parser, steps=32, quadrature="gauss-legendre", lengths=[10, 20, 50, 128, 512])
    parser.add_argument("--old-up-to", type=int, default=20,
                        help="run the full-width scorer (fast-full) only up to this many tokens")
    parser.add_argument("--memory-budget-gb", type=float, default=None)
    args = parse(parser)

    from influence_patterns import Query
    from influence_patterns.attribution.quadrature import make_quadrature
    from influence_patterns.search.memory import auto_max_rows

    rule = dict(steps=args.steps, quadrature=args.quadrature)
    new, old = explainer_pair(args.model, args.device, "fast-full", **rule)
    print(f"model: {new.name}; {args.quadrature}, {args.steps} steps; mask baseline; all sources; one sentence per call")
    new.explain(sentence_of_length(new.tokenizer, 8), TARGETS)  # warm-up
    print("wall s, and process CPU s (cpu); ratios of wall times")
    print(f"{'tokens':>6} {'sources':>7} {'max_rows':>8} {'IG s':>7} {'IG cpu':>7} {'new s':>8} {'new cpu':>8} "
          f"{'new/IG':>7} {'old s':>8} {'old cpu':>8} {'old/new':>8} {'peak MB':>8}  load before -> after")
    for length in args.lengths:
        text = sentence_of_length(new.tokenizer, length)
        if args.memory_budget_gb is not None:
            max_rows = auto_max_rows(new.adapter, length, int(args.memory_budget_gb * (1 << 30)))
        else:
            max_rows = auto_max_rows(new.adapter, length)
        new.config.max_rows = old.config.max_rows = max_rows
        before = _load()
        batch = new.prepare([Query(text, TARGETS)])
        quad = make_quadrature(args.steps, args.quadrature, dtype=batch.x.dtype)
        t_new, c_new, f = cpu_timed(lambda: new.explain(text, TARGETS), args.device)
        peak = _peak_mb()
        t_ig, c_ig, _ = cpu_timed(lambda: plain_ig(new.adapter, batch, quad, new.qoi, max_rows), args.device)
        sources = len(f.patterns)
        old_cell, ratio_cell = f"{'-':>8} {'-':>8}", f"{'-':>8}"
        if length <= args.old_up_to:
            t_old, c_old, r = cpu_timed(lambda: old.explain(text, TARGETS), args.device)
            for pf, pr in zip(f.patterns, r.patterns):
                assert (pf.positions, pf.heads) == (pr.positions, pr.heads), f"patterns differ for source {pf.source_token}"
            old_cell, ratio_cell = f"{t_old:>8.2f} {c_old:>8.2f}", f"{t_old / t_new:>7.1f}x"
        print(f"{length:>6} {sources:>7} {max_rows:>8} {t_ig:>7.2f} {c_ig:>7.2f} {t_new:>8.2f} {c_new:>8.2f} "
              f"{t_new / t_ig:>7.1f} "
              f"{old_cell} {ratio_cell} {peak:>8.0f}  {before} -> {_load()}", flush=True)
    print(f"patterns identical where both ran (up to {args.old_up_to} tokens): yes")


if __name__ == "__main__":
    main()
