"""Instances checked against a model before any work: the right kind of target for the
model, and counterfactuals as long as their texts. Each problem is one ``DataError``
naming the file and the line the instance was read from (``Instance.origin``)."""

from __future__ import annotations

from typing import Any, Sequence

from influence_patterns.errors import DataError
from influence_patterns.tasks.instance import Instance


def check_instances(kind: str, tokenizer: Any, instances: Sequence[Instance]) -> None:
    """``kind`` is the model's (``mlm``, ``causal`` or ``classification``): a masked or causal
    LM needs targets, a classifier labels (or none: its prediction); a counterfactual must
    tokenize to as many word pieces as its text."""
    for inst in instances:
        where = inst.where()
        if kind == "mlm" and inst.targets is None:
            raise DataError(f"{where}a label on a masked LM: a masked LM needs targets (good and bad words "
                            "for a [MASK]), and label-only rows need a classifier (--model default-sst2, say)")
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
