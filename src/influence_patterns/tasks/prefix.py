"""Tasks for causal decoders (docs/decoders.md, "Tasks"): prefix forms of the agreement
and reflexive tasks, and indirect-object identification (IOI).

A decoder predicts the next word, so a masked instance becomes its text up to the
``[MASK]`` with the same two targets, now continuations: "the keys to the cabinet
[MASK] here" → "the keys to the cabinet" → are / is. Roles keep their word indices
(all before the cut); the masked word's role is dropped and ``end`` names the last
word (the target position). Every template task ``T`` has a prefix twin
``prefix/T``; with ``data`` (a Marvin & Linzen TSV, or instances) each pair becomes a
prefix and two continuations the same way.

IOI (Wang et al. 2022): "When Mary and John went to the store, John gave a drink to"
→ Mary / John. Roles: ``IO`` (the indirect object, the right answer), ``S1`` and ``S2``
(the subject's two mentions), ``END`` (the last word, "to"). Balanced: the names come
in the order IO, S (ABBA) or S, IO (BABA), alternating instance by instance, with the
project's own names, places and objects. Counterfactual (answer flipped, for interchange
interventions): S2 replaced by the IO's name; a prefix twin's counterfactual is the prefix
of its masked counterfactual.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Callable

from influence_patterns.errors import DataError, InputError
from influence_patterns.tasks.instance import MASK, Instance

#: Role of the masked word in the masked tasks (dropped in the prefix form).
_MASKED_ROLES = ("verb", "reflexive")


def to_prefix(inst: Instance) -> Instance:
    """The prefix form of a masked instance: the words before its ``[MASK]``, the same
    targets, the roles before the cut, and ``end`` (the last word)."""
    words = inst.text.split()
    if words.count(MASK) != 1:
        raise DataError(f"{inst.text!r}: a prefix form needs exactly one {MASK} (found {words.count(MASK)})")
    cut = words.index(MASK)
    if cut == 0:
        raise DataError(f"{inst.text!r}: the {MASK} is the first word; there is no prefix to continue")
    roles = {r: i for r, i in inst.roles.items() if i < cut and r not in _MASKED_ROLES}
    roles["end"] = cut - 1
    return Instance(" ".join(words[:cut]), inst.targets, inst.label, inst.task and f"prefix/{inst.task}",
                    inst.condition, roles, _prefix_counterfactual(inst.counterfactual, cut))


def _prefix_counterfactual(counterfactual: str | None, cut: int) -> str | None:
    """The counterfactual's words before its ``[MASK]`` when the mask is at the same word
    as the instance's (the prefix forms then align word for word), else ``None``."""
    if counterfactual is None:
        return None
    words = counterfactual.split()
    if words.count(MASK) != 1 or words.index(MASK) != cut:
        return None
    return " ".join(words[:cut])


def prefix_loader(masked: Callable[..., list[Instance]]) -> Callable[..., list[Instance]]:
    """A loader of prefix instances from the loader of their masked forms."""

    def load(n: int | None, seed: int = 0, data: str | Path | None = None) -> list[Instance]:
        return [to_prefix(inst) for inst in masked(n, seed, data)]

    return load


# --- IOI ------------------------------------------------------------------------------------
#: Names, places and objects of the project's own IOI sentences (common first names, so a
#: byte-level BPE keeps each one token with its leading space).
IOI_NAMES = ("Mary", "John", "Anna", "Paul", "Sarah", "James", "Kate", "Tom", "Laura", "David", "Emma", "Mark",
             "Lucy", "Peter", "Alice", "Sam", "Rose", "Mike", "Jane", "Adam")
IOI_PLACES = ("store", "park", "school", "garden", "office", "market", "station", "library", "beach", "house")
IOI_OBJECTS = ("drink", "book", "ring", "letter", "key", "bag", "ball", "flower", "gift", "coin")
#: Templates: {A} {B} the two names in order, {S} the subject's second mention.
IOI_TEMPLATES = (
    "When {A} and {B} went to the {place}, {S} gave a {object} to",
    "After {A} and {B} went to the {place}, {S} gave a {object} to",
    "When {A} and {B} arrived at the {place}, {S} handed a {object} to",
    "While {A} and {B} were working at the {place}, {S} gave a {object} to",
    "Then {A} and {B} went to the {place}, and {S} gave a {object} to",
)


def ioi_instances(n: int | None, seed: int = 0, data: str | Path | None = None) -> list[Instance]:
    """``n`` IOI instances, ABBA and BABA alternating, deterministic in ``seed``."""
    if data is not None:
        from influence_patterns.tasks.loaders import load_instances

        return [inst for inst in load_instances(data) if not inst.task or inst.task == "ioi"][: n or None]
    if n is None:
        raise InputError("task ioi generates instances: give a number n")
    if not isinstance(n, int) or n < 0:
        raise InputError(f"n must be a non-negative integer, got {n!r}")
    rng = random.Random(f"ioi|{seed}")
    out = []
    for i in range(n):
        io, s = rng.sample(IOI_NAMES, 2)
        order = "ABBA" if i % 2 == 0 else "BABA"
        a, b = (io, s) if order == "ABBA" else (s, io)
        template = IOI_TEMPLATES[rng.randrange(len(IOI_TEMPLATES))]
        text = template.format(A=a, B=b, S=s, place=rng.choice(IOI_PLACES), object=rng.choice(IOI_OBJECTS))
        words = text.split()
        first = [k for k, w in enumerate(words) if w.strip(",") in (a, b)][:2]
        s2 = [k for k, w in enumerate(words) if w.strip(",") == s][-1]
        io_at, s1_at = (first[0], first[1]) if order == "ABBA" else (first[1], first[0])
        roles = {"IO": io_at, "S1": s1_at, "S2": s2, "END": len(words) - 1}
        # counterfactual: the subject's second mention is the IO's name ("..., Mary gave a
        # drink to" → John), so the answer flips; the same words elsewhere
        flipped = words[:s2] + [words[s2].replace(s, io)] + words[s2 + 1:]
        out.append(Instance(text, (io, s), None, "ioi", order, roles, " ".join(flipped)))
    return out
