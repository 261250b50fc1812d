"""The null for skip vs heads (docs/method.md#analyses): a randomly re-initialised
copy of the run's model, explained with GPR on the same instances and settings.

Two re-initialisations (seeded, ``torch.Generator``, drawn in float64):

- ``norm-matched`` (the null to use): every parameter tensor of the model (weight
  matrices, embeddings, biases and LayerNorm vectors) is replaced by independent
  N(μ, σ²) values with μ and σ its OWN trained mean and standard deviation. Heads are
  then about as loud as the trained model's (the head's contribution after W_O
  relative to the skip: :func:`head_norms`), and only what training put in the
  arrangement of the values is gone;
- ``random-init``: every LayerNorm weight 1 and bias 0, every other matrix (embeddings
  included) N(0, ``initializer_range``²), every other vector 0 — BERT's own
  initialisation scheme. Its heads are nearly silent (a head's contribution is ~3% of
  the skip's norm against 10–17% in the trained default model), so its patterns almost
  never leave their position and a verdict against it is decided in advance; kept for
  comparison, with a warning.

A structural statistic that a random model reaches as well says nothing about what
training taught.

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

import numpy as np
import torch

from influence_patterns.attribution.inputs import Query
from influence_patterns.errors import InputError, OutputError
from influence_patterns.explainer import Explainer
from influence_patterns.fileio import write_json
from influence_patterns.progress import Progress, progress_bar
from influence_patterns.runs import RunRecord

NULLS = ("norm-matched", "random-init")
#: what the report says about a null whose heads are nearly silent
SILENT_NULL_WARNING = ("the random-init null's heads are nearly silent (see head_norm: a head's contribution "
                       "is a few % of the skip's norm), so its patterns rarely move and any trained model "
                       "lands below it: use --null norm-matched")


def norm_matched_copy(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """A deep copy of ``model`` with every parameter tensor of two or more entries
    replaced by N(μ, σ²) values of its own mean μ and standard deviation σ (module doc)."""
    out = copy.deepcopy(model)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    with torch.no_grad():
        for _, p in out.named_parameters():
            if p.numel() < 2:
                continue
            v = p.detach().double()
            mu, sd = float(v.mean()), float(v.std())
            p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float64).mul_(sd).add_(mu).to(p))
    return out.eval()


def null_copy(model: torch.nn.Module, null: str, seed: int = 0) -> torch.nn.Module:
    """The null model of kind ``null`` (:data:`NULLS`)."""
    if null not in NULLS:
        raise InputError(f"unknown null {null!r}; choose from {', '.join(NULLS)}")
    return norm_matched_copy(model, seed) if null == "norm-matched" else random_init_copy(model, seed)


def head_norms(explainer: Any, records: Sequence[RunRecord], batch_size: int = 16) -> dict[str, Any] | None:
    """Per layer and head: the mean over the records' inputs and positions of
    ‖a^{l,j}_t W_O^{(j)}ᵀ‖ / ‖s^l_t‖, a head's contribution after the output projection
    relative to the skip it is added to; ``mean`` over every head (for a null, pass
    :func:`null_explainer`). On a decoder W_O is the adapter's ``output_projection``.
    ``None`` when the adapter has no linear output projection."""
    from influence_patterns.attribution.gradients import RecordNodes
    from influence_patterns.graph.hooks import intercept

    adapter = explainer.adapter
    H = adapter.num_heads
    weights = []
    for layer in adapter.layers():
        if adapter.causal:  # a decoder's W_O (GPT-2's Conv1D stores it transposed)
            dense = adapter.output_projection(layer)
            if type(dense).__name__ == "Conv1D":
                weights.append(dense.weight.detach().T)
                continue
        else:
            dense = getattr(adapter.attention_output(layer), "dense", None)
        if not isinstance(dense, torch.nn.Linear):
            return None
        weights.append(dense.weight.detach())
    sums = torch.zeros((adapter.num_layers, H), dtype=torch.float64)
    count = 0
    for start in range(0, len(records), batch_size):
        chunk = records[start : start + batch_size]
        batch = explainer.prepare([query_of(r) for r in chunk])
        rec = RecordNodes()
        with torch.no_grad(), intercept(adapter, rec):
            adapter.logits(batch.x, batch.attention_mask, batch.target_index)
        valid = batch.attention_mask.bool()
        for l, (c, sk, w) in enumerate(zip(rec.context, rec.skip, weights)):
            hd = c.shape[-1] // H
            skip_norm = sk.double().norm(dim=-1)  # (B, n)
            for j in range(H):
                contrib = c[..., j * hd : (j + 1) * hd].double() @ w[:, j * hd : (j + 1) * hd].double().T
                ratio = contrib.norm(dim=-1) / skip_norm.clamp_min(1e-12)
                sums[l, j] += ratio[valid].sum()
        count += int(valid.sum())
    per = (sums / max(count, 1)).tolist()
    return {"mean": float(np.mean(per)), "per_layer_head": per, "positions": count}


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


def null_records(explainer: Any, records: Sequence[RunRecord], null: str = "norm-matched", seed: int = 0,
                 batch_size: int = 8, progress: Progress = None) -> list[RunRecord]:
    """GPR on ``records``' instances with the null model built from ``explainer``'s model;
    one record per instance, in order (``index``, ``task``, ``condition``, ``roles`` kept).
    ``progress``: a bar over the instances (:mod:`influence_patterns.progress`)."""
    if null not in NULLS:
        raise InputError(f"unknown null {null!r}; choose from {', '.join(NULLS)}")
    if batch_size < 1:
        raise InputError("batch_size must be at least 1")
    ex = null_explainer(explainer, null, seed)
    out: list[RunRecord] = []
    with progress_bar(len(records), f"GPR on the {null} null", progress) as advance:
        for start in range(0, len(records), batch_size):
            chunk = records[start : start + batch_size]
            for r, e in zip(chunk, ex.explain_batch([query_of(r) for r in chunk], progress=False)):
                out.append(RunRecord(index=r.index, explanation=e, task=r.task, condition=r.condition,
                                     roles=dict(r.roles), correct=e.correct))
            advance(len(chunk))
    return out


def null_explainer(explainer: Any, null: str = "norm-matched", seed: int = 0) -> Explainer:
    """An explainer of the null model built from ``explainer``'s, with its settings."""
    cfg = explainer.config
    model = null_copy(explainer.model, null, seed)
    return Explainer(model, explainer.tokenizer, name=f"{explainer.name} ({null} seed {seed})",
                     steps=cfg.steps, quadrature=cfg.quadrature, baseline=cfg.baseline,
                     keep_special=cfg.keep_special, max_rows=cfg.max_rows)


def null_file(null: str = "norm-matched", seed: int = 0) -> str:
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
                        null: str = "norm-matched", seed: int = 0, batch_size: int = 8,
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
