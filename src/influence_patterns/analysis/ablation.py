"""Ablation (DESIGN §6): remove, or keep only, the nodes an explanation names, and
measure what happens to the QoI and the accuracy.

For an instance and a method, the *node set* is the union, over the explained source
tokens (every source token, or only a role's token with ``sources="subject"``), of
the method's nodes ``(layer l, position t, head j or skip)``, l = 1..L.

- remove: in every layer l, the context vector of head j at position t (its slice of
  a^l before W_O) is zeroed for each node (l, t, j); for a skip node the skip s^l_t
  (the residual carried around the attention sublayer) is zeroed;
- keep only: at every position t that the node set touches in layer l, every head
  context and the skip at (l, t) is zeroed except the nodes themselves; positions
  not touched are left alone.

Both run on the real input (no interpolation), via an :class:`Interceptor`. Per
method, over the N instances with q = QoI before, q⁻ after removal, q⁺ after
keeping only:

- ``comprehensiveness`` = mean(q - q⁻): the QoI drop when the nodes are removed;
- ``sufficiency`` = mean(q⁺) / mean(q): the share of the QoI retained when only the
  nodes are kept (``None`` when mean(q) = 0);
- ``accuracy_after_removal`` = share of instances with q⁻ > 0 (and
  ``accuracy_kept`` with q⁺ > 0);
- ``nodes``: mean size of the node set per instance.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from influence_patterns.analysis.baselines import METHODS, MethodInput, NodePath, get_method
from influence_patterns.errors import DataError, InputError
from influence_patterns.graph.hooks import Interceptor, intercept

ABLATION_FILE = "ablation.json"
DEFAULT_METHODS = tuple(METHODS)


class Ablate(Interceptor):
    """Multiply every head context and skip by a per-row, per-position mask."""

    def __init__(self, head_masks: torch.Tensor, skip_masks: torch.Tensor) -> None:
        self.head_masks = head_masks  # (L, B, n, H)
        self.skip_masks = skip_masks  # (L, B, n)

    def on_attn(self, layer, context, skip):
        hm = self.head_masks[layer - 1].to(context.dtype)
        head_dim = context.shape[-1] // hm.shape[-1]
        context = context * hm.repeat_interleave(head_dim, dim=-1)
        skip = skip * self.skip_masks[layer - 1].to(skip.dtype)[..., None]
        return context, skip


NodeSet = set[tuple[int, int, "int | None"]]


def node_set(paths: Sequence[NodePath], sources: set[int] | None = None) -> NodeSet:
    """Union of the paths' nodes (of the paths whose source is in ``sources``, if given)."""
    out: NodeSet = set()
    for p in paths:
        if sources is None or p.source in sources:
            out.update(p.nodes())
    return out


