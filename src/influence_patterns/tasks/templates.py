"""Seeded template generator for subject-verb agreement (SVA) and reflexive anaphora (RA).

The sentence structures follow Marvin & Linzen (2018); the words come from
:mod:`influence_patterns.tasks.vocab`. Each instance masks the word that agrees
(a verb or a reflexive) and has ``targets = (correct form, wrong form)``.

Conditions are ``{sing|plur}_subj_{sing|plur}_attr`` where the sentence has an
attractor (the other noun) and ``{sing|plur}_subj`` where it has none. The
*subject* is always the noun the masked word must agree with (for
``sva/obj_rel_within`` and the sentential-complement tasks that is the embedded
subject; the other noun is the attractor).

Roles (indices into ``text.split()``): ``det`` and ``subject`` (the agreeing noun
and its determiner), ``attractor`` and ``attractor_det`` where there is one,
``verb`` (SVA) or ``reflexive`` (RA) for the ``[MASK]``, and by structure
``first_verb`` (the first conjunct in VP coordination), ``conj`` (``and``),
``that``, ``rel_verb`` (the verb of a relative clause that is not masked),
``main_verb`` (the main-clause verb after an object relative clause, which agrees
with the attractor), ``comp_verb`` (``said``, ``thought``...), ``prep`` (first word
of the preposition) and ``reflexive_verb`` (the verb taking the reflexive).
"""

from __future__ import annotations

import random
from typing import Callable

from influence_patterns.errors import InputError
from influence_patterns.tasks.instance import Instance
from influence_patterns.tasks.vocab import (
    PLUR_REFLEXIVE,
    SING_REFLEXIVES,
    SPLITS,
    Pair,
    Vocab,
    get_vocab,
)

MASK = "[MASK]"
NUMBERS = ("sing", "plur")
_MAX_TRIES = 200  # draws per instance before a duplicate text is accepted


def _form(pair: Pair | tuple[str, str], num: str) -> str:
    return pair[0] if num == "sing" else pair[1]


def _other(num: str) -> str:
    return "plur" if num == "sing" else "sing"


class _Sentence:
    """Words being assembled plus the index of each role."""

    def __init__(self) -> None:
        self.words: list[str] = []
        self.roles: dict[str, int] = {}
        self.targets: tuple[str, str] | None = None

    def add(self, text: str, role: str | None = None) -> None:
        """Append ``text`` (one or more words); ``role`` names its first word."""
        if role is not None:
            self.roles[role] = len(self.words)
        self.words.extend(text.split())

    def noun(self, noun: Pair, num: str, role: str) -> None:
        self.add("the", "det" if role == "subject" else f"{role}_det")
        self.add(_form(noun, num), role)

    def mask(self, good: str, bad: str, role: str) -> None:
        self.add(MASK, role)
        self.targets = (good, bad)


class _Draw:
    """Random choices from one vocabulary split."""

    def __init__(self, rng: random.Random, vocab: Vocab) -> None:
        self.rng = rng
        self.v = vocab

    def nouns(self, kinds: tuple[str, str]) -> tuple[Pair, Pair]:
        """Two nouns of the given kinds ("anim"/"inanim") with different lemmas."""
        first = self.noun(kinds[0])
        while True:
            second = self.noun(kinds[1])
            if second != first:
                return first, second

    def noun(self, kind: str) -> Pair:
        pool = self.v.animate_nouns if kind == "anim" else self.v.inanimate_nouns
        return self.rng.choice(pool)

    def kind(self) -> str:
        return self.rng.choice(("anim", "inanim"))

    def predicate(self, kind: str, past: bool = True) -> tuple[Pair, str]:
        """A predicate for a subject of ``kind``: (agreeing head, rest of the words).

        ``past=False`` keeps to present tense (``was/were`` excluded).
        """
        if kind == "anim" and self.rng.random() < 0.5:
            return self.rng.choice(self.v.intransitive_verbs), ""
        adjectives = self.v.animate_adjectives if kind == "anim" else self.v.inanimate_adjectives
        linking = [p for p in self.v.linking_verbs if past or p.sing != "was"]
        return self.rng.choice(linking), self.rng.choice(adjectives)

    def transitive(self, object_kind: str) -> Pair:
        pool = (
            self.v.transitive_animate_verbs
            if object_kind == "anim"
            else self.v.transitive_inanimate_verbs
        )
        return self.rng.choice(pool)

    def reflexives(self, num: str) -> tuple[str, str]:
        """(correct, wrong) reflexive for a subject of number ``num``."""
        sing = self.rng.choice(SING_REFLEXIVES)
        return (sing, PLUR_REFLEXIVE) if num == "sing" else (PLUR_REFLEXIVE, sing)


