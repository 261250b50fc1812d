"""Benchmark: fast GPR against the reference loop, side by side in one run.

    python benchmarks/gpr.py [--steps 50] [--lengths 10 20] [--threads N] [--method fast|fast-full]

``--method fast`` (default): the single-position scorer (``search.fast``);
``fast-full``: the earlier full-width JVP×VJP scorer (``search.full_width``).

A 6-layer, 12-head, 384-wide BERT with random weights (timing does not depend on
the weights), one sentence per length with one [MASK]. Both methods must return
identical patterns; the script asserts it, then prints seconds per sentence and
the ratio.
"""

from __future__ import annotations

import argparse
import platform

import torch

from _timing import timed  # benchmarks/_timing.py (run as python benchmarks/...)
from transformers import BertConfig, BertForMaskedLM

from influence_patterns.attribution.inputs import Batch
from influence_patterns.attribution.qoi import get_qoi
from influence_patterns.attribution.quadrature import make_quadrature
from influence_patterns.graph.architectures import adapter_for
from influence_patterns.search.fast import gpr_fast
from influence_patterns.search.full_width import gpr_full_width
from influence_patterns.search.reference import gpr_reference


def make_model(seed: int = 0) -> BertForMaskedLM:
    torch.manual_seed(seed)
    config = BertConfig(hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536)
    config._attn_implementation = "eager"
    return BertForMaskedLM(config).eval()


def make_batch(model: BertForMaskedLM, length: int, seed: int, device: str = "cpu") -> Batch:
    """A random sentence of ``length`` word pieces: [CLS] w ... [MASK] ... [SEP]."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1000, 30000, (1, length), generator=g)
    ids[0, 0], ids[0, -1], ids[0, length // 2] = 101, 102, 103
    ids = ids.to(device)
    emb = model.get_input_embeddings()
    with torch.no_grad():
        x = emb(ids)
    base = emb.weight[103].detach().expand_as(x).clone()
    sources = [i for i in range(1, length - 1) if i != length // 2]
    return Batch(
        queries=[None], input_ids=ids, attention_mask=torch.ones_like(ids), x=x, baseline=base,
        target_index=torch.tensor([length // 2], device=device), classes=torch.tensor([[2003, 2024]], device=device),
        tokens=[[str(int(i)) for i in ids[0]]], sources=[sources], labels=[None],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--lengths", type=int, nargs="+", default=[10, 20])
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--skip-reference-above", type=int, default=10**9,
                        help="time only the fast method for longer inputs")
    parser.add_argument("--method", choices=["fast", "fast-full"], default="fast")
    args = parser.parse_args()
    search = gpr_fast if args.method == "fast" else gpr_full_width
    if args.threads:
        torch.set_num_threads(args.threads)
    model = make_model().to(args.device)
    adapter = adapter_for(model)
    qoi = get_qoi("agreement")
    quad = make_quadrature(args.steps)
    where = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"CPU, {torch.get_num_threads()} torch threads"
    print(f"machine: {platform.machine()}, {where}, torch {torch.__version__}")
    print(f"model: BERT 6 layers x 12 heads x 384 wide (random weights); steps={args.steps} (Riemann, {args.steps + 1} points)")
    # Warm-up (allocators, kernels) so the first timing is not penalised.
    search(adapter, make_batch(model, 6, seed=0, device=args.device), quad, qoi)
    print(f"{'tokens':>6} {'sources':>7} {'reference s':>12} {'fast s':>8} {'ratio':>7}")
    for length in args.lengths:
        batch = make_batch(model, length, seed=length, device=args.device)
        t_fast, fast = timed(lambda: search(adapter, batch, quad, qoi), args.device)
        if length > args.skip_reference_above:
            print(f"{length:>6} {len(batch.sources[0]):>7} {'-':>12} {t_fast:>8.2f} {'-':>7}")
            continue
        t_ref, ref = timed(lambda: gpr_reference(adapter, batch, quad, qoi), args.device)
        for f, r in zip(fast[0], ref[0]):
            assert (f.positions, f.heads) == (r.positions, r.heads), f"patterns differ for source {f.source_index}"
            assert abs(f.influence_head - r.influence_head) <= 1e-4 * (abs(r.influence_head) + 1e-3)
        print(f"{length:>6} {len(batch.sources[0]):>7} {t_ref:>12.2f} {t_fast:>8.2f} {t_ref / t_fast:>6.1f}x")
    print("patterns identical: yes")


if __name__ == "__main__":
    main()
