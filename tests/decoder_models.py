"""Tiny random causal decoders of every supported family (float64, eager attention)
and byte-level BPE tokenizers trained here, offline: GPT-2 style (no BOS added) and
Llama style (BOS added by the tokenizer)."""

from __future__ import annotations

from pathlib import Path

import torch

CORPUS = [
    "the keys to the cabinet are here", "the key to the cabinets is here", "the dog is bad", "the dogs are bad",
    "the author is tall", "the authors are tall", "the guard likes the author", "the guards like the authors",
    "the authors hurt themselves", "the author hurt himself", "when mary and john went to the store",
    "john gave a drink to mary", "the pilot that the guards like is tall", "the pilots near the house are tall",
]

# family → (config class, causal-LM class, classifier class, config kwargs)
FAMILIES = {
    "gpt2": ("GPT2Config", "GPT2LMHeadModel", "GPT2ForSequenceClassification", {}),
    "llama": ("LlamaConfig", "LlamaForCausalLM", "LlamaForSequenceClassification", dict(num_key_value_heads=2)),
    "qwen2": ("Qwen2Config", "Qwen2ForCausalLM", "Qwen2ForSequenceClassification", dict(num_key_value_heads=1)),
    "mistral": ("MistralConfig", "MistralForCausalLM", "MistralForSequenceClassification",
                dict(num_key_value_heads=2, sliding_window=None)),
    "gemma": ("GemmaConfig", "GemmaForCausalLM", "GemmaForSequenceClassification",
              dict(num_key_value_heads=1, head_dim=4)),
    "gpt_neox": ("GPTNeoXConfig", "GPTNeoXForCausalLM", "GPTNeoXForSequenceClassification",
                 dict(use_parallel_residual=True, rotary_pct=0.5)),
    "gpt_neox-sequential": ("GPTNeoXConfig", "GPTNeoXForCausalLM", "GPTNeoXForSequenceClassification",
                            dict(use_parallel_residual=False, rotary_pct=1.0)),
}
#: Families whose tokenizer adds a BOS token (Llama-style).
BOS_FAMILIES = ("llama", "qwen2", "mistral", "gemma")
#: One of each layer form: the full property suite runs on these.
FORMS = ["gpt2", "llama", "gpt_neox"]


def train_bpe(out: Path, corpus: list[str] | None = None) -> tuple[str, str]:
    """vocab.json and merges.txt of a byte-level BPE trained on :data:`CORPUS`."""
    from tokenizers import ByteLevelBPETokenizer

    trainer = ByteLevelBPETokenizer()
    trainer.train_from_iterator((corpus or CORPUS) * 20, vocab_size=1000 if corpus else 400, min_frequency=1,
                                special_tokens=["<|endoftext|>", "<s>", "<pad>"])
    out.mkdir(parents=True, exist_ok=True)
    trainer.save_model(str(out))
    return str(out / "vocab.json"), str(out / "merges.txt")


def make_tokenizer(out: Path, bos: bool = False, pad: bool = False, corpus: list[str] | None = None):
    """A GPT-2 style fast tokenizer (``<|endoftext|>`` is BOS and EOS, none added), or with
    ``bos`` one that adds ``<s>`` in front as Llama's does; ``pad``: ``<pad>`` as pad token;
    ``corpus``: train on these texts instead (a vocabulary of up to 1000)."""
    from tokenizers import processors
    from transformers import GPT2TokenizerFast

    vocab, merges = train_bpe(out, corpus)
    kw = dict(pad_token="<pad>") if pad else {}
    if not bos:
        return GPT2TokenizerFast(vocab, merges, bos_token="<|endoftext|>", eos_token="<|endoftext|>",
                                 unk_token="<|endoftext|>", **kw)
    tok = GPT2TokenizerFast(vocab, merges, bos_token="<s>", eos_token="<|endoftext|>", unk_token="<|endoftext|>",
                            add_bos_token=True, **kw)
    bos_id = tok.convert_tokens_to_ids("<s>")
    tok.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos_id)])
    return tok


def make_decoder(family: str, kind: str = "causal", layers: int = 2, heads: int = 4, hidden: int = 16,
                 vocab_size: int = 400, seed: int = 0, dtype=torch.float64, widen: float = 3.0):
    """A tiny random decoder of ``family`` (eval mode), weights widened so that attention
    is far from uniform and candidates rarely tie."""
    import transformers

    config_cls, lm_cls, clf_cls, extra = FAMILIES[family]
    torch.manual_seed(seed)
    common = dict(vocab_size=vocab_size, num_labels=2, pad_token_id=2, bos_token_id=1, eos_token_id=0)
    if config_cls == "GPT2Config":
        config = transformers.GPT2Config(n_embd=hidden, n_layer=layers, n_head=heads, n_inner=2 * hidden,
                                         n_positions=64, **common, **extra)
    else:
        config = getattr(transformers, config_cls)(
            hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads, intermediate_size=2 * hidden,
            max_position_embeddings=64, tie_word_embeddings=False, **common, **extra)
    config._attn_implementation = "eager"
    model = getattr(transformers, lm_cls if kind == "causal" else clf_cls)(config).eval().to(dtype)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" not in name.lower() and "ln_" not in name and p.dim() > 1:
                p.mul_(widen)
            elif "norm" in name.lower() or "ln_" in name:
                p.add_(0.3 * torch.randn_like(p))  # norms with non-trivial weights
    return model
