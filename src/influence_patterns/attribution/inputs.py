"""Tokenize and validate what the user asks to explain; build the embeddings x and baseline b."""

from __future__ import annotations

import numbers

from dataclasses import dataclass
from typing import Any, Sequence

import torch

from influence_patterns.attribution.baselines import make_baseline
from influence_patterns.attribution.prefix import continuation_id, decoder_baseline, prefix_ids
from influence_patterns.errors import InputError
from influence_patterns.graph.adapters import Adapter
from influence_patterns.graph.kind import MASK


@dataclass
class Query:
    """One text to explain: ``targets=(good, bad)`` for an MLM, ``label`` for a classifier.
    ``sources``: word-piece positions to explain (``[CLS]`` is 0); default every
    non-special token other than the target."""

    text: str
    targets: tuple[str, str] | None = None
    label: int | None = None
    sources: Sequence[int] | None = None


@dataclass
class Batch:
    """Padded tensors for B sentences. ``classes[b] = (pos, neg)`` for the QoI."""

    queries: list[Query]
    input_ids: torch.Tensor  # (B, n)
    attention_mask: torch.Tensor  # (B, n)
    x: torch.Tensor  # (B, n, d) word-piece embeddings
    baseline: torch.Tensor  # (B, n, d)
    target_index: torch.Tensor  # (B,)
    classes: torch.Tensor  # (B, 2)
    tokens: list[list[str]]
    sources: list[list[int]]  # per sentence: explained token positions
    labels: list[int | None]
    baseline_fill: str | None = None  # decoders: what filled the baseline rows (attribution.prefix)

    def __len__(self) -> int:
        return len(self.queries)

    @property
    def lengths(self) -> list[int]:
        return [len(t) for t in self.tokens]


def single_piece(tokenizer: Any, word: str) -> int:
    """Vocabulary id of a target word, which must be one word piece (not ``[UNK]``)."""
    word = word.strip()
    if not word:
        raise InputError("a target is empty")
    # With a leading space, as the word stands inside a sentence: byte-level BPE
    # (RoBERTa) marks it (``Ġis``); WordPiece and SentencePiece ignore it.
    pieces = tokenizer.tokenize(" " + word)
    if len(pieces) != 1:
        raise InputError(f"target {word!r} is not a single word piece: it tokenizes to {pieces}")
    if pieces[0] == tokenizer.unk_token:
        raise InputError(f"target {word!r} is not in the model's vocabulary (not a single word piece: it is {pieces[0]})")
    return int(tokenizer.convert_tokens_to_ids(pieces[0]))


def _chosen_sources(chosen: Sequence[int], allowed: list[int], tokens: list[str], target: int) -> list[int]:
    """The positions the user asked for, checked against the explainable ones."""
    listing = " ".join(f"{i}:{t}" for i, t in enumerate(tokens))
    if not len(chosen):
        raise InputError(f"no sources given; choose positions among: {listing}")
    out = []
    for i in chosen:
        if isinstance(i, bool) or not isinstance(i, numbers.Integral):
            raise InputError(f"a source must be a word-piece position (an integer), got {i!r}")
        i = int(i)  # numpy and torch integers too
        if not 0 <= i < len(tokens):
            raise InputError(f"source {i} is out of range: the text has {len(tokens)} word pieces ({listing})")
        if i == target and i not in allowed:
            raise InputError(f"source {i} is the target position {tokens[i]!r}; choose among: {listing}")
        if i not in allowed:
            raise InputError(f"source {i} is the special token {tokens[i]!r}; choose among: {listing}")
        if i not in out:
            out.append(i)
    return sorted(out)


def with_mask_token(tokenizer: Any, text: str) -> str:
    """``text`` with the user's ``[MASK]`` written as the tokenizer's own mask token (``<mask>``)."""
    mask = getattr(tokenizer, "mask_token", None)
    return text if mask in (None, MASK) else text.replace(MASK, mask)


def _special_ids(tokenizer: Any) -> set[int]:
    return {int(i) for i in tokenizer.all_special_ids}