def ablation_masks(sets: Sequence[NodeSet], L: int, n: int, H: int, keep: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(L, B, n, H) head masks and (L, B, n) skip masks: 0 where a node is cut."""
    B = len(sets)
    heads = torch.ones(L, B, n, H)
    skips = torch.ones(L, B, n)
    for b, nodes in enumerate(sets):
        if keep:
            for l, t, _ in nodes:
                heads[l - 1, b, t] = 0
                skips[l - 1, b, t] = 0
            for l, t, j in nodes:
                if j is None:
                    skips[l - 1, b, t] = 1
                else:
                    heads[l - 1, b, t, j] = 1
        else:
            for l, t, j in nodes:
                if j is None:
                    skips[l - 1, b, t] = 0
                else:
                    heads[l - 1, b, t, j] = 0
    return heads, skips


def ablated_qoi(ctx: MethodInput, sets: Sequence[NodeSet], keep: bool) -> torch.Tensor:
    """The QoI of every sentence of ``ctx.batch`` with its node set removed / kept alone."""
    adapter, batch = ctx.adapter, ctx.batch
    heads, skips = ablation_masks(sets, adapter.num_layers, batch.x.shape[1], adapter.num_heads, keep)
    device = batch.x.device
    with torch.no_grad(), intercept(adapter, Ablate(heads.to(device), skips.to(device))):
        logits = adapter.logits(batch.x, batch.attention_mask, batch.target_index)
    return ctx.qoi(logits, batch.classes).double().cpu()


def _mean(xs: Sequence[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def ablate_rows(
    explainer: Any,
    rows: list[dict[str, Any]],
    methods: Sequence[str] = DEFAULT_METHODS,
    sources: str = "all",
    steps: int | None = None,
    batch_size: int = 8,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
    max_rows: int | None = None,
    quadrature: str | None = None,
) -> dict[str, Any]:
    """Ablate the node sets of ``methods`` on result ``rows`` (see the module doc).
    ``max_rows``: (source × α) rows per pass of the IG-based baselines (default: the
    explainer's setting, else sized to free memory). ``steps``/``quadrature``: the
    IG-based baselines' rule (default: the explainer's)."""
    from influence_patterns.attribution.inputs import Query
    from influence_patterns.attribution.qoi import get_qoi
    from influence_patterns.attribution.quadrature import make_quadrature

    chosen = [get_method(m) for m in methods]
    if not chosen:
        raise InputError("no methods to ablate")
    if sources != "all" and not any(sources in (r.get("roles") or {}) for r in rows):
        raise InputError(f"no instance of the run has the role {sources!r}")
    used = [r for r in rows if sources == "all" or sources in (r.get("roles") or {})]
    qoi = get_qoi("agreement" if explainer.kind == "mlm" else "classification")
    q_all: list[float] = []
    removed: dict[str, list[float]] = {m.name: [] for m in chosen}
    kept: dict[str, list[float]] = {m.name: [] for m in chosen}
    sizes: dict[str, list[int]] = {m.name: [] for m in chosen}
    for start in range(0, len(used), batch_size):
        chunk = used[start : start + batch_size]
        queries = [Query(r["text"], tuple(r["targets"]) if r.get("targets") else None, r.get("label")) for r in chunk]
        batch = explainer.prepare(queries)
        for b, row in enumerate(chunk):
            if batch.tokens[b] != list(row["tokens"]):
                raise DataError(
                    f"instance {row.get('index')}: the model's tokenizer gives {batch.tokens[b]}, "
                    f"the run has {row['tokens']} (ablate with the run's model)"
                )
        quad = make_quadrature(
            steps if steps is not None else explainer.config.steps,
            quadrature or explainer.config.quadrature, dtype=batch.x.dtype,
        )
        rows_per_pass = max_rows or getattr(explainer.config, "max_rows", None)
        if rows_per_pass is None:
            from influence_patterns.search.memory import auto_max_rows

            rows_per_pass = auto_max_rows(explainer.adapter, int(batch.x.shape[1]))
        ctx = MethodInput(explainer.adapter, batch, chunk, quad, qoi, seed=seed, max_rows=rows_per_pass)
        with torch.no_grad():
            logits = explainer.adapter.logits(batch.x, batch.attention_mask, batch.target_index)
        q_all += qoi(logits, batch.classes).double().cpu().tolist()
        for m in chosen:
            paths = m.paths(ctx)
            sets = []
            for b, row in enumerate(chunk):
                wanted = None if sources == "all" else {int(row["roles"][sources])}
                sets.append(node_set(paths[b], wanted))
            removed[m.name] += ablated_qoi(ctx, sets, keep=False).tolist()
            kept[m.name] += ablated_qoi(ctx, sets, keep=True).tolist()
            sizes[m.name] += [len(s) for s in sets]
        if progress is not None:
            progress(min(start + batch_size, len(used)), len(used))

    mean_q = _mean(q_all)
    out_methods = []
    for m in chosen:
        qr, qk = removed[m.name], kept[m.name]
        out_methods.append({
            "name": m.name,
            "group": m.group,
            "comprehensiveness": _mean([a - b for a, b in zip(q_all, qr)]),
            "sufficiency": (_mean(qk) / mean_q) if mean_q else None,
            "accuracy_after_removal": _mean([float(v > 0) for v in qr]),
            "qoi_after_removal": _mean(qr),
            "qoi_kept": _mean(qk),
            "accuracy_kept": _mean([float(v > 0) for v in qk]),
            "nodes": _mean(sizes[m.name]),
        })
    return {
        "instances": len(used),
        "sources": sources,
        "qoi": mean_q,
        "accuracy": _mean([float(v > 0) for v in q_all]),
        "methods": out_methods,
    }


def ablate_run(
    path: str | Path,
    methods: Sequence[str] = DEFAULT_METHODS,
    sources: str = "all",
    batch_size: int = 8,
    seed: int = 0,
    device: str = "auto",
    model: str | None = None,
    explainer: Any = None,
    save: bool = True,
    progress: Callable[[int, int], None] | None = None,
    max_rows: int | None = None,
) -> dict[str, Any]:
    """Ablation of a run directory for each method (definitions: module doc and
    docs/analyses.md). The model is the run's (``run.json``) unless ``model`` or
    ``explainer`` is given; IG-based baselines use the run's ``steps`` and baseline.
    With ``save`` the result is also written to ``DIR/ablation.json`` (``sources="all"``)
    or ``DIR/ablation-<role>.json``.

    Returns ``{"run", "instances", "sources", "qoi", "accuracy", "methods": [{"name",
    "comprehensiveness", "sufficiency", "accuracy_after_removal", ...}]}``.
    """
    from influence_patterns.runs import read_run

    rows, meta = read_run(path)
    if not rows:
        raise DataError(f"{path} has no results yet")
    # runs written before Gauss–Legendre became the default recorded "riemann"
    quadrature = str(meta.get("quadrature") or rows[0].get("quadrature") or "riemann")
    steps = meta.get("steps") or rows[0].get("steps")
    steps = int(steps) if steps is not None else None
    if explainer is None:
        name = model or meta.get("model") or rows[0].get("model")
        if not name:
            raise InputError(f"{path}: run.json names no model; pass --model")
        from influence_patterns.explainer import Explainer

        explainer = Explainer.from_pretrained(
            name, device=device, steps=steps, quadrature=quadrature,
            baseline=meta.get("baseline", rows[0].get("baseline", "mask")),
            keep_special=bool(meta.get("keep_special", False)), max_rows=max_rows,
        )
    result = {"run": str(path), "task": meta.get("task"),
              **ablate_rows(explainer, rows, methods, sources, steps, batch_size, seed, progress, max_rows,
                            quadrature)}
    if save and Path(path).is_dir():
        (Path(path) / ablation_file(sources)).write_text(json.dumps(result, indent=2) + "\n")
    return result


def ablation_file(sources: str = "all") -> str:
    """``ablation.json`` for all source tokens (what ``report`` reads), else
    ``ablation-<role>.json``."""
    return ABLATION_FILE if sources == "all" else f"ablation-{sources}.json"
