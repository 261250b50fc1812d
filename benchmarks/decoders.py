"""Benchmark: GPR for every token of one text against one plain IG of the same text, on
random models of each layer form (6 layers × 12 heads × 384 wide, float32) beside a BERT
encoder of the same size.

    python benchmarks/decoders.py [--tokens 48] [--steps 32] [--threads N] [--device cpu]
                                  [--forms bert gpt2 llama gpt_neox] [--check-old]

Forms: ``bert`` (the encoder: post-norm, the text ends in ``[MASK]``), ``gpt2``
(sequential pre-norm, learned positions), ``llama`` (sequential pre-norm, RMSNorm,
rotary, grouped-query attention with 4 key/value heads), ``gpt_neox`` (parallel
residual, rotary). The weights are random (``initializer_range`` 0.1 so that attention
is not uniform); the cost does not depend on them. A word-level tokenizer built here
gives a text of exactly ``--tokens`` tokens. Per form it prints the time of one plain
IG (one forward + backward at every quadrature point, all tokens), of GPR with the
default single-position scorer (``fast``) for every source token, their ratio (goal:
at most 12×), and with ``--check-old`` fast-full's time and that both give the same
patterns. Wall and process CPU seconds; the load average before and after (the
machine may be shared).
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import torch

from _timing import timed  # benchmarks/_timing.py (run as python benchmarks/...)
from single_position import plain_ig

WORDS = ("the keys to cabinet near old house that guards like and pilots who authors hurt dog cats "
         "a small red big blue table window door are is").split()


def _load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def word_tokenizer(root: Path, encoder: bool):
    """A word-level tokenizer over :data:`WORDS`: BERT's for the encoder, else one with an
    EOS (``</s>``, the decoders' baseline row) that adds no special tokens."""
    if encoder:
        from transformers import BertTokenizer

        (root / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n")
        return BertTokenizer(str(root / "vocab.txt"))
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(["</s>", "<unk>", *WORDS])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="</s>", unk_token="<unk>")


def make_model(form: str, vocab: int, layers: int = 6, heads: int = 12, hidden: int = 384):
    import transformers as T

    torch.manual_seed(0)
    common = dict(vocab_size=vocab, max_position_embeddings=512, initializer_range=0.1)
    if form == "bert":
        config = T.BertConfig(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                              intermediate_size=4 * hidden, **common)
        cls = T.BertForMaskedLM
    elif form == "gpt2":
        config = T.GPT2Config(n_embd=hidden, n_layer=layers, n_head=heads, n_positions=512, vocab_size=vocab,
                              initializer_range=0.1, bos_token_id=0, eos_token_id=0)
        cls = T.GPT2LMHeadModel
    elif form == "llama":
        config = T.LlamaConfig(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                               num_key_value_heads=4, intermediate_size=4 * hidden, **common)
        cls = T.LlamaForCausalLM
    elif form == "gpt_neox":
        config = T.GPTNeoXConfig(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                                 intermediate_size=4 * hidden, use_parallel_residual=True, rotary_pct=0.25, **common)
        cls = T.GPTNeoXForCausalLM
    else:
        raise SystemExit(f"unknown form {form!r}")
    config._attn_implementation = "eager"
    return cls(config).eval()


def text_of(tokens: int, encoder: bool) -> str:
    """A text of exactly ``tokens`` tokens (for the encoder: [CLS] ... [MASK] [SEP])."""
    words = [WORDS[(7 * i) % (len(WORDS) - 2)] for i in range(tokens)]
    if encoder:
        return " ".join(words[: tokens - 3] + ["[MASK]"])
    return " ".join(words)


def cpu_timed(fn, device: str):
    c0 = time.process_time()
    wall, out = timed(fn, device)
    return wall, time.process_time() - c0, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=48)
    parser.add_argument("--steps", type=int, default=32)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--forms", nargs="+", default=["bert", "gpt2", "llama", "gpt_neox"])
    parser.add_argument("--check-old", action="store_true", help="also time fast-full and compare the patterns")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from influence_patterns import Explainer, Query
    from influence_patterns.attribution.quadrature import make_quadrature
    from influence_patterns.search.memory import auto_max_rows

    where = torch.cuda.get_device_name() if args.device.startswith("cuda") else \
        f"CPU, {torch.get_num_threads()} torch threads"
    print(f"machine: {platform.machine()}, {platform.processor() or '?'}, {where}, torch {torch.__version__}")
    print(f"random 6 layers x 12 heads x 384 wide, float32; {args.tokens} tokens, every source; "
          f"gauss-legendre, {args.steps} points; wall s (process CPU s)")
    print(f"{'form':>9} {'sources':>7} {'IG s':>12} {'GPR s':>14} {'GPR/IG':>7} {'fast-full s':>12}  load before -> after")
    root = Path(tempfile.mkdtemp())
    for form in args.forms:
        encoder = form == "bert"
        tok = word_tokenizer(root, encoder)
        model = make_model(form, len(tok)).to(args.device)
        ex = Explainer(model, tok, steps=args.steps)
        text = text_of(args.tokens, encoder)
        targets = ("are", "is")
        batch = ex.prepare([Query(text, targets)])
        assert batch.lengths[0] == args.tokens, batch.lengths
        max_rows = auto_max_rows(ex.adapter, args.tokens)
        ex.config.max_rows = max_rows
        quad = make_quadrature(args.steps, ex.config.quadrature, dtype=batch.x.dtype)
        ex.explain(text_of(8, encoder), targets)  # warm-up
        before = _load()
        t_ig, c_ig, _ = cpu_timed(lambda: plain_ig(ex.adapter, batch, quad, ex.qoi, max_rows), args.device)
        t_new, c_new, res = cpu_timed(lambda: ex.explain(text, targets), args.device)
        old = "-"
        if args.check_old:
            full = Explainer(model, tok, steps=args.steps, method="fast-full", max_rows=max_rows)
            t_old, _, r = cpu_timed(lambda: full.explain(text, targets), args.device)
            same = all((a.positions, a.heads) == (b.positions, b.heads) for a, b in zip(res.patterns, r.patterns))
            old = f"{t_old:.1f}{'' if same else ' (differ!)'}"
        print(f"{form:>9} {len(res.patterns):>7} {t_ig:>5.2f} ({c_ig:>5.2f}) {t_new:>6.2f} ({c_new:>6.2f}) "
              f"{t_new / t_ig:>6.1f}x {old:>12}  {before} -> {_load()}", flush=True)


if __name__ == "__main__":
    main()
