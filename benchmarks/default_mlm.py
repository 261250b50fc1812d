"""Benchmark: seconds per sentence on the default MLM, fast vs reference GPR, side by side.

    python benchmarks/default_mlm.py [--steps 50] [--lengths 10 20 50 128]
                                     [--reference-up-to 10] [--threads N] [--device cpu]

``default-mlm`` (real all-MiniLM-L6-v2 weights, 6 layers x 12 heads x 384 wide, with
the project's fine-tuned MLM head) must be built first:
``influence-patterns models build default-mlm``. One English agreement sentence per
length, exactly that many word pieces counting ``[CLS]`` and ``[SEP]``: the subject,
then a chain of prepositional phrases (the attractors), then ``[MASK]``. Each is
explained through the public ``Explainer`` with ``method="fast"`` and, up to
``--reference-up-to`` tokens, ``method="reference"`` (one restricted integrated
gradient per candidate: minutes per sentence on a CPU). Where both ran, the
patterns must be identical and the script asserts it.
"""

from __future__ import annotations

import argparse


from _timing import explainer_pair, model_arguments, parse, timed  # benchmarks/_timing.py (run as python benchmarks/...)

# A chain of one-piece words that keeps the sentence grammatical however long it is.
SUBJECT = "the author"
FILLER = (
    "near the old guards by the house of the pilots with the keys behind the farmers at "
    "the school on the hill under the tall trees beside the lake past the bridge over "
    "the road"
).split()
TAIL = "[MASK] tall ."
TARGETS = ("is", "are")


def sentence_of_length(tokenizer, length: int) -> str:
    """The agreement sentence of exactly ``length`` word pieces (with [CLS]/[SEP])."""
    for k in range(0, 10 * length):
        words = [SUBJECT] + [FILLER[i % len(FILLER)] for i in range(k)] + [TAIL]
        text = " ".join(words)
        n = len(tokenizer(text)["input_ids"])
        if n == length:
            return text
        if n > length:
            break
    raise SystemExit(f"no sentence of exactly {length} word pieces (shortest is {len(tokenizer(SUBJECT + ' ' + TAIL)['input_ids'])})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    model_arguments(parser, steps=50, quadrature="riemann", lengths=[10, 20, 50, 128])
    parser.add_argument("--reference-up-to", type=int, default=10,
                        help="run the reference only for inputs of at most this many tokens")
    args = parse(parser)

    rule = dict(steps=args.steps, quadrature=args.quadrature)
    fast, reference = explainer_pair(args.model, args.device, "reference", **rule)
    points = args.steps + 1 if args.quadrature == "riemann" else args.steps
    print(f"model: {fast.name}; {args.quadrature}, steps={args.steps} ({points} points); mask baseline; one sentence per call")
    fast.explain(sentence_of_length(fast.tokenizer, 8), TARGETS)  # warm-up
    print(f"{'tokens':>6} {'sources':>7} {'reference s':>12} {'fast s':>8} {'ratio':>7}")
    for length in args.lengths:
        text = sentence_of_length(fast.tokenizer, length)
        t_fast, f = timed(lambda: fast.explain(text, TARGETS), args.device)
        sources = len(f.patterns)
        if length > args.reference_up_to:
            print(f"{length:>6} {sources:>7} {'-':>12} {t_fast:>8.2f} {'-':>7}", flush=True)
            continue
        t_ref, r = timed(lambda: reference.explain(text, TARGETS), args.device)
        for pf, pr in zip(f.patterns, r.patterns):
            assert (pf.positions, pf.heads) == (pr.positions, pr.heads), f"patterns differ for source {pf.source_token}"
        print(f"{length:>6} {sources:>7} {t_ref:>12.2f} {t_fast:>8.2f} {t_ref / t_fast:>6.1f}x", flush=True)
    print("patterns identical where both ran: yes")


if __name__ == "__main__":
    main()
