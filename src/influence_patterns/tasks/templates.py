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
``sva/conjoined`` has two subjects, ``subject`` and ``subject2`` (with
``subject2_det``; conditions ``{n}_subj_{m}_subj2``, the verb is always plural);
``sva/sent_comp_prep`` has a second attractor ``attractor2`` (``attractor2_det``)
with the first attractor's number.

Every template task is one :class:`TemplateTask` entry in :data:`TEMPLATES`: the
task registry, the Marvin & Linzen name mapping and the default models'
measurements read that table, so adding a task touches nothing else.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable

from influence_patterns.errors import InputError
from influence_patterns.tasks.instance import MASK, Instance
from influence_patterns.tasks.vocab import (
    PLUR_REFLEXIVE,
    SING_REFLEXIVES,
    SPLITS,
    Pair,
    Vocab,
    get_vocab,
)

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


def _sva_conjoined(d: _Draw, n1: str, n2: str) -> _Sentence:
    # Two conjoined nouns: the verb is plural whatever their numbers, so agreeing with the
    # first or the nearest noun is wrong whenever that noun is singular.
    s, kind = _Sentence(), d.kind()
    first, second = d.nouns((kind, kind))
    s.noun(first, n1, "subject")
    s.add("and", "conj")
    s.noun(second, n2, "subject2")
    _masked_predicate(s, d, kind, "plur")
    return s


def _sva_fronted_prep(d: _Draw, sn: str, an: str) -> _Sentence:
    # A fronted prepositional phrase: the attractor comes first, the subject is nearest.
    s, kind = _Sentence(), d.kind()
    attr, subj = d.nouns((d.kind(), kind))
    s.add(d.rng.choice(d.v.prepositions), "prep")
    s.noun(attr, an, "attractor")
    s.noun(subj, sn, "subject")
    _masked_predicate(s, d, kind, sn)
    return s


def _sva_sent_comp_prep(d: _Draw, sn: str, an: str) -> _Sentence:
    # The agreeing noun is neither the first noun (main-clause subject) nor the nearest
    # (inside a prepositional phrase); both attractors have the attractor's number.
    s, kind = _Sentence(), d.kind()
    attr, subj = d.nouns(("anim", kind))
    while True:
        attr2 = d.noun(d.kind())
        if attr2 not in (attr, subj):
            break
    s.noun(attr, an, "attractor")
    s.add(d.rng.choice(d.v.complement_verbs), "comp_verb")
    s.noun(subj, sn, "subject")
    s.add(d.rng.choice(d.v.prepositions), "prep")
    s.noun(attr2, an, "attractor2")
    _masked_predicate(s, d, kind, sn)
    return s


_ATTRACTOR_CONDITIONS = tuple(f"{s}_subj_{a}_attr" for s in NUMBERS for a in NUMBERS)
_PLAIN_CONDITIONS = tuple(f"{s}_subj" for s in NUMBERS)
_CONJOINED_CONDITIONS = tuple(f"{a}_subj_{b}_subj2" for a in NUMBERS for b in NUMBERS)


@dataclass(frozen=True)
class TemplateTask:
    """Everything about one template task, in one place: how to build a sentence, its
    conditions, how it is listed, and which Marvin & Linzen (2018) task names map to it.

    ``conditions`` name the numbers the builder gets: ``{n}_subj`` (no attractor:
    ``(n, n)``), ``{n}_subj_{m}_attr`` or ``{n}_subj_{m}_subj2`` (``(n, m)``).
    ``ml_names`` are exact M&L task names; ``ml_prefixes`` also match ``_anim`` /
    ``_inanim`` variants. ``second_np_subject``: in M&L sentences of this task the
    agreeing noun is the second noun phrase (the first is the attractor).
    """

    name: str
    build: Builder
    conditions: tuple[str, ...]
    description: str
    example: str
    example_targets: tuple[str, str]
    ml_names: tuple[str, ...] = ()
    ml_prefixes: tuple[str, ...] = ()
    second_np_subject: bool = False

    def numbers(self, condition: str) -> tuple[str, str]:
        """The two numbers ``condition`` gives the builder (subject's, other noun's)."""
        parts = condition.split("_")
        return parts[0], (parts[2] if len(parts) >= 4 else parts[0])