def _masked_predicate(s: _Sentence, d: _Draw, kind: str, num: str) -> None:
    head, rest = d.predicate(kind)
    s.mask(_form(head, num), _form(head, _other(num)), "verb")
    s.add(rest)


# --- the templates: each builds one sentence for (subject number, attractor number) ---

Builder = Callable[[_Draw, str, str], _Sentence]


def _sva_simple(d: _Draw, sn: str, an: str) -> _Sentence:
    s, kind = _Sentence(), d.kind()
    s.noun(d.noun(kind), sn, "subject")
    _masked_predicate(s, d, kind, sn)
    return s


def _sva_sent_comp(d: _Draw, sn: str, an: str) -> _Sentence:
    s, kind = _Sentence(), d.kind()
    attr, subj = d.nouns(("anim", kind))
    s.noun(attr, an, "attractor")
    s.add(d.rng.choice(d.v.complement_verbs), "comp_verb")
    s.noun(subj, sn, "subject")
    _masked_predicate(s, d, kind, sn)
    return s


def _sva_vp_coord(d: _Draw, sn: str, an: str) -> _Sentence:
    s, kind = _Sentence(), d.kind()
    s.noun(d.noun(kind), sn, "subject")
    first, rest1 = d.predicate(kind, past=False)
    while True:
        second, rest2 = d.predicate(kind, past=False)
        if (second, rest2) != (first, rest1):
            break
    s.add(_form(first, sn), "first_verb")
    s.add(rest1)
    s.add("and", "conj")
    s.mask(_form(second, sn), _form(second, _other(sn)), "verb")
    s.add(rest2)
    return s


def _sva_long_vp_coord(d: _Draw, sn: str, an: str) -> _Sentence:
    s = _Sentence()
    s.noun(d.noun("anim"), sn, "subject")
    first, second = d.rng.sample(d.v.long_vps, 2)
    s.add(_form(first, sn), "first_verb")
    s.add(first.rest)
    s.add("and", "conj")
    s.mask(_form(second, sn), _form(second, _other(sn)), "verb")
    s.add(second.rest)
    return s


def _sva_prep(d: _Draw, sn: str, an: str) -> _Sentence:
    s, kind = _Sentence(), d.kind()
    subj, attr = d.nouns((kind, d.kind()))
    s.noun(subj, sn, "subject")
    s.add(d.rng.choice(d.v.prepositions), "prep")
    s.noun(attr, an, "attractor")
    _masked_predicate(s, d, kind, sn)
    return s


def _sva_subj_rel(d: _Draw, sn: str, an: str) -> _Sentence:
    s = _Sentence()
    subj, attr = d.nouns(("anim", "anim"))
    s.noun(subj, sn, "subject")
    s.add("that", "that")
    s.add(_form(d.transitive("anim"), sn), "rel_verb")
    s.noun(attr, an, "attractor")
    _masked_predicate(s, d, "anim", sn)
    return s


def _obj_rel_across(that: bool) -> Builder:
    def build(d: _Draw, sn: str, an: str) -> _Sentence:
        s, kind = _Sentence(), d.kind()
        subj, attr = d.nouns((kind, "anim"))
        s.noun(subj, sn, "subject")
        if that:
            s.add("that", "that")
        s.noun(attr, an, "attractor")
        s.add(_form(d.transitive(kind), an), "rel_verb")
        _masked_predicate(s, d, kind, sn)
        return s

    return build


def _obj_rel_within(that: bool) -> Builder:
    def build(d: _Draw, sn: str, an: str) -> _Sentence:
        # The head noun is the attractor; the masked verb agrees with the embedded subject.
        s, kind = _Sentence(), d.kind()
        attr, subj = d.nouns((kind, "anim"))
        s.noun(attr, an, "attractor")
        if that:
            s.add("that", "that")
        s.noun(subj, sn, "subject")
        verb = d.transitive(kind)
        s.mask(_form(verb, sn), _form(verb, _other(sn)), "verb")
        head, rest = d.predicate(kind)
        s.add(_form(head, an), "main_verb")
        s.add(rest)
        return s

    return build


