"""Quantities of interest (docs/method.md#quantity-of-interest): a scalar per example
that an explanation is about.

A QoI maps the model output ``y`` to one number per row. Both built-in QoIs are a
difference of two logits, ``logit[pos] - logit[neg]``: for masked agreement the good
and bad word at the ``[MASK]`` position, for classification the gold and the other
class. Register another with :func:`register_qoi`; :data:`DEFAULT_QOI` names the
one a model kind uses when the configuration names none.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Protocol

from influence_patterns.registry import Registry

if TYPE_CHECKING:  # torch-free at import: the CLI lists the QoIs in its help
    import torch


class QoI(Protocol):
    name: str
    description: str

    def __call__(self, logits: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
        """``logits`` (rows, C) at the target position, ``classes`` (rows, 2) → (rows,)."""


class LogitDifference:
    """``logit[classes[:, 0]] - logit[classes[:, 1]]``."""

    def __init__(self, name: str, description: str) -> None:
        self.name = name
        self.description = description

    def __call__(self, logits: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
        picked = logits.gather(1, classes)  # (rows, 2)
        return picked[:, 0] - picked[:, 1]


QOIS: Registry[QoI] = Registry("QoI")

#: The QoI an explanation uses when ``ExplainConfig.qoi`` is not given, by model kind.
DEFAULT_QOI = {"mlm": "agreement", "classification": "classification", "causal": "next-token"}


def register_qoi(qoi: QoI) -> QoI:
    """Add a QoI to :data:`QOIS` under ``qoi.name``: the one step that adds a QoI (the
    config, the CLI's ``--qoi`` choices and accuracy all read the registry)."""
    return QOIS.register(qoi.name, qoi, qoi.description)


def get_qoi(name: str | None, kind: str = "mlm") -> QoI:
    """The QoI called ``name`` (``None``: the default for a model of ``kind``); an
    unknown name is an ``InputError`` listing the registered ones."""
    return QOIS.lookup(name if name is not None else DEFAULT_QOI[kind])


register_qoi(LogitDifference("agreement", "logit[good] - logit[bad] at the [MASK] position"))
register_qoi(LogitDifference("classification", "logit[gold] - logit[other] of the classifier"))
register_qoi(LogitDifference("next-token", "logit[good] - logit[bad] of the next token after the text (decoders)"))

QoIFn = Callable[["torch.Tensor", "torch.Tensor"], "torch.Tensor"]
