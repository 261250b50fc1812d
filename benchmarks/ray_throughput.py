"""Benchmark: run throughput, local backend against Ray at 1 and 2 workers, side by side.

    python benchmarks/ray_throughput.py [--model default-mlm] [--task sva/simple]
                                        [--n 24] [--steps 20] [--batch-size 2] [--workers 1 2]

Each configuration runs the same ``influence-patterns run`` job (``runs.run_dataset``)
into a fresh directory with one explainer loaded once: the local backend with all
torch threads and with one thread, then Ray with N one-thread workers (a local Ray
started by the run, as a user without a cluster gets it). Prints instances per second
over the whole run (Ray start-up and model shipping included) and in steady state
(from the first written batch to the last), and asserts that every backend wrote the
same patterns. Needs the ``ray`` extra (``pip install -e ".[ray]"``) and, for
``default-mlm``, ``influence-patterns models build default-mlm`` first.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch


def patterns_of(results: Path) -> list[list[tuple]]:
    rows = [json.loads(line) for line in results.read_text().splitlines()]
    rows.sort(key=lambda r: r["index"])
    return [[(tuple(p["positions"]), tuple(p["heads"])) for p in r["patterns"]] for r in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default-mlm")
    parser.add_argument("--task", default="sva/simple")
    parser.add_argument("--n", type=int, default=24)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--quadrature", default="riemann")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()

    try:
        import ray  # noqa: F401
    except ImportError:
        sys.exit('this benchmark needs Ray: pip install -e ".[ray]"')
    from influence_patterns import Explainer
    from influence_patterns.models import defaults
    from influence_patterns.runs import BackendOptions, RunOptions, run_dataset

    if args.model in defaults.DEFAULT_MODELS and not defaults.is_built(args.model):
        sys.exit(f"{args.model} is not built yet: run `influence-patterns models build {args.model}` first")
    all_threads = torch.get_num_threads()
    explainer = Explainer.from_pretrained(args.model, device="cpu", steps=args.steps, quadrature=args.quadrature)
    print(f"machine: {platform.machine()}, {all_threads} torch threads available, torch {torch.__version__}")
    print(f"model: {explainer.name}; task {args.task}, n={args.n}, {args.quadrature} steps={args.steps}, batch size {args.batch_size}")

    configs = [("local", 1, all_threads), ("local", 1, 1)] + [("ray", w, 1) for w in args.workers]
    reference = None
    base_rate = None
    print(f"{'backend':>8} {'workers':>7} {'threads':>7} {'wall s':>8} {'inst/s':>7} {'steady inst/s':>13} {'vs local':>8}")
    with tempfile.TemporaryDirectory() as tmp:
        for i, (backend, workers, threads) in enumerate(configs):
            torch.set_num_threads(threads)
            stamps: list[tuple[float, int]] = []
            t0 = time.perf_counter()
            options = RunOptions(model=args.model, task=args.task, n=args.n, steps=args.steps,
                                 quadrature=args.quadrature, batch_size=args.batch_size, device="cpu")
            results = run_dataset(
                options, Path(tmp) / f"run{i}", explainer=explainer, backend=BackendOptions(backend, workers),
                progress=lambda done, total: stamps.append((time.perf_counter(), done)),
            )
            wall = time.perf_counter() - t0
            torch.set_num_threads(all_threads)
            (t_first, n_first), (t_last, n_last) = stamps[0], stamps[-1]
            steady = (n_last - n_first) / (t_last - t_first) if t_last > t_first else float("nan")
            rate = args.n / wall
            base_rate = base_rate or rate
            got = patterns_of(results)
            if reference is None:
                reference = got
            assert got == reference, f"{backend} with {workers} worker(s) wrote different patterns"
            shown_threads = f"{threads}" if backend == "local" else f"{threads}/worker"
            print(f"{backend:>8} {workers:>7} {shown_threads:>7} {wall:>8.1f} {rate:>7.3f} {steady:>13.3f} {rate / base_rate:>7.2f}x", flush=True)
    print("patterns identical across backends: yes")


if __name__ == "__main__":
    main()
