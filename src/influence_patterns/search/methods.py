"""The GPR methods by name: ``ExplainConfig.method`` and ``--method`` choose from
:data:`GPR_METHODS`.

Every method has one calling convention, ``(adapter, batch, quadrature, qoi, max_rows,
advance)`` → per sentence of the batch, the :class:`~influence_patterns.search.common.SourceSearch`
of each source token; ``max_rows`` ``None`` sizes the chunks to free memory and
``advance(k)`` is called as k source tokens are done. Adding a method is one function
and one ``GPR_METHODS.register`` call. This module imports torch only when a method
runs, so the CLI can list the methods in its help at start-up.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from influence_patterns.registry import Registry

if TYPE_CHECKING:
    from influence_patterns.attribution.inputs import Batch
    from influence_patterns.search.common import SourceSearch

#: The calling convention of a GPR method (see the module's docstring).
GPRMethod = Callable[..., "list[list[SourceSearch]]"]


def run_fast(adapter: Any, batch: Batch, quad: Any, qoi: Any, max_rows: int | None,
             advance: Callable[[int], None] | None = None) -> list[list[SourceSearch]]:
    """``fast``: single-position tangents (``search.fast``); ``max_rows`` α rows per
    backward pass."""
    from influence_patterns.search.fast import gpr_fast
    from influence_patterns.search.memory import auto_max_rows

    max_rows = max_rows or auto_max_rows(adapter, int(batch.x.shape[1]))
    return gpr_fast(adapter, batch, quad, qoi, max_rows, advance)


def run_full_width(adapter: Any, batch: Batch, quad: Any, qoi: Any, max_rows: int | None,
                   advance: Callable[[int], None] | None = None) -> list[list[SourceSearch]]:
    """``fast-full``: the earlier full-width tangents (``search.full_width``);
    ``max_rows`` (source × α) rows per pass."""
    from influence_patterns.search.full_width import gpr_full_width
    from influence_patterns.search.memory import auto_max_rows

    max_rows = max_rows or auto_max_rows(adapter, int(batch.x.shape[1]))
    return gpr_full_width(adapter, batch, quad, qoi, max_rows, advance)


def run_reference(adapter: Any, batch: Batch, quad: Any, qoi: Any, max_rows: int | None,
                  advance: Callable[[int], None] | None = None) -> list[list[SourceSearch]]:
    """``reference``: the literal search, one restricted IG per candidate
    (``search.reference``); ``max_rows`` is not used."""
    from influence_patterns.search.reference import gpr_reference

    return gpr_reference(adapter, batch, quad, qoi, advance)


GPR_METHODS: Registry[GPRMethod] = Registry("GPR method")
GPR_METHODS.register("fast", run_fast, "single-position tangents: about a few IGs per sentence; the default")
GPR_METHODS.register("fast-full", run_full_width, "the earlier full-width tangents, kept for benchmarks")
GPR_METHODS.register("reference", run_reference, "the literal, slow search")
