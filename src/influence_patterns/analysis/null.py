"""The null for skip vs heads (DESIGN §6): a randomly re-initialised copy of the run's
model, explained with GPR on the same instances and settings.

Re-initialisation (seeded, ``torch.Generator``): every LayerNorm weight 1 and bias 0,
every other matrix (embeddings included) N(0, ``initializer_range``²), every other
vector 0 — BERT's own initialisation scheme, written out here so it does not depend
on the library version. A structural statistic (the skip:head count ratio, capped at
L − 1) that a random model reaches as well says nothing about what training taught.
"""

from __future__ import annotations

import copy
from typing import Any, Callable, Sequence

import torch

from influence_patterns.attribution.inputs import Query
from influence_patterns.errors import InputError
from influence_patterns.explainer import Explainer

NULLS = ("random-init",)


def random_init_copy(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """A re-initialised deep copy of ``model`` (see the module doc)."""
    out = copy.deepcopy(model)
    std = float(getattr(out.config, "initializer_range", 0.02))
    gen = torch.Generator(device="cpu").manual_seed(seed)
    with torch.no_grad():
        for name, p in out.named_parameters():
            if "LayerNorm" in name or "layer_norm" in name:
                p.fill_(1.0 if name.endswith("weight") else 0.0)
            elif p.dim() > 1:
                p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float64).mul_(std).to(p))
            else:
                p.zero_()
    return out.eval()


def null_rows(explainer: Any, rows: Sequence[dict[str, Any]], null: str = "random-init", seed: int = 0,
              batch_size: int = 8, progress: Callable[[int, int], None] | None = None) -> list[dict[str, Any]]:
    """GPR on ``rows``' instances with the null model built from ``explainer``'s model;
    rows like ``results.jsonl`` (``index``, ``roles``, ``task`` kept)."""
    if null not in NULLS:
        raise InputError(f"unknown null {null!r}; choose from {', '.join(NULLS)}")
    if batch_size < 1:
        raise InputError("batch_size must be at least 1")
    cfg = explainer.config
    model = random_init_copy(explainer.model, seed)
    ex = Explainer(model, explainer.tokenizer, name=f"{explainer.name} (random-init seed {seed})",
                   steps=cfg.steps, quadrature=cfg.quadrature, baseline=cfg.baseline,
                   keep_special=cfg.keep_special, max_rows=cfg.max_rows)
    out: list[dict[str, Any]] = []
    for start in range(0, len(rows), batch_size):
        chunk = rows[start : start + batch_size]
        queries = [Query(r["text"], tuple(r["targets"]) if r.get("targets") else None, r.get("label")) for r in chunk]
        for r, e in zip(chunk, ex.explain_batch(queries)):
            out.append({"index": r["index"], "task": r.get("task"), "roles": r.get("roles") or {},
                        **e.to_dict(), "correct": e.qoi_value > 0})
        if progress is not None:
            progress(min(start + batch_size, len(rows)), len(rows))
    return out
