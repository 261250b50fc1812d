"""Roles given as word indices of a sentence, mapped to the explanation's token indices."""

from __future__ import annotations

import re
from typing import Any, Sequence

def role_token_indices(tokenizer: Any, text: str, roles: dict[str, int], tokens: Sequence[str]) -> dict[str, int]:
    """Map roles given as WORD indices of ``text.split()`` to the index of that word's
    first word piece in ``tokens`` (the explanation's tokens, specials included).

    A fast tokenizer's character offsets place each word (any scheme: WordPiece,
    byte-level BPE, SentencePiece); otherwise the words are tokenized one by one as
    they stand in the sentence. ``[MASK]`` is read as the tokenizer's own mask token.
    Roles that cannot be placed are left out.
    """
    if not roles:
        return {}
    from influence_patterns.attribution.inputs import with_mask_token  # torch loads on first use

    text = with_mask_token(tokenizer, text)
    first = _first_pieces_by_offsets(tokenizer, text, tokens) or _first_pieces_by_words(tokenizer, text, tokens)
    return {role: first[int(w)] for role, w in roles.items() if int(w) in first}


def _first_pieces_by_offsets(tokenizer: Any, text: str, tokens: Sequence[str]) -> dict[int, int]:
    if not getattr(tokenizer, "is_fast", False):
        return {}
    enc = tokenizer(text, add_special_tokens=True, return_offsets_mapping=True)
    if tokenizer.convert_ids_to_tokens(enc["input_ids"]) != list(tokens):
        return {}
    special = set(tokenizer.all_special_ids) - {tokenizer.mask_token_id}
    first: dict[int, int] = {}
    spans = [m.span() for m in re.finditer(r"\S+", text)]
    for w, (a, b) in enumerate(spans):
        for t, ((s, e), i) in enumerate(zip(enc["offset_mapping"], enc["input_ids"])):
            if e > s and s < b and e > a and i not in special:
                first[w] = t
                break
    return first if len(first) == len(spans) else {}


def _first_pieces_by_words(tokenizer: Any, text: str, tokens: Sequence[str]) -> dict[int, int]:
    starts = {getattr(tokenizer, "cls_token", None), getattr(tokenizer, "bos_token", None)} - {None}
    offset = 1 if tokens and tokens[0] in starts else 0
    specials = set(getattr(tokenizer, "all_special_tokens", ()))
    first: dict[int, int] = {}
    pieces: list[str] = []
    for w, word in enumerate(text.split()):
        first[w] = offset + len(pieces)
        if word in specials:
            pieces.append(word)
        else:  # after the first word, as it stands in the sentence (byte-level BPE marks the space)
            pieces += tokenizer.tokenize(word if w == 0 else " " + word)
    if list(tokens[offset : offset + len(pieces)]) != pieces:
        return {}
    return first
