"""How explanations are computed: :class:`ExplainConfig` (the GPR methods it names are
in ``search.methods``). Torch-free, so the CLI reads its choices and help from here at start-up."""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any

from influence_patterns.attribution.baselines import BASELINES
from influence_patterns.attribution.qoi import QOIS
from influence_patterns.attribution.quadrature import DEFAULT_QUADRATURE, QUADRATURES, default_steps
from influence_patterns.errors import InputError
from influence_patterns.search.methods import GPR_METHODS

#: The most quadrature points (or Riemann steps) an explanation may use. Gauss–Legendre
#: converges by 32 points and the paper's Riemann rule uses 50; 10,000 is already
#: hundreds of times the cost of either, and larger values only hang or run out of memory.
MAX_STEPS = 10_000


def check_steps(steps: Any) -> int | None:
    """``steps`` as an int in 1..MAX_STEPS (``None``: the rule's default). A fraction
    such as 4.5 is refused, never truncated."""
    if steps is None:
        return None
    if isinstance(steps, bool) or not isinstance(steps, numbers.Integral):
        if isinstance(steps, float) and steps.is_integer() and abs(steps) <= MAX_STEPS:
            steps = int(steps)
        else:
            raise InputError(f"steps must be a whole number in 1..{MAX_STEPS:,}, got {steps!r}")
    if steps < 1:
        raise InputError(f"steps must be at least 1, got {steps}")
    if steps > MAX_STEPS:
        raise InputError(f"steps must be at most {MAX_STEPS:,} (Gauss–Legendre converges by 32 points), got {steps}")
    return int(steps)


@dataclass
class ExplainConfig:
    """How explanations are computed. ``steps`` is the number of Gauss–Legendre points
    (default 32) or m of the paper's Riemann rule (m+1 points; default 50 with
    ``quadrature="riemann"``)."""

    steps: int | None = None
    baseline: str = "mask"
    keep_special: bool = False
    quadrature: str | None = DEFAULT_QUADRATURE
    method: str = "fast"
    max_rows: int | None = None  # rows per backward pass (fast: α; fast-full: source × α); None: auto
    qoi: str | None = None  # a name in attribution.qoi.QOIS; None: the model kind's default

    def validate(self) -> None:
        """Check every named choice against its registry (one line listing the valid names)."""
        self.quadrature = QUADRATURES.check(self.quadrature or DEFAULT_QUADRATURE)  # None: the default rule
        self.steps = default_steps(check_steps(self.steps), self.quadrature)
        BASELINES.check(self.baseline)
        GPR_METHODS.check(self.method)
        if self.qoi is not None:
            QOIS.check(self.qoi)
        if self.max_rows is not None:
            if isinstance(self.max_rows, bool) or not isinstance(self.max_rows, numbers.Integral):
                raise InputError(f"max_rows must be a whole number of rows, got {self.max_rows!r}")
            self.max_rows = int(self.max_rows)
            if self.max_rows < 1:
                raise InputError(f"max_rows must be positive, got {self.max_rows}")
