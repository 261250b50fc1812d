"""Shared by the benchmark scripts: wall time of one call, synchronised on CUDA."""

from __future__ import annotations

import time

import torch


def timed(fn, device: str):
    """``(seconds, fn())``; on a CUDA device the clock waits for the kernels."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    out = fn()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - t0, out


def explainer_pair(model: str, device: str, other: str, **rule):
    """The default ``fast`` explainer of a built ``model`` and one of method ``other`` on
    the same weights; exits with a hint when a default model is not built yet."""
    import platform
    import sys

    from influence_patterns import Explainer
    from influence_patterns.models import defaults

    if model in defaults.DEFAULT_MODELS and not defaults.is_built(model):
        sys.exit(f"{model} is not built yet: run `influence-patterns models build {model}` first")
    fast = Explainer.from_pretrained(model, device=device, method="fast", **rule)
    second = Explainer(fast.model, fast.tokenizer, name=fast.name, method=other, **rule)
    where = torch.cuda.get_device_name() if device.startswith("cuda") else f"CPU, {torch.get_num_threads()} torch threads"
    print(f"machine: {platform.machine()}, {platform.processor() or '?'}, {where}, torch {torch.__version__}")
    return fast, second


def model_arguments(parser, steps: int, quadrature: str, lengths: list[int]):
    """The options every default-model benchmark takes (model, rule, lengths, threads,
    device); call ``parse(parser)`` after adding a script's own."""
    parser.add_argument("--model", default="default-mlm")
    parser.add_argument("--steps", type=int, default=steps)
    parser.add_argument("--quadrature", default=quadrature,
                        help="gauss-legendre or riemann (the paper's rule)")
    parser.add_argument("--lengths", type=int, nargs="+", default=lengths)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    return parser


def parse(parser):
    """Parsed arguments, with the torch thread count applied."""
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    return args
