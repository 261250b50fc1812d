"""Inputs of a causal decoder (docs/decoders.md): the text is a prefix, the targets are
the words that may continue it, and the baseline has no ``[MASK]`` to use.

- The text is tokenized as the tokenizer does it (a BOS token where the tokenizer
  adds one; an EOS it appends is dropped, the text goes on); the target position is
  its last token, whose next-token logits ``y`` are.
- A target is a word as it continues the text: the tokens of ``text + " " + word``
  beyond those of ``text`` (byte-level BPE and SentencePiece mark the leading space,
  ``Ġare`` / ``▁are``). It must be one token; otherwise the error names its pieces.
- Baseline (``mask``, the default name, means "the model's own stand-in for a
  missing word"): every text token's embedding replaced by the pad token's, else the
  EOS token's; BOS stays real. Hugging Face zeroes the padding row at initialisation,
  and an all-zero input makes RMSNorm's gradient explode near α = 0, so a zero row
  falls back to EOS, then to the mean embedding. ``zero`` stays an option (with a
  warning on RMSNorm models); ``pad`` and ``eos`` name a row outright.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch

from influence_patterns.attribution.baselines import BASELINES, BaselineInputs
from influence_patterns.errors import InputError
from influence_patterns.graph.kind import MASK


def prefix_ids(tokenizer: Any, text: str) -> list[int]:
    """Token ids of ``text`` as the model reads it: with the BOS the tokenizer adds, without
    an EOS it appends (the text is continued, not ended)."""
    if MASK in text or (getattr(tokenizer, "mask_token", None) and tokenizer.mask_token in text):
        raise InputError(
            f"{text!r} has a [MASK], but a causal LM predicts the next token: give the text up to the "
            "target word and the continuations as targets (e.g. 'the keys to the cabinet' with targets are, is)"
        )
    text = text.rstrip()  # a trailing space would be a token of its own (byte-level BPE)
    ids = list(tokenizer(text, add_special_tokens=True)["input_ids"])
    plain = list(tokenizer(text, add_special_tokens=False)["input_ids"])
    eos = tokenizer.eos_token_id
    if eos is not None and len(ids) > len(plain) and ids and ids[-1] == eos and (not plain or plain[-1] != eos):
        ids = ids[:-1]
    return ids


def continuation_id(tokenizer: Any, text: str, word: str) -> int:
    """The one token id by which ``word`` continues ``text``; ``InputError`` naming the
    pieces when it is several."""
    word = word.strip()
    if not word:
        raise InputError("a target is empty")
    text = text.rstrip()
    before = list(tokenizer(text, add_special_tokens=False)["input_ids"])
    after = list(tokenizer(text + " " + word, add_special_tokens=False)["input_ids"])
    if after[: len(before)] != before:
        raise InputError(f"target {word!r} merges with the end of the text {text!r}; end the text at a word boundary")
    rest = after[len(before):]
    pieces = tokenizer.convert_ids_to_tokens(rest)
    if len(rest) != 1:
        raise InputError(
            f"target {word!r} is not a single token after the text: it continues it as {len(rest)} pieces {pieces}"
        )
    if tokenizer.unk_token_id is not None and rest[0] == tokenizer.unk_token_id and tokenizer.unk_token != tokenizer.eos_token:
        raise InputError(f"target {word!r} is not in the model's vocabulary (it is {pieces[0]})")
    return int(rest[0])


def _rmsnorm(model: Any) -> bool:
    return any(type(m).__name__.endswith("RMSNorm") for m in model.modules())


def decoder_baseline(
    input_ids: torch.Tensor,
    x: torch.Tensor,
    word_embeddings: torch.nn.Embedding,
    kind: str,
    tokenizer: Any,
    model: Any,
    keep: torch.Tensor,
) -> tuple[torch.Tensor, str]:
    """The baseline (B, n, d) and what filled it (e.g. ``"pad <pad>"``, ``"eos <|endoftext|>, as
    the pad row is all zero"``). ``keep`` (B, n) marks the rows that stay real (BOS)."""
    if kind not in ("zero", "mask", "pad", "eos"):  # registered from outside: the entry's own function
        inputs = BaselineInputs(input_ids, x, word_embeddings, getattr(tokenizer, "mask_token_id", None),
                                getattr(tokenizer, "pad_token_id", None))
        return torch.where(keep.unsqueeze(-1), x, BASELINES.lookup(kind)(inputs)), kind
    table = word_embeddings.weight.detach()
    scale = getattr(word_embeddings, "embed_scale", None)  # Gemma's embedding multiplies its rows
    if scale is not None:
        table = table * scale.to(table.dtype)
    note = ""
    if kind == "zero":
        if _rmsnorm(model):
            warnings.warn("baseline 'zero' on an RMSNorm model: the norm's gradient explodes near an all-zero "
                          "input, so IG misses completeness; the default (pad, else EOS) avoids it", stacklevel=3)
        row, what = torch.zeros_like(table[0]), "zero"
    else:
        order = {"mask": ["pad", "eos"], "pad": ["pad", "eos"], "eos": ["eos"]}[kind]
        row, what = None, ""
        for name in order + ["mean"]:
            if name == "mean":
                row, what = table.mean(0), "mean (the mean embedding)"
                break
            token = getattr(tokenizer, f"{name}_token_id", None)
            if token is None:
                note = note or f", as the tokenizer has no {name} token"
                continue
            if not bool(table[token].abs().sum() > 0):
                note = f", as the {name} row is all zero"
                continue
            row, what = table[token], f"{name} {tokenizer.convert_ids_to_tokens(int(token))}"
            break
        what += note
    base = row.to(x.dtype).expand_as(x).clone()
    base = torch.where(keep.unsqueeze(-1), x, base)
    return base, what