#: The template tasks: one entry each. The task registry, the Marvin & Linzen name
#: mapping and the default models' measurements all read this table.
TEMPLATES: tuple[TemplateTask, ...] = (
    TemplateTask(
        "sva/simple", _sva_simple, _PLAIN_CONDITIONS,
        "Subject-verb agreement, no attractor.",
        "the pilots [MASK] tall", ("are", "is"), ml_names=("simple_agrmt",),
    ),
    TemplateTask(
        "sva/sent_comp", _sva_sent_comp, _ATTRACTOR_CONDITIONS,
        "SVA in a sentential complement; the main-clause noun attracts.",
        "the nurse said the dancers [MASK]", ("laugh", "laughs"),
        ml_names=("sent_comp",), second_np_subject=True,
    ),
    TemplateTask(
        "sva/vp_coord", _sva_vp_coord, _PLAIN_CONDITIONS,
        "SVA on the second of two coordinated verbs.",
        "the actor sings and [MASK]", ("dances", "dance"), ml_names=("vp_coord",),
    ),
    TemplateTask(
        "sva/long_vp_coord", _sva_long_vp_coord, _PLAIN_CONDITIONS,
        "SVA on the second of two long coordinated verb phrases.",
        "the farmers play the piano every evening and [MASK] lunch in the park every day",
        ("eat", "eats"), ml_names=("long_vp_coord",),
    ),
    TemplateTask(
        "sva/prep", _sva_prep, _ATTRACTOR_CONDITIONS,
        "SVA across a prepositional phrase with an attractor noun.",
        "the painting near the doctors [MASK] old", ("is", "are"),
        ml_names=("prep_anim", "prep_inanim"),
    ),
    TemplateTask(
        "sva/subj_rel", _sva_subj_rel, _ATTRACTOR_CONDITIONS,
        "SVA across a subject relative clause.",
        "the poets that like the judge [MASK]", ("smile", "smiles"), ml_names=("subj_rel",),
    ),
    TemplateTask(
        "sva/obj_rel_across", _obj_rel_across(that=True), _ATTRACTOR_CONDITIONS,
        "SVA across an object relative clause with 'that'.",
        "the car that the drivers want [MASK] cheap", ("is", "are"),
        ml_prefixes=("obj_rel_across",),
    ),
    TemplateTask(
        "sva/obj_rel_within", _obj_rel_within(that=True), _ATTRACTOR_CONDITIONS,
        "SVA of the verb inside an object relative clause with 'that'.",
        "the artists that the clerk [MASK] are rich", ("trusts", "trust"),
        ml_prefixes=("obj_rel_within",), second_np_subject=True,
    ),
    TemplateTask(
        "sva/obj_rel_no_that_across", _obj_rel_across(that=False), _ATTRACTOR_CONDITIONS,
        "SVA across an object relative clause without 'that'.",
        "the singer the soldiers help [MASK] tired", ("is", "are"),
        ml_prefixes=("obj_rel_no_comp_across",),
    ),
    TemplateTask(
        "sva/obj_rel_no_that_within", _obj_rel_within(that=False), _ATTRACTOR_CONDITIONS,
        "SVA inside an object relative clause without 'that'.",
        "the books the students [MASK] look new", ("need", "needs"),
        ml_prefixes=("obj_rel_no_comp_within",), second_np_subject=True,
    ),
    TemplateTask(
        "ra/simple", _ra_simple, _PLAIN_CONDITIONS,
        "Reflexive anaphora agreement, no attractor.",
        "the surgeons doubted [MASK]", ("themselves", "himself"), ml_names=("simple_reflexives",),
    ),
    TemplateTask(
        "ra/sent_comp", _ra_sent_comp, _ATTRACTOR_CONDITIONS,
        "Reflexive in a sentential complement; the main-clause noun attracts.",
        "the officers thought the mayor hurt [MASK]", ("herself", "themselves"),
        ml_names=("reflexive_sent_comp",), second_np_subject=True,
    ),
    TemplateTask(
        "ra/across_rel", _ra_across_rel, _ATTRACTOR_CONDITIONS,
        "Reflexive across an object relative clause.",
        "the judge that the poets fear defended [MASK]", ("himself", "themselves"),
        ml_names=("reflexives_across",),
    ),
    # Constructions no default model is trained on; a first- or nearest-noun shortcut
    # gives the wrong number in some of their conditions.
    TemplateTask(
        "sva/conjoined", _sva_conjoined, _CONJOINED_CONDITIONS,
        "SVA with two conjoined subjects: always plural.",
        "the pilot and the doctor [MASK] tall", ("are", "is"),
    ),
    TemplateTask(
        "sva/fronted_prep", _sva_fronted_prep, _ATTRACTOR_CONDITIONS,
        "SVA after a fronted prepositional phrase; its noun attracts.",
        "near the doctors the painting [MASK] old", ("is", "are"),
    ),
    TemplateTask(
        "sva/sent_comp_prep", _sva_sent_comp_prep, _ATTRACTOR_CONDITIONS,
        "SVA in a complement across a PP: neither first nor nearest noun agrees.",
        "the nurse said the dancers near the actor [MASK] tired", ("are", "is"),
    ),
)