def _ra_simple(d: _Draw, sn: str, an: str) -> _Sentence:
    s = _Sentence()
    s.noun(d.noun("anim"), sn, "subject")
    s.add(d.rng.choice(d.v.reflexive_verbs), "reflexive_verb")
    s.mask(*d.reflexives(sn), "reflexive")
    return s


def _ra_sent_comp(d: _Draw, sn: str, an: str) -> _Sentence:
    s = _Sentence()
    attr, subj = d.nouns(("anim", "anim"))
    s.noun(attr, an, "attractor")
    s.add(d.rng.choice(d.v.complement_verbs), "comp_verb")
    s.noun(subj, sn, "subject")
    s.add(d.rng.choice(d.v.reflexive_verbs), "reflexive_verb")
    s.mask(*d.reflexives(sn), "reflexive")
    return s


def _ra_across_rel(d: _Draw, sn: str, an: str) -> _Sentence:
    s = _Sentence()
    subj, attr = d.nouns(("anim", "anim"))
    s.noun(subj, sn, "subject")
    s.add("that", "that")
    s.noun(attr, an, "attractor")
    s.add(_form(d.transitive("anim"), an), "rel_verb")
    s.add(d.rng.choice(d.v.reflexive_verbs), "reflexive_verb")
    s.mask(*d.reflexives(sn), "reflexive")
    return s


# name -> (builder, has an attractor)
_TEMPLATES: dict[str, tuple[Builder, bool]] = {
    "sva/simple": (_sva_simple, False),
    "sva/sent_comp": (_sva_sent_comp, True),
    "sva/vp_coord": (_sva_vp_coord, False),
    "sva/long_vp_coord": (_sva_long_vp_coord, False),
    "sva/prep": (_sva_prep, True),
    "sva/subj_rel": (_sva_subj_rel, True),
    "sva/obj_rel_across": (_obj_rel_across(that=True), True),
    "sva/obj_rel_within": (_obj_rel_within(that=True), True),
    "sva/obj_rel_no_that_across": (_obj_rel_across(that=False), True),
    "sva/obj_rel_no_that_within": (_obj_rel_within(that=False), True),
    "ra/simple": (_ra_simple, False),
    "ra/sent_comp": (_ra_sent_comp, True),
    "ra/across_rel": (_ra_across_rel, True),
}

TEMPLATE_TASKS: tuple[str, ...] = tuple(_TEMPLATES)


def conditions(task: str) -> list[str]:
    """The condition strings of a template task, in the order instances cycle through them."""
    _, has_attractor = _lookup(task)
    if has_attractor:
        return [f"{s}_subj_{a}_attr" for s in NUMBERS for a in NUMBERS]
    return [f"{s}_subj" for s in NUMBERS]


def _lookup(task: str) -> tuple[Builder, bool]:
    if task not in _TEMPLATES:
        raise InputError(
            f"unknown template task {task!r}; valid: {', '.join(TEMPLATE_TASKS)}"
        )
    return _TEMPLATES[task]


def generate(task: str, n: int, seed: int = 0, split: str = "all") -> list[Instance]:
    """Generate ``n`` masked agreement instances of a template ``task``.

    Instances cycle through :func:`conditions` (so each condition gets ``n // k`` or
    one more). Nouns and verbs come from the ``split`` part of the vocabulary
    (``"train"``, ``"heldout"`` or ``"all"``). The result depends only on
    ``(task, seed, split)``, and ``generate(t, m, s)`` is a prefix of
    ``generate(t, n, s)`` for ``m <= n``. Texts are distinct within one call; when
    ``n`` exceeds the number of distinct sentences the vocabulary allows (only for
    very large ``n``), duplicates are accepted rather than failing.
    """
    builder, has_attractor = _lookup(task)
    if not isinstance(n, int) or n < 0:
        raise InputError(f"n must be a non-negative integer, got {n!r}")
    if split not in SPLITS:
        raise InputError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    rng = random.Random(f"{task}|{split}|{seed}")
    draw = _Draw(rng, get_vocab(split))
    conds = conditions(task)
    seen: set[str] = set()
    out: list[Instance] = []
    for i in range(n):
        cond = conds[i % len(conds)]
        parts = cond.split("_")
        sn = parts[0]
        an = parts[2] if has_attractor else sn
        for _ in range(_MAX_TRIES):
            sent = builder(draw, sn, an)
            text = " ".join(sent.words)
            if text not in seen:
                break
        seen.add(text)
        out.append(
            Instance(
                text=text,
                targets=sent.targets,
                task=task,
                condition=cond,
                roles=dict(sent.roles),
            )
        )
    return out
