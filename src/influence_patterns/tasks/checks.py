"""Instances checked against a model before any work: the right kind of target for the
model, and counterfactuals as long as their texts. Each problem is one ``DataError``
naming the file and the line the instance was read from (``Instance.origin``)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, MutableSequence, Sequence

from influence_patterns.errors import DataError
from influence_patterns.tasks.instance import MASK, Instance


def check_instances(kind: str, tokenizer: Any, instances: Sequence[Instance]) -> None:
    """``kind`` is the model's (``mlm``, ``causal`` or ``classification``): a masked or causal
    LM needs targets, a classifier labels (or none: its prediction); a counterfactual must
    tokenize to as many word pieces as its text."""
    for inst in instances:
        where = inst.where()
        if kind == "mlm" and inst.targets is None:
            raise DataError(f"{where}a label on a masked LM: a masked LM needs targets (good and bad words "
                            "for a [MASK]), and label-only rows need a classifier (--model default-sst2, say)")
        if kind == "mlm" and MASK not in inst.text.split():
            raise DataError(f"{where}a prefix row (no {MASK}: good/bad continue the text) on a masked LM: "
                            f"prefix rows are for a causal LM (--model default-clm, say); for a masked LM "
                            f"put one {MASK} where good/bad go")
        if kind == "causal" and inst.targets is None:
            raise DataError(f"{where}a label on a causal LM: a causal LM needs targets (two continuations of "
                            "the text), and label-only rows need a classifier (--model default-sst2, say)")
        if kind not in ("mlm", "causal") and inst.targets is not None:
            raise DataError(f"{where}targets on a classifier: good/bad targets need a masked LM "
                            "(--model default-mlm, say); a classifier's rows give a label")
    if tokenizer is None:
        return
    from influence_patterns.attribution.inputs import with_mask_token

    for inst in instances:
        if inst.counterfactual is None:
            continue
        a = len(tokenizer.tokenize(with_mask_token(tokenizer, inst.text)))
        b = len(tokenizer.tokenize(with_mask_token(tokenizer, inst.counterfactual)))
        if a != b:
            raise DataError(f"{inst.where()}a counterfactual of another length: the text is {a} word pieces, "
                            f"the counterfactual {b}; they must align piece for piece")


def drop_unaligned_counterfactuals(tokenizer: Any, instances: MutableSequence[Instance]) -> int:
    """A generated instance (no ``origin``: a template or IOI task) whose counterfactual
    does not tokenize to as many pieces as its text under this tokenizer (a plural
    that is two BPE pieces, say) loses it, in place: its interchange is then "not
    measurable" instead of the run refused. A file's counterfactuals are left for
    :func:`check_instances` to refuse. Returns how many were dropped."""
    if tokenizer is None:
        return 0
    from influence_patterns.attribution.inputs import with_mask_token

    dropped = 0
    for k, inst in enumerate(instances):
        if inst.counterfactual is None or inst.origin:
            continue
        a = len(tokenizer.tokenize(with_mask_token(tokenizer, inst.text)))
        if a != len(tokenizer.tokenize(with_mask_token(tokenizer, inst.counterfactual))):
            instances[k] = replace(inst, counterfactual=None)
            dropped += 1
    return dropped


def prefix_forms(kind: str, instances: MutableSequence[Instance]) -> int:
    """On a causal LM (``kind == "causal"``), every masked instance with targets is
    replaced, in place, by its prefix form (:func:`influence_patterns.tasks.prefix.to_prefix`:
    the words before the ``[MASK]``, the same targets as continuations), as
    ``accuracy --data`` reads masked pairs on a decoder; a row whose ``[MASK]`` is its
    first word is one ``DataError`` naming its file and line. Returns how many changed."""
    if kind != "causal":
        return 0
    from influence_patterns.tasks.prefix import to_prefix

    changed = 0
    for k, inst in enumerate(instances):
        if inst.targets is None or MASK not in inst.text.split():
            continue
        try:
            instances[k] = replace(to_prefix(inst), origin=inst.origin)
        except DataError as exc:
            raise DataError(f"{inst.where()}{exc}") from None
        changed += 1
    return changed
