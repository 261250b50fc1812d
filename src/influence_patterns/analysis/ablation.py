"""Compression and removal (DESIGN §6): keep only, or remove, the nodes an explanation
names, by REPLACEMENT with a reference input, and measure what is left of the QoI and
the accuracy (definitions: docs/analyses.md).

For an instance and a method the *node set* is the union, over the explained source
tokens (every source token, or only a role's token with ``sources=ROLE``), of the
method's nodes ``(layer l, position t, head j or skip)``, l = 1..L.

- **keep only (compression)**: at EVERY layer and position, each head context a^{l,j}_t
  (its slice of a^l before W_O) and skip s^l_t that is NOT in the node set is replaced
  by its value on the reference input, so the prediction can use nothing else of the
  real input;
- **remove**: the nodes IN the set are replaced by their reference values (``removal``).

The reference (``reference`` / ``removal``): ``"baseline"``/``"reference"`` = the IG
baseline input of the run (every word piece ``[MASK]`` for the ``mask`` baseline) run
through the model, its a^{l,j}_t and s^l_t recorded; ``"zero"`` = zeros. Replacement
values come from that one reference pass (they are not recomputed from the patched
pass). Per instance: q (real input), q⁺ (``q_kept``), q⁻ (``q_removed``). Per method,
over the N instances, each with a paired-bootstrap 95% CI (:mod:`.bootstrap`):

- ``accuracy_retained`` = share(q⁺ > 0) / share(q > 0);
- ``qoi_retained`` = mean(q⁺) / mean(q);
- ``comprehensiveness`` = mean(q − q⁻);
- ``accuracy_after_removal`` = share(q⁻ > 0);
- ``nodes``: the mean size of the node set (the budget).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from influence_patterns.analysis import bootstrap as bs
from influence_patterns.analysis.methods import ABLATION_METHODS, MethodInput, NodePath, get_method
from influence_patterns.attribution.gradients import RecordNodes
from influence_patterns.attribution.quadrature import make_quadrature
from influence_patterns.errors import DataError, InputError
from influence_patterns.explainer import Explainer
from influence_patterns.fileio import check_writable, safe_name, write_json
from influence_patterns.graph.hooks import Interceptor, intercept
from influence_patterns.progress import Progress, progress_bar
from influence_patterns.analysis.null import query_of
from influence_patterns.runs import Run, RunRecord
from influence_patterns.search.memory import auto_max_rows

ABLATION_FILE = "ablation.json"
DEFAULT_METHODS = tuple(ABLATION_METHODS)
REFERENCES = ("baseline", "zero")
REMOVALS = ("reference", "zero")
#: relative tolerance of the check that the model reproduces the run's QoI
QOI_TOLERANCE = 1e-3


@dataclass(frozen=True)
class AblationOptions:
    """What ``ablate`` computes. ``methods`` from :data:`ABLATION_METHODS`; ``sources``: ``"all"``
    or a role; ``reference`` (keep-only) in :data:`REFERENCES`; ``removal`` in
    :data:`REMOVALS`; ``steps``/``quadrature``: the IG-based baselines' rule (default:
    the explainer's); ``max_rows``: (source × α) rows per pass of those baselines."""

    methods: tuple[str, ...] = DEFAULT_METHODS
    sources: str = "all"
    reference: str = "baseline"
    removal: str = "reference"
    batch_size: int = 8
    seed: int = 0
    resamples: int = bs.RESAMPLES
    bootstrap_seed: int = bs.SEED
    steps: int | None = None
    quadrature: str | None = None
    max_rows: int | None = None

    def validate(self) -> "AblationOptions":
        """Raise ``InputError`` naming the bad parameter; return self."""
        if not self.methods:
            raise InputError("methods is empty: name at least one method")
        for m in self.methods:
            get_method(m)
        if self.reference not in REFERENCES:
            raise InputError(f"unknown reference {self.reference!r}; choose from {', '.join(REFERENCES)}")
        if self.removal not in REMOVALS:
            raise InputError(f"unknown removal {self.removal!r}; choose from {', '.join(REMOVALS)}")
        if self.batch_size < 1:
            raise InputError("batch_size must be at least 1")
        bs.check_resamples(self.resamples)
        if self.max_rows is not None and self.max_rows < 1:
            raise InputError("max_rows must be at least 1")
        return self


