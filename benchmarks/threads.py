"""Benchmark: ``explain`` of one sentence with torch's default threads, 1 thread, and the
count :func:`influence_patterns.threads.choose_threads` picks (idle cores), side by side.

    python benchmarks/threads.py [--model default-mlm] [--length 10] [--rounds 3]

On a shared machine, OpenMP threads that land on busy cores wait on each other, so
torch's default (one thread per core) can be several times slower than one thread.
The settings are timed in turns (round 1: default, 1, chosen; round 2: ...) so that
changes in the machine's load hit each alike; it prints each time, the median per
setting, its ratio to the default, and the load average before and after. Without a
built ``default-mlm`` it uses a random-weight BERT of the same shape.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import torch

from default_mlm import TARGETS, sentence_of_length  # benchmarks/default_mlm.py


def _load() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def _explainer(model: str):
    from influence_patterns import Explainer
    from influence_patterns.models import defaults

    if model in defaults.DEFAULT_MODELS and not defaults.is_built(model):
        from transformers import AutoTokenizer, BertConfig, BertForMaskedLM

        from influence_patterns.models.training import base_model_path

        print(f"({model} is not built: a random-weight BERT of MiniLM's shape stands in)")
        torch.manual_seed(0)
        config = BertConfig(vocab_size=30522, hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
                            intermediate_size=1536)
        return Explainer(BertForMaskedLM(config).eval(), AutoTokenizer.from_pretrained(base_model_path()),
                         name="random-minilm-shape")
    return Explainer.from_pretrained(model, device="cpu")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default-mlm")
    parser.add_argument("--length", type=int, default=10, help="word pieces of the sentence")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    from influence_patterns import threads

    default = torch.get_num_threads()  # before anything applies a choice
    os.environ.pop(threads.THREADS_ENV, None)
    chosen = threads.choose_threads()
    explainer = _explainer(args.model)
    sentence = sentence_of_length(explainer.tokenizer, args.length)
    settings = {f"torch default ({default})": default, "1 thread": 1, f"chosen ({chosen})": chosen}
    print(f"cores: {os.cpu_count()}, sentence of {args.length} word pieces, load average before: {_load()}")
    torch.set_num_threads(1)
    explainer.explain(sentence, targets=TARGETS, progress=False)  # warm-up
    times: dict[str, list[float]] = {name: [] for name in settings}
    for r in range(args.rounds):
        for name, n in settings.items():
            torch.set_num_threads(n)
            t0 = time.perf_counter()
            explainer.explain(sentence, targets=TARGETS, progress=False)
            times[name].append(time.perf_counter() - t0)
            print(f"round {r + 1}: {name:>20}: {times[name][-1]:.2f} s (load {_load()})", flush=True)
    base = statistics.median(times[f"torch default ({default})"])
    print(f"\n| setting | median s | speed-up over torch default | times s (load average after: {_load()}) |")
    print("| --- | ---: | ---: | --- |")
    for name, ts in times.items():
        m = statistics.median(ts)
        print(f"| {name} | {m:.2f} | {base / m:.2f}× | {', '.join(f'{t:.2f}' for t in ts)} |")


if __name__ == "__main__":
    main()
