"""Benchmark: peak memory of a GPR scorer against sequence length and ``max_rows``.

    python benchmarks/memory.py [--lengths 10 50 128 256 512] [--max-rows 64 512 2048]
                                [--steps 10] [--sources 8] [--device cpu|cuda] [--threads 1]
                                [--method fast|fast-full]

``--method``: ``fast`` (the default single-position scorer, ``search.fast``) or
``fast-full`` (the full-width scorer, ``search.full_width``, whose rows the estimate models;
for ``fast`` the estimate is the budget ``auto_max_rows`` plans with, an upper bound).

A 6-layer, 12-head, 384-wide BERT with random weights (vocab 30522), one random
sentence per length with one [MASK]. Every (length, max_rows) setting runs in a fresh
subprocess. CPU: the peak is the growth of the process's maximum resident set
(``resource.getrusage``) during the search; CUDA: ``torch.cuda.max_memory_allocated``
above what was allocated before the call. ``--sources`` explains only the first k
source tokens (the others cost time, not memory, once a chunk is full); the table
shows how many rows a chunk actually had. The last column is the estimate of
``search.memory`` (per-row bytes × rows of the largest chunk, plus the per-sentence
cotangents), so the ratio measured / estimate checks ``SAFETY``.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time

import torch

HIDDEN, LAYERS, HEADS, VOCAB = 384, 6, 12, 30522
CLS, SEP, MASK = 101, 102, 103


def make_model(device: str):
    from transformers import BertConfig, BertForMaskedLM

    torch.manual_seed(0)
    config = BertConfig(vocab_size=VOCAB, hidden_size=HIDDEN, num_hidden_layers=LAYERS,
                        num_attention_heads=HEADS, intermediate_size=4 * HIDDEN, max_position_embeddings=512)
    config._attn_implementation = "eager"
    return BertForMaskedLM(config).eval().to(device)


def make_batch(model, length: int, sources: int, seed: int):
    """[CLS] w ... [MASK] ... [SEP] with random word pieces; the first ``sources`` tokens explained."""
    from influence_patterns.attribution.inputs import Batch

    g = torch.Generator().manual_seed(seed)
    device = model.device
    ids = torch.randint(1000, VOCAB, (1, length), generator=g)
    target = length // 2
    ids[0, 0], ids[0, -1], ids[0, target] = CLS, SEP, MASK
    ids = ids.to(device)
    emb = model.get_input_embeddings()
    with torch.no_grad():
        x = emb(ids)
    base = emb.weight[MASK].detach().expand_as(x).clone()
    src = [i for i in range(1, length - 1) if i != target][: sources or None]
    return Batch(
        queries=[None], input_ids=ids, attention_mask=torch.ones_like(ids), x=x, baseline=base,
        target_index=torch.tensor([target], device=device), classes=torch.tensor([[2003, 2024]], device=device),
        tokens=[[str(int(i)) for i in ids[0]]], sources=[src], labels=[None],
    )


def child(length: int, max_rows: int, steps: int, sources: int, device: str, method: str = "fast") -> dict:
    """One setting, in this (fresh) process: returns the measured and estimated peak."""
    from influence_patterns.attribution.qoi import get_qoi
    from influence_patterns.attribution.quadrature import make_quadrature
    from influence_patterns.graph.architectures import adapter_for
    from influence_patterns.search.fast import gpr_fast
    from influence_patterns.search.full_width import gpr_full_width
    from influence_patterns.search.memory import row_bytes

    search = gpr_fast if method == "fast" else gpr_full_width  # the same calling convention

    model = make_model(device)
    adapter = adapter_for(model)
    batch = make_batch(model, length, sources, seed=length)
    quad = make_quadrature(steps, dtype=batch.x.dtype)
    A, S = len(quad), len(batch.sources[0])
    rows = max(min(max(1, max_rows // A), S), 1) * A  # the largest chunk (search; the plain pass has A rows)
    per_row = row_bytes(adapter, length)
    cotangents = (LAYERS + 1) * A * length * HIDDEN * batch.x.element_size()
    estimate = cotangents + rows * per_row

    # Warm up on a tiny input first: the first backward and forward-mode passes page in
    # library code and set up kernels, which would otherwise count as the call's memory.
    search(adapter, make_batch(model, 6, 1, seed=0), quad, get_qoi("agreement"), max_rows=max_rows)
    if device == "cuda":
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
    else:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    t0 = time.perf_counter()
    try:
        search(adapter, batch, quad, get_qoi("agreement"), max_rows=max_rows)
    except torch.OutOfMemoryError:
        return {"tokens": length, "sources": S, "max_rows": max_rows, "rows": rows, "seconds": None,
                "peak": None, "estimate": estimate, "per_row": per_row}
    if device == "cuda":
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - before
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
    return {"tokens": length, "sources": S, "max_rows": max_rows, "rows": rows,
            "seconds": time.perf_counter() - t0, "peak": peak, "estimate": estimate, "per_row": per_row}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[10, 50, 128, 256, 512])
    parser.add_argument("--max-rows", type=int, nargs="+", default=[64, 512, 2048])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--sources", type=int, default=8, help="explain only the first k source tokens (0: all)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--method", default="fast", choices=["fast", "fast-full"])
    parser.add_argument("--json", action="store_true", help="print one JSON line per setting too")
    parser.add_argument("--child", nargs=2, type=int, metavar=("LENGTH", "MAX_ROWS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.child:
        print(json.dumps(child(args.child[0], args.child[1], args.steps, args.sources, args.device, args.method)))
        return

    where = torch.cuda.get_device_name() if args.device == "cuda" else f"CPU {platform.machine()}, {args.threads} torch thread(s)"
    print(f"machine: {where}; torch {torch.__version__}")
    print(f"model: BERT {LAYERS} layers x {HEADS} heads x {HIDDEN} wide, vocab {VOCAB} (random weights); "
          f"steps={args.steps} (Riemann, {args.steps + 1} points); float32; scorer {args.method}")
    print(f"{'tokens':>6} {'sources':>7} {'max_rows':>8} {'rows':>5} {'seconds':>8} {'peak MiB':>9} "
          f"{'estimate MiB':>12} {'peak/est':>8}")
    for length in args.lengths:
        for max_rows in args.max_rows:
            cmd = [sys.executable, __file__, "--child", str(length), str(max_rows), "--steps", str(args.steps),
                   "--sources", str(args.sources), "--device", args.device, "--threads", str(args.threads),
                   "--method", args.method]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            r = json.loads(out.strip().splitlines()[-1])
            mib = 1 << 20
            if r["peak"] is None:
                measured = f"{'-':>8} {'OOM':>9}"
                ratio = "-"
            else:
                measured = f"{r['seconds']:>8.1f} {r['peak'] / mib:>9.0f}"
                ratio = f"{r['peak'] / r['estimate']:.2f}"
            print(f"{r['tokens']:>6} {r['sources']:>7} {r['max_rows']:>8} {r['rows']:>5} {measured} "
                  f"{r['estimate'] / mib:>12.0f} {ratio:>8}", flush=True)
            if args.json:
                print(json.dumps(r), flush=True)


if __name__ == "__main__":
    main()