# --- the replacement pass -------------------------------------------------------------


class Replace(Interceptor):
    """Where a keep mask is False, the head context / skip takes the reference value
    (``None``: zero)."""

    def __init__(self, head_keep: torch.Tensor, skip_keep: torch.Tensor,
                 reference: tuple[list[torch.Tensor], list[torch.Tensor]] | None) -> None:
        self.head_keep = head_keep  # (L, B, n, H) bool
        self.skip_keep = skip_keep  # (L, B, n) bool
        self.reference = reference

    def on_attn(self, layer, context, skip):
        hk = self.head_keep[layer - 1]
        m = hk.repeat_interleave(context.shape[-1] // hk.shape[-1], dim=-1)  # (B, n, H*hd)
        if self.reference is None:
            ref_c, ref_s = torch.zeros_like(context), torch.zeros_like(skip)
        else:
            ref_c, ref_s = self.reference[0][layer - 1], self.reference[1][layer - 1]
        context = torch.where(m, context, ref_c.to(context.dtype))
        skip = torch.where(self.skip_keep[layer - 1][..., None], skip, ref_s.to(skip.dtype))
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
    """(L, B, n, H) head and (L, B, n) skip masks, True where the real value stays:
    ``keep`` — only at the nodes (everywhere else the reference); else everywhere
    except at the nodes."""
    B = len(sets)
    heads = torch.full((L, B, n, H), not keep)
    skips = torch.full((L, B, n), not keep)
    for b, nodes in enumerate(sets):
        for l, t, j in nodes:
            if j is None:
                skips[l - 1, b, t] = keep
            else:
                heads[l - 1, b, t, j] = keep
    return heads, skips


def reference_nodes(ctx: MethodInput, kind: str) -> tuple[list[torch.Tensor], list[torch.Tensor]] | None:
    """a^l and s^l of the reference input (``"baseline"``: ``ctx.batch.baseline`` run
    through the model; ``"zero"``/``"reference"``-less: ``None`` = zeros)."""
    if kind == "zero":
        return None
    key = "reference_nodes"
    if key not in ctx.cache:
        batch, rec = ctx.batch, RecordNodes()
        with torch.no_grad(), intercept(ctx.adapter, rec):
            ctx.adapter.logits(batch.baseline, batch.attention_mask, batch.target_index)
        ctx.cache[key] = ([c.clone() for c in rec.context], [s.clone() for s in rec.skip])
    return ctx.cache[key]


def ablated_qoi(ctx: MethodInput, sets: Sequence[NodeSet], keep: bool, reference: str = "zero") -> torch.Tensor:
    """The QoI of every sentence of ``ctx.batch`` with its node set kept alone
    (``keep``) or removed, the rest / the nodes replaced by ``reference``
    (``"baseline"`` or ``"zero"``)."""
    adapter, batch = ctx.adapter, ctx.batch
    heads, skips = ablation_masks(sets, adapter.num_layers, batch.x.shape[1], adapter.num_heads, keep)
    device = batch.x.device
    ref = reference_nodes(ctx, reference)
    with torch.no_grad(), intercept(adapter, Replace(heads.to(device), skips.to(device), ref)):
        logits = adapter.logits(batch.x, batch.attention_mask, batch.target_index)
    return ctx.qoi(logits, batch.classes).double().cpu()


# --- metrics ------------------------------------------------------------------------------


def _mean(x: np.ndarray) -> np.ndarray:
    return x.mean(axis=-1)


#: metric name -> (statistic of (q, q_kept, q_removed), higher value favours the method)
METRICS: dict[str, tuple[Callable[..., np.ndarray], bool]] = {
    "accuracy_retained": (lambda q, k, r: _mean(k > 0) / _mean(q > 0), True),
    "qoi_retained": (lambda q, k, r: _mean(k) / _mean(q), True),
    "comprehensiveness": (lambda q, k, r: _mean(q - r), True),
    "accuracy_after_removal": (lambda q, k, r: _mean(r > 0), False),
}
HEADLINE = ("accuracy_retained", "qoi_retained")


def _arrays(per_instance: Sequence[dict[str, Any]], method: str, keys: list[tuple]) -> list[np.ndarray]:
    by_key = {(r.get("run", ""), r.get("task"), r["index"]): r for r in per_instance if r["method"] == method}
    rows = [by_key[k] for k in keys]
    return [np.array([float(r[f]) for r in rows]) for f in ("q", "q_kept", "q_removed")]


def summarise(per_instance: Sequence[dict[str, Any]], groups: dict[str, str], resamples: int = bs.RESAMPLES,
              seed: int = bs.SEED) -> dict[str, Any]:
    """Methods' metrics with CIs, every ``pattern − method`` difference and the
    verdicts, from per-instance records (``run``?, ``task``, ``index``, ``method``, ``q``,
    ``q_kept``, ``q_removed``, ``nodes``). ``groups``: method → group, in table order."""
    methods = [m for m in groups if any(r["method"] == m for r in per_instance)]
    if not methods:
        raise DataError("no per-instance ablation results to summarise")
    keys = sorted({(r.get("run", ""), r.get("task"), r["index"]) for r in per_instance if r["method"] == methods[0]},
                  key=lambda k: (str(k[0]), str(k[1]), k[2]))
    for m in methods:
        got = {(r.get("run", ""), r.get("task"), r["index"]) for r in per_instance if r["method"] == m}
        if got != set(keys):
            raise DataError(f"method {m} was ablated on other instances than {methods[0]}")
    n = len(keys)
    idx = bs.resample_indices(n, resamples, seed)
    arrays = {m: _arrays(per_instance, m, keys) for m in methods}
    nodes = {m: float(np.mean([r.get("nodes", 0) for r in per_instance if r["method"] == m])) for m in methods}
    out_methods = []
    for m in methods:
        entry: dict[str, Any] = {"name": m, "group": groups[m], "nodes": nodes[m]}
        for metric, (stat, _) in METRICS.items():
            entry[metric] = bs.estimate(stat, arrays[m], idx)
        q, k, r = arrays[m]
        entry["qoi_kept"] = float(k.mean())
        entry["accuracy_kept"] = float((k > 0).mean())
        entry["qoi_after_removal"] = float(r.mean())
        out_methods.append(entry)
    comparisons = []
    if "pattern" in arrays:
        for m in methods:
            if m == "pattern":
                continue
            for metric, (stat, higher) in METRICS.items():
                d = bs.difference(stat, arrays["pattern"], stat, arrays[m], idx)
                comparisons.append({"a": "pattern", "b": m, "group": groups[m], "metric": metric,
                                    "difference": d, "verdict": bs.verdict(d["ci"], n, higher),
                                    "nodes": [nodes["pattern"], nodes[m]]})
    q0 = arrays[methods[0]][0]
    return {
        "instances": n,
        "qoi": float(q0.mean()),
        "accuracy": float((q0 > 0).mean()),
        "methods": out_methods,
        "comparisons": comparisons,
        "verdicts": group_verdicts(out_methods, comparisons),
    }


def floor_estimates(floor: Sequence[dict[str, Any]], resamples: int = bs.RESAMPLES,
                    seed: int = bs.SEED) -> dict[str, Any] | None:
    """Compression's floor: ``accuracy_retained`` and ``qoi_retained`` when NO node is
    kept (the reference pass alone), from records with ``q`` and ``q_kept``."""
    if not floor:
        return None
    q = np.array([float(r["q"]) for r in floor])
    k = np.array([float(r["q_kept"]) for r in floor])
    idx = bs.resample_indices(len(floor), resamples, seed)
    return {name: bs.estimate(lambda q, k, s=stat: s(q, k, k), [q, k], idx)
            for name, (stat, _) in METRICS.items() if name in HEADLINE} | {"per_instance": list(floor)}


def group_verdicts(methods: list[dict[str, Any]], comparisons: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per group other than ``pattern`` and per headline metric: patterns against the
    group's best method (by point value), the comparison's CI and verdict."""
    out = []
    for group in dict.fromkeys(m["group"] for m in methods if m["name"] != "pattern"):
        members = [m for m in methods if m["group"] == group and m["name"] != "pattern"]
        for metric in HEADLINE:
            higher = METRICS[metric][1]
            scored = [m for m in members if m[metric]["value"] is not None]
            if not scored:
                continue
            best = (max if higher else min)(scored, key=lambda m: m[metric]["value"])
            comp = next((c for c in comparisons if c["b"] == best["name"] and c["metric"] == metric), None)
            if comp is None:
                continue
            out.append({"group": group, "metric": metric, "best": best["name"], "difference": comp["difference"],
                        "verdict": comp["verdict"], "nodes": comp["nodes"]})
    return out


# --- computing a run ---------------------------------------------------------------------


def check_model(explainer: Any, records: Sequence[RunRecord], run: str = "the run") -> None:
    """Refuse a model that is not the run's: layers, heads, kind (the QoI), tokenizer."""
    adapter = explainer.adapter
    first = records[0].explanation
    for key, want, have in (("layers", first.num_layers, adapter.num_layers),
                            ("heads", first.num_heads, adapter.num_heads)):
        if want != have:
            raise InputError(f"the model has {have} {key}, {run} was made with {want}: "
                             "ablate with the run's model")
    kind = {"agreement": "mlm", "classification": "classification"}.get(first.qoi_name or "")
    if kind is not None and kind != adapter.kind:
        raise InputError(f"the model is a {adapter.kind} model, {run} was made with a {kind} model: "
                         "ablate with the run's model")
    recorded = records[0].weights_sha256
    if recorded is not None and hasattr(explainer, "fingerprint") and explainer.fingerprint["weights_sha256"] != recorded:
        raise InputError(f"the model's weights are not the ones {run} was made with (weights_sha256 "
                         f"{explainer.fingerprint['weights_sha256'][:12]}…, the run's {recorded[:12]}…): "
                         "ablate with the run's model")


def ablate_rows(explainer: Any, rows: Run | Sequence[RunRecord | dict[str, Any]],
                options: AblationOptions | None = None, progress: Progress = None,
                run: str = "the run") -> dict[str, Any]:
    """Compress / remove each method's nodes on a loaded run (a ``Run``, its records, or
    result rows as dicts, checked by the one reader's rules; see the module doc).
    Returns the summary of :func:`summarise` plus ``sources``, ``reference``, ``removal``,
    ``bootstrap`` and ``per_instance``; ``per_task`` when the rows span several tasks.
    ``progress``: a bar over instances × methods on stderr (``None``: when stderr is a terminal;
    ``False``: none) or a callable ``advance(k)`` (:mod:`influence_patterns.progress`)."""
    opts = (options or AblationOptions()).validate()
    records = Run.from_rows(rows, name=run).records
    if not records:
        raise DataError(f"{run} has no results yet")
    check_model(explainer, records, run)
    sources = opts.sources
    if sources != "all" and not any(sources in r.roles for r in records):
        roles = sorted({k for r in records for k in r.roles})
        raise InputError(f"no instance of {run} has the role {sources!r}; roles: {', '.join(roles) or 'none'}")
    used = [r for r in records if sources == "all" or sources in r.roles]
    order = {r.index: k for k, r in enumerate(used)}
    # batches of similar length: padding costs the IG-based methods (n sources x n positions)
    by_length = sorted(used, key=lambda r: len(r.explanation.tokens))
    chosen = [get_method(m) for m in opts.methods]
    qoi = explainer.qoi
    per_instance: list[dict[str, Any]] = []
    floor: list[dict[str, Any]] = []
    # one unit of the bar: one instance through one method
    with progress_bar(len(used) * len(chosen), f"ablating {run}", progress) as advance:
        for start in range(0, len(by_length), opts.batch_size):
            chunk = by_length[start : start + opts.batch_size]
            batch = explainer.prepare([query_of(r) for r in chunk])
            for b, row in enumerate(chunk):
                if batch.tokens[b] != list(row.explanation.tokens):
                    raise InputError(
                        f"instance {row.index}: the model's tokenizer gives {batch.tokens[b]}, "
                        f"{run} has {row.explanation.tokens}: ablate with the run's model"
                    )
            quad = make_quadrature(opts.steps if opts.steps is not None else explainer.config.steps,
                                   opts.quadrature or explainer.config.quadrature, dtype=batch.x.dtype)
            rows_per_pass = opts.max_rows or getattr(explainer.config, "max_rows", None)
            if rows_per_pass is None:
                rows_per_pass = auto_max_rows(explainer.adapter, int(batch.x.shape[1]))
            ctx = MethodInput(explainer.adapter, batch, chunk, quad, qoi, seed=opts.seed, max_rows=rows_per_pass)
            with torch.no_grad():
                logits = explainer.adapter.logits(batch.x, batch.attention_mask, batch.target_index)
            q = qoi(logits, batch.classes).double().cpu().tolist()
            for b, row in enumerate(chunk):
                recorded = row.q
                if abs(q[b] - recorded) > QOI_TOLERANCE * max(1.0, abs(recorded)):
                    raise InputError(f"instance {row.index}: the model gives QoI {q[b]:.6g}, {run} recorded "
                                     f"{recorded:.6g}: ablate with the run's model")
            # keeping nothing: the reference pass alone (the floor of compression)
            q_floor = ablated_qoi(ctx, [set() for _ in chunk], keep=True, reference=opts.reference).tolist()
            for b, row in enumerate(chunk):
                floor.append({"index": row.index, "task": row.task, "q": q[b], "q_kept": q_floor[b]})
            for m in chosen:
                paths = m.paths(ctx)
                sets = []
                for b, row in enumerate(chunk):
                    wanted = None if sources == "all" else {row.roles[sources]}
                    sets.append(node_set(paths[b], wanted))
                q_removed = ablated_qoi(ctx, sets, keep=False,
                                        reference="zero" if opts.removal == "zero" else "baseline").tolist()
                q_kept = ablated_qoi(ctx, sets, keep=True, reference=opts.reference).tolist()
                for b, row in enumerate(chunk):
                    per_instance.append({"index": row.index, "task": row.task, "method": m.name,
                                         "q": q[b], "q_kept": q_kept[b], "q_removed": q_removed[b],
                                         "nodes": len(sets[b])})
                advance(len(chunk))

    per_instance.sort(key=lambda r: order[r["index"]])  # the run's order (stable: methods stay in order)
    floor.sort(key=lambda r: order[r["index"]])
    groups = {m.name: m.group for m in chosen}
    out: dict[str, Any] = {
        "sources": sources, "reference": opts.reference, "removal": opts.removal,
        "bootstrap": {"resamples": opts.resamples, "seed": opts.bootstrap_seed, "level": bs.LEVEL,
                      "min_instances": bs.MIN_INSTANCES},
        "seed": opts.seed,
        **summarise(per_instance, groups, opts.resamples, opts.bootstrap_seed),
        "floor": floor_estimates(floor, opts.resamples, opts.bootstrap_seed),
    }
    tasks = sorted({str(r["task"]) for r in per_instance if r["task"] is not None})
    if len(tasks) > 1:
        out["per_task"] = {t: summarise([r for r in per_instance if str(r["task"]) == t], groups,
                                        opts.resamples, opts.bootstrap_seed) for t in tasks}
    out["per_instance"] = per_instance
    return out


def ablate_run(path: str | Path, options: AblationOptions | None = None, device: str = "auto",
               model: str | None = None, explainer: Any = None, save: bool = True,
               progress: Progress = None, json_out: str | Path | None = None) -> dict[str, Any]:
    """Compression and removal of a run directory for each method (module doc and
    docs/analyses.md). The model is the run's (``run.json``) unless ``model`` or
    ``explainer`` is given — checked against the run (layers, heads, kind, tokens and the
    QoI it recorded). IG-based baselines use the run's steps, quadrature and baseline.

    Writes, atomically and only after everything is computed: ``json_out`` first, then
    (with ``save``) ``DIR/ablation.json`` (``sources="all"``) or ``DIR/ablation-<role>.json``.
    """
    opts = (options or AblationOptions()).validate()
    data = Run.open(path)
    meta = data.meta
    if not data.records:
        raise DataError(f"{path} has no results yet")
    if json_out is not None:  # before computing: a refused write must not lose the work
        check_writable(json_out, "--json")
    if save and Path(path).is_dir():
        check_writable(Path(path) / ablation_file(opts.sources))
    # runs written before Gauss–Legendre became the default recorded "riemann"
    quadrature = str(data.setting("quadrature", "riemann"))
    steps = data.setting("steps")
    steps = int(steps) if steps is not None else None
    baseline = data.setting("baseline", "mask")
    if explainer is None:
        name = model or data.setting("model")
        if not name:
            raise InputError(f"{path}: run.json names no model; pass model=")
        explainer = Explainer.from_pretrained(
            name, device=device, steps=steps, quadrature=quadrature, baseline=baseline,
            keep_special=bool(meta.get("keep_special", False)), max_rows=opts.max_rows,
        )
    opts = replace(opts, steps=opts.steps if opts.steps is not None else steps,
                   quadrature=opts.quadrature or quadrature)
    body = ablate_rows(explainer, data, opts, progress, run=str(path))
    result = {
        "run": str(path), "task": data.setting("task"),
        "settings": {"model": data.setting("model"), "model_used": getattr(explainer, "name", None),
                     "steps": steps, "quadrature": quadrature, "baseline": baseline,
                     "keep_special": bool(meta.get("keep_special", False)), "methods": list(opts.methods),
                     "versions": meta.get("versions")},
        **body,
    }
    if json_out is not None:
        write_json(json_out, result)
    if save and Path(path).is_dir():
        write_json(Path(path) / ablation_file(opts.sources), result)
    return result


def ablation_file(sources: str = "all") -> str:
    """``ablation.json`` for all source tokens (what ``report`` reads), else
    ``ablation-<role>.json`` (the role's name made safe: a role from a data file never
    places the file outside the run directory)."""
    return ABLATION_FILE if sources == "all" else f"ablation-{safe_name(sources)}.json"


def read_ablation(path: str | Path) -> dict[str, Any]:
    """An ablation JSON file, checked: one ``DataError`` line when it is corrupt, of
    another schema or of the old format (no per-instance results: run ``ablate`` again)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read it ({exc})") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno})") from None
    if not isinstance(data, dict) or not isinstance(data.get("methods"), list):
        raise DataError(f"{path}: not an ablation result (no \"methods\" list)")
    per = data.get("per_instance")
    if not isinstance(per, list) or not per:
        raise DataError(f"{path}: no per-instance results (an older format): run `ablate` on the run again")
    for i, r in enumerate(per):
        if not isinstance(r, dict) or any(k not in r for k in ("index", "method", "q", "q_kept", "q_removed")):
            raise DataError(f"{path}: per_instance[{i}] lacks index/method/q/q_kept/q_removed")
        if any(not isinstance(r[k], (int, float)) or isinstance(r[k], bool) for k in ("q", "q_kept", "q_removed")):
            raise DataError(f"{path}: per_instance[{i}] has a value that is not a number")
    return data

