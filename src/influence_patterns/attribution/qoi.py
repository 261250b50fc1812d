"""Quantities of interest (DESIGN §2): a scalar per example that an explanation is about.

A QoI maps the model output ``y`` to one number per row. Both built-in QoIs are a
difference of two logits, ``logit[pos] - logit[neg]``: for masked agreement the good
and bad word at the ``[MASK]`` position, for classification the gold and the other
class. Register another with :func:`register_qoi`.
"""

from __future__ import annotations

from typing import Callable, Protocol

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


QOIS: dict[str, QoI] = {}


def register_qoi(qoi: QoI) -> QoI:
    """Add a QoI to the registry under ``qoi.name``."""
    QOIS[qoi.name] = qoi
    return qoi


def get_qoi(name: str) -> QoI:
    try:
        return QOIS[name]
    except KeyError:
        raise KeyError(f"unknown QoI {name!r}; known: {', '.join(QOIS)}") from None


register_qoi(LogitDifference("agreement", "logit[good] - logit[bad] at the [MASK] position"))
register_qoi(LogitDifference("classification", "logit[gold] - logit[other] of the classifier"))

QoIFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