_BY_NAME: dict[str, TemplateTask] = {t.name: t for t in TEMPLATES}

TEMPLATE_TASKS: tuple[str, ...] = tuple(_BY_NAME)


def template_task(task: str) -> TemplateTask:
    """The table entry of a template task; :class:`InputError` listing the valid names otherwise."""
    if task not in _BY_NAME:
        raise InputError(
            f"unknown template task {task!r}; valid: {', '.join(TEMPLATE_TASKS)}"
        )
    return _BY_NAME[task]


def conditions(task: str) -> list[str]:
    """The condition strings of a template task, in the order instances cycle through them."""
    return list(template_task(task).conditions)


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
    spec = template_task(task)
    if not isinstance(n, int) or n < 0:
        raise InputError(f"n must be a non-negative integer, got {n!r}")
    if split not in SPLITS:
        raise InputError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    rng = random.Random(f"{task}|{split}|{seed}")
    draw = _Draw(rng, get_vocab(split))
    conds = spec.conditions
    seen: set[str] = set()
    out: list[Instance] = []
    for i in range(n):
        cond = conds[i % len(conds)]
        sn, an = spec.numbers(cond)
        for _ in range(_MAX_TRIES):
            state = rng.getstate()
            sent = spec.build(draw, sn, an)
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
                counterfactual=_counterfactual(spec, draw, state, sent, sn, an),
            )
        )
    return out


def _counterfactual(spec: TemplateTask, draw: _Draw, state: object, sent: _Sentence, sn: str, an: str) -> str | None:
    """The sentence drawn again from the same generator state with the subject's number
    flipped and the attractor's kept: the same words and roles, the answer flipped
    (its correct form is ``sent.targets[1]``). ``None`` when the flip does not flip the
    answer (``sva/conjoined`` is always plural) or changes the words' count. The
    generator continues from where it was, so the instances themselves do not change."""
    rng = draw.rng
    after = rng.getstate()
    rng.setstate(state)
    try:
        other = spec.build(draw, _other(sn), an)
    finally:
        rng.setstate(after)
    if sent.targets is None or other.targets != sent.targets[::-1] or other.roles != sent.roles:
        return None
    if len(other.words) != len(sent.words):
        return None
    return " ".join(other.words)
