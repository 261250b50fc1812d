"""The null for skip vs heads (DESIGN §6): a randomly re-initialised copy of the run's
model, explained with GPR on the same instances and settings.

Re-initialisation (seeded, ``torch.Generator``): every LayerNorm weight 1 and bias 0,
every other matrix (embeddings included) N(0, ``initializer_range``²), every other
vector 0 — BERT's own initialisation scheme, written out here so it does not depend
on the library version. A structural statistic (the skip:head count ratio, capped at
L − 1) that a random model reaches as well says nothing about what training taught.

The null's GPR costs as much as the run, so :func:`cached_null_records` keeps it in the
run directory (``null-<kind>-seed<seed>.json``, written atomically) under a key of
everything it depends on: the model's weights (sha256), the explainer's settings and
the instances. ``analyze`` and ``report`` then share one computation; a key that
differs (another model, seed or setting) recomputes and replaces the file.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, Sequence

import torch

from influence_patterns.attribution.inputs import Query
from influence_patterns.errors import InputError, OutputError
from influence_patterns.explainer import Explainer
from influence_patterns.fileio import write_json
from influence_patterns.progress import Progress, progress_bar
from influence_patterns.runs import RunRecord

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


def null_records(explainer: Any, records: Sequence[RunRecord], null: str = "random-init", seed: int = 0,
                 batch_size: int = 8, progress: Progress = None) -> list[RunRecord]:
    """GPR on ``records``' instances with the null model built from ``explainer``'s model;
    one record per instance, in order (``index``, ``task``, ``condition``, ``roles`` kept).
    ``progress``: a bar over the instances (:mod:`influence_patterns.progress`)."""
    if null not in NULLS:
        raise InputError(f"unknown null {null!r}; choose from {', '.join(NULLS)}")
    if batch_size < 1:
        raise InputError("batch_size must be at least 1")
    cfg = explainer.config
    model = random_init_copy(explainer.model, seed)
    ex = Explainer(model, explainer.tokenizer, name=f"{explainer.name} (random-init seed {seed})",
                   steps=cfg.steps, quadrature=cfg.quadrature, baseline=cfg.baseline,
                   keep_special=cfg.keep_special, max_rows=cfg.max_rows)
    out: list[RunRecord] = []
    with progress_bar(len(records), f"GPR on the {null} null", progress) as advance:
        for start in range(0, len(records), batch_size):
            chunk = records[start : start + batch_size]
            for r, e in zip(chunk, ex.explain_batch([query_of(r) for r in chunk], progress=False)):
                out.append(RunRecord(index=r.index, explanation=e, task=r.task, condition=r.condition,
                                     roles=dict(r.roles), correct=e.correct))
            advance(len(chunk))
    return out


def null_file(null: str = "random-init", seed: int = 0) -> str:
    """The file name of a cached null in a run directory."""
    return f"null-{null}-seed{seed}.json"


def model_sha256(model: torch.nn.Module) -> str:
    """sha256 over the names, dtypes and bytes of every tensor of ``model``'s state dict: the
    ``weights_sha256`` of ``models.base.fingerprint`` (what a run records in every row)."""
    from influence_patterns.models.base import fingerprint

    return fingerprint(model)["weights_sha256"]


def null_key(explainer: Any, records: Sequence[RunRecord], null: str, seed: int) -> dict[str, Any]:
    """What the null's records depend on (compared in full when a cache is read)."""
    cfg = explainer.config
    return {"null": null, "seed": seed, "model_sha256": model_sha256(explainer.model),
            "steps": cfg.steps, "quadrature": cfg.quadrature, "baseline": cfg.baseline,
            "keep_special": cfg.keep_special, "method": cfg.method,
            "instances": [[r.index, query_of(r).text] for r in records]}


def cached_null_records(explainer: Any, records: Sequence[RunRecord], run_dir: str | Path | None,
                        null: str = "random-init", seed: int = 0, batch_size: int = 8,
                        progress: Progress = None) -> list[RunRecord]:
    """:func:`null_records`, read from ``run_dir/null-<kind>-seed<seed>.json`` when that
    file holds the same key (module doc), else computed and written there. A cache that
    cannot be read is recomputed; one that cannot be written is skipped. An unknown
    ``null`` is refused by :func:`null_records` before anything is written."""
    path = Path(run_dir) / null_file(null, seed) if run_dir is not None and Path(run_dir).is_dir() else None
    key = null_key(explainer, records, null, seed) if path is not None else None
    if path is not None and path.is_file():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("key") == key:
                return [RunRecord.from_dict(d) for d in data["records"]]
        except (OSError, ValueError, KeyError, TypeError):
            pass  # unreadable: computed again below and replaced
    out = null_records(explainer, records, null, seed, batch_size, progress)
    if path is not None:
        try:
            write_json(path, {"key": key, "records": [r.to_dict() for r in out]})
        except OutputError:
            pass  # a read-only run directory: nothing cached
    return out


def query_of(record: RunRecord) -> Query:
    """The query that explains ``record``'s instance again (text, targets, label)."""
    e = record.explanation
    return Query(e.text, tuple(e.targets) if e.targets else None, e.label)