def prepare_batch(
    adapter: Adapter,
    tokenizer: Any,
    queries: Sequence[Query],
    baseline: str = "mask",
    keep_special: bool = False,
) -> Batch:
    """Tokenize, validate (one ``[MASK]``, single-piece distinct targets, length, label)
    and build x and b. Raises ``InputError`` naming the problem."""
    if not queries:
        raise InputError("nothing to explain: no texts given")
    device = next(adapter.model.parameters()).device
    special = _special_ids(tokenizer)
    encoded = [_encode(adapter, tokenizer, q) for q in queries]
    ids = [e[0] for e in encoded]
    targets_idx = [e[1] for e in encoded]
    input_ids, attention_mask = _pad(ids, tokenizer.pad_token_id, device)
    with torch.no_grad():
        x = adapter.word_embeddings()(input_ids).to(adapter.word_embeddings().weight.dtype)
    baseline_fill = None
    if adapter.causal:
        keep = torch.zeros_like(input_ids, dtype=torch.bool)
        for b, row in enumerate(ids):
            keep[b, : len(row)] = torch.tensor([i in special for i in row], dtype=torch.bool)  # BOS stays real
        base, baseline_fill = decoder_baseline(input_ids, x, adapter.word_embeddings(), baseline, tokenizer,
                                               adapter.model, keep)
    else:
        base = make_baseline(input_ids, x, adapter.word_embeddings(), baseline, special, tokenizer.mask_token_id,
                             tokenizer.pad_token_id, keep_special)
    target_index = torch.tensor(targets_idx, dtype=torch.long, device=device)
    if adapter.kind == "classification":
        classes, labels = _explained_classes(adapter, x, attention_mask, target_index, queries)
    else:
        classes, labels = [e[2] for e in encoded], [q.label for q in queries]
    tokens = [tokenizer.convert_ids_to_tokens(row) for row in ids]
    # A decoder's last token is a source too (its pattern stays at the target position).
    sources = [
        [i for i, tok in enumerate(row) if tok not in special and (adapter.causal or i != targets_idx[b])]
        for b, row in enumerate(ids)
    ]
    for b, q in enumerate(queries):
        if q.sources is not None:
            sources[b] = _chosen_sources(q.sources, sources[b], tokens[b], targets_idx[b])
    return Batch(
        queries=list(queries),
        input_ids=input_ids,
        attention_mask=attention_mask,
        x=x,
        baseline=base,
        target_index=target_index,
        classes=torch.tensor(classes, dtype=torch.long, device=device),
        tokens=tokens,
        sources=sources,
        labels=labels,
        baseline_fill=baseline_fill,
    )


def _encode(adapter: Adapter, tokenizer: Any, q: Query) -> tuple[list[int], int, tuple[int, int] | None]:
    """One query's token ids, its target position and the (good, bad) target ids (``None``
    for a classifier, filled in later); ``InputError`` naming what is wrong with it."""
    if not isinstance(q.text, str) or not q.text.strip():
        raise InputError("the text is empty")
    if adapter.causal:
        ids = prefix_ids(tokenizer, q.text)
    else:
        ids = tokenizer(with_mask_token(tokenizer, q.text), add_special_tokens=True)["input_ids"]
    if len(ids) > adapter.max_length:
        raise InputError(
            f"the text is {len(ids)} word pieces long; the model takes at most {adapter.max_length}"
        )
    if adapter.kind == "causal":
        if q.targets is None or len(q.targets) != 2:
            raise InputError("a causal-LM explanation needs two continuations: targets=(GOOD, BAD)")
        good, bad = (continuation_id(tokenizer, q.text, w) for w in q.targets)
        if good == bad:
            raise InputError(f"the targets are equal ({q.targets[0]!r}); give two different words")
        return ids, len(ids) - 1, (good, bad)  # the next token's logits at the last position
    if adapter.causal:  # a classifier on a decoder reads the last token
        return ids, len(ids) - 1, None
    if adapter.kind != "mlm":
        return ids, 0, None  # the pooler reads [CLS]
    mask_id = tokenizer.mask_token_id
    n_mask = sum(1 for i in ids if i == mask_id)
    if n_mask == 0:
        raise InputError(f"no [MASK] in the text: {q.text!r} (a masked-LM explanation needs exactly one)")
    if n_mask > 1:
        raise InputError(f"found {n_mask} [MASK] tokens in {q.text!r}; exactly one is needed")
    if q.targets is None or len(q.targets) != 2:
        raise InputError("a masked-LM explanation needs two targets: targets=(GOOD, BAD)")
    good, bad = (single_piece(tokenizer, w) for w in q.targets)
    if good == bad:
        raise InputError(f"the targets are equal ({q.targets[0]!r}); give two different words")
    return ids, ids.index(mask_id), (good, bad)


def _pad(encoded: list[list[int]], pad_id: int | None, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """``input_ids`` padded with ``pad_id`` (0 without one) and the attention mask, (B, n) each."""
    n = max(len(ids) for ids in encoded)
    input_ids = torch.full((len(encoded), n), pad_id if pad_id is not None else 0, dtype=torch.long)
    attention_mask = torch.zeros((len(encoded), n), dtype=torch.long)
    for b, ids in enumerate(encoded):
        input_ids[b, : len(ids)] = torch.tensor(ids)
        attention_mask[b, : len(ids)] = 1
    return input_ids.to(device), attention_mask.to(device)


def _explained_classes(
    adapter: Adapter, x: torch.Tensor, attention_mask: torch.Tensor, target_index: torch.Tensor,
    queries: Sequence[Query],
) -> tuple[list[tuple[int, int]], list[int | None]]:
    """A classifier's (gold, other) per query and the labels explained: the given label
    (checked against the number of classes) or the prediction; ``other`` is the
    highest-scoring other class."""
    num_labels = int(adapter.config.num_labels)
    with torch.no_grad():
        logits = adapter.logits(x, attention_mask, target_index)
    classes: list[tuple[int, int]] = []
    labels: list[int | None] = []
    for b, q in enumerate(queries):
        if q.label is None:
            gold = int(logits[b].argmax())  # explain the prediction
        else:
            gold = int(q.label)
            if not 0 <= gold < num_labels:
                raise InputError(f"label {gold} is out of range: the classifier has {num_labels} classes")
        order = logits[b].argsort(descending=True).tolist()
        classes.append((gold, next(c for c in order if c != gold)))
        labels.append(gold)
    return classes, labels
