"""Compression, removal and interchange (docs/method.md#analyses): keep only, remove,
or patch from a counterfactual the nodes an explanation names, and measure what is
left of the QoI and the accuracy (definitions: docs/analyses.md).

For an instance and a method the *node set* is the union, over the explained source
tokens (every source token, or only a role's token with ``sources=ROLE``), of the
method's nodes ``(layer l, position t, head j or skip)``, l = 1..L.

- **keep only (compression)**: at EVERY layer and position, each head context a^{l,j}_t
  (its slice of a^l before W_O) and skip s^l_t that is NOT in the node set is replaced
  by its *reference* value, so the prediction can use nothing else of the real input;
  with ``replace="as+h"`` also the layer outputs h^l_t (l = 1..L) at the positions t
  that no node of layer l uses (the layout of the authors' code);
- **remove**: the nodes IN the set are replaced by their reference values (``removal``);
- **interchange** (``interchange=True``): the nodes IN the set take their values on the
  instance's *counterfactual* (same length, the answer flipped) and everything else
  stays real; the complementary patch takes every node but them from the counterfactual.

The reference (``reference``) is a named choice:

- ``"mean"`` (default): per position t, each node's mean value over real inputs of the
  same task and the same token length — held-out instances (template tasks: generated
  with seed ``HELDOUT_SEED + seed``; ``sa/sst2``: the packaged train split), or for runs
  on a data file (and rows without a run directory) the OTHER instances of the run of
  the same length, the instance itself left out. ``reference_instances`` in the result
  says how many inputs were averaged;
- ``"baseline"``: the IG baseline input of the run (every word piece ``[MASK]`` for the
  ``mask`` baseline) run through the model (the protocol of earlier versions);
- ``"zero"``: zeros.

Replacement values come from one pass over the reference input(s), not recomputed from
the patched pass. Per instance: q (real input), q⁺ (``q_kept``), q⁻ (``q_removed``),
q⁰ (``q_floor``: nothing kept, the reference alone), and with interchange ``q_iia``
(kept nodes patched from the counterfactual) and ``q_iia_complement``. Per method,
over the N instances, each ``{"value", "ci"}`` with a paired-bootstrap 95% CI
(:mod:`.bootstrap`; instances resampled within tasks when there are several):

- ``fidelity`` = share(sign q⁺ = sign q): the compressed prediction is the model's;
- ``accuracy_recovered`` = (share(q⁺ > 0) − share(q⁰ > 0)) / (share(q > 0) − share(q⁰ > 0)),
  ``qoi_recovered`` = (mean q⁺ − mean q⁰) / (mean q − mean q⁰): 0 = the floor, 1 = all of
  the model recovered;
- ``accuracy_retained`` = share(q⁺ > 0) / share(q > 0), only where the model is above
  chance (share(q > 0) > ½), else ``None``; ``qoi_retained`` = mean(q⁺) / mean(q);
- ``comprehensiveness`` = mean(q − q⁻); ``accuracy_after_removal`` = share(q⁻ > 0);
- with interchange: ``iia`` = share(q_iia < 0), the interchange-intervention accuracy
  (the prediction flips to the counterfactual's answer), ``iia_complement`` =
  share(q_iia_complement < 0);
- ``nodes``: the mean size of the node set (the budget).

Node sets depend only on the run, the model and the method, so with a run directory
they are computed once and kept in ``DIR/nodes-<method>.json`` under a key of what they
depend on (like the cached null): every protocol reuses them.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from influence_patterns.analysis import bootstrap as bs
from influence_patterns.analysis.methods import ABLATION_METHODS, MethodInput, NodePath, get_method
from influence_patterns.attribution.gradients import RecordNodes
from influence_patterns.attribution.quadrature import make_quadrature
from influence_patterns import threads
from influence_patterns.errors import DataError, InputError
from influence_patterns.explainer import Explainer
from influence_patterns.fileio import check_writable, safe_name, write_json
from influence_patterns.graph.hooks import Interceptor, intercept
from influence_patterns.progress import Progress, progress_bar
from influence_patterns.analysis.null import model_sha256, query_of
from influence_patterns.attribution.inputs import Query
from influence_patterns.errors import OutputError
from influence_patterns.runs import Run, RunRecord
from influence_patterns.search.memory import auto_max_rows, heap_allocations

ABLATION_FILE = "ablation.json"
DEFAULT_METHODS = tuple(ABLATION_METHODS)
REFERENCES = ("mean", "baseline", "zero")
REPLACES = ("as", "as+h")
REMOVALS = ("reference", "zero")
#: template tasks draw their held-out instances with seed HELDOUT_SEED + the run's seed
HELDOUT_SEED = 1_000_000
#: at most this many held-out inputs are averaged per token length
HELDOUT_PER_LENGTH = 64
#: held-out sentences generated per template task (searched for the lengths needed)
HELDOUT_POOL = 2048
#: chance accuracy of the two-way decisions (agreement, binary sentiment)
CHANCE = 0.5
#: relative tolerance of the check that the model reproduces the run's QoI
QOI_TOLERANCE = 1e-3


@dataclass(frozen=True)
class AblationOptions:
    """What ``ablate`` computes. ``methods`` from :data:`ABLATION_METHODS`; ``sources``: ``"all"``
    or a role; ``reference`` (keep-only) in :data:`REFERENCES`; ``replace`` in
    :data:`REPLACES`; ``interchange``: also patch from the counterfactuals; ``removal``
    in :data:`REMOVALS` (``reference``: the same reference as keep-only); ``steps``/``quadrature``: the IG-based baselines' rule (default:
    the explainer's); ``max_rows``: (source × α) rows per pass of those baselines."""

    methods: tuple[str, ...] = DEFAULT_METHODS
    sources: str = "all"
    reference: str = "mean"
    replace: str = "as"
    interchange: bool = False
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
        if self.replace not in REPLACES:
            raise InputError(f"unknown replace {self.replace!r}; choose from {', '.join(REPLACES)}")
        if self.removal not in REMOVALS:
            raise InputError(f"unknown removal {self.removal!r}; choose from {', '.join(REMOVALS)}")
        if self.batch_size < 1:
            raise InputError("batch_size must be at least 1")
        bs.check_resamples(self.resamples)
        if self.max_rows is not None and self.max_rows < 1:
            raise InputError("max_rows must be at least 1")
        return self


# --- the replacement pass -------------------------------------------------------------

#: reference values of one batch: per layer l = 1..L, a^l (B, n, H*hd), s^l (B, n, d) and
#: h^l (B, n, d) (``None`` when not needed); ``None`` as a whole: zeros
Nodes = tuple[list[torch.Tensor], list[torch.Tensor], "list[torch.Tensor] | None"]


class Replace(Interceptor):
    """Where a keep mask is False, the head context / skip (and with ``h_keep`` the
    layer output h^l, l ≥ 1) takes the reference value (``None``: zero)."""

    def __init__(self, head_keep: torch.Tensor, skip_keep: torch.Tensor,
                 reference: Nodes | None, h_keep: torch.Tensor | None = None) -> None:
        self.head_keep = head_keep  # (L, B, n, H) bool
        self.skip_keep = skip_keep  # (L, B, n) bool
        self.h_keep = h_keep  # (L, B, n) bool or None
        self.reference = reference

    def on_h(self, layer, h):
        if self.h_keep is None or layer == 0:
            return h
        ref = torch.zeros_like(h) if self.reference is None else self.reference[2][layer - 1].to(h.dtype)
        return torch.where(self.h_keep[layer - 1][..., None], h, ref)

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


def h_mask(sets: Sequence[NodeSet], L: int, n: int) -> torch.Tensor:
    """(L, B, n): True where h^l_t stays real under ``replace="as+h"`` — the positions
    that some node of layer l uses (its path is at t after layer l)."""
    out = torch.zeros((L, len(sets), n), dtype=torch.bool)
    for b, nodes in enumerate(sets):
        for l, t, _ in nodes:
            out[l - 1, b, t] = True
    return out


def record_nodes(adapter: Any, x: torch.Tensor, attention_mask: torch.Tensor,
                 target_index: torch.Tensor) -> tuple[Nodes, torch.Tensor]:
    """One plain pass: (a^l, s^l, h^l for l = 1..L, cloned) and the logits."""
    rec = RecordNodes()
    with torch.no_grad(), intercept(adapter, rec):
        logits = adapter.logits(x, attention_mask, target_index)
    return ([c.clone() for c in rec.context], [s.clone() for s in rec.skip],
            [h.clone() for h in rec.h[1:]]), logits


def reference_nodes(ctx: MethodInput, kind: str) -> Nodes | None:
    """The reference values of ``ctx.batch``: ``"baseline"``: ``ctx.batch.baseline`` run
    through the model; ``"mean"``: what :func:`ablate_rows` put in ``ctx.cache`` (see
    :class:`MeanReference`); ``"zero"``: ``None`` = zeros."""
    if kind == "zero":
        return None
    if kind == "mean":
        if "mean_nodes" not in ctx.cache:
            raise InputError("the mean reference needs held-out inputs: use ablate_rows / ablate_run")
        return ctx.cache["mean_nodes"]
    key = "reference_nodes"
    if key not in ctx.cache:
        batch = ctx.batch
        ctx.cache[key], _ = record_nodes(ctx.adapter, batch.baseline, batch.attention_mask, batch.target_index)
    return ctx.cache[key]


def ablated_qoi(ctx: MethodInput, sets: Sequence[NodeSet], keep: bool, reference: str | Nodes | None = "zero",
                replace_h: bool = False) -> torch.Tensor:
    """The QoI of every sentence of ``ctx.batch`` with its node set kept alone
    (``keep``) or removed, the rest / the nodes replaced by ``reference``
    (``"baseline"``, ``"mean"``, ``"zero"`` or the node values themselves, e.g. a
    counterfactual's). ``replace_h`` (keep only): also h^l at the positions no node uses."""
    adapter, batch = ctx.adapter, ctx.batch
    L, n = adapter.num_layers, batch.x.shape[1]
    heads, skips = ablation_masks(sets, L, n, adapter.num_heads, keep)
    device = batch.x.device
    ref = reference_nodes(ctx, reference) if isinstance(reference, str) else reference
    hk = h_mask(sets, L, n).to(device) if replace_h and keep else None
    with torch.no_grad(), intercept(adapter, Replace(heads.to(device), skips.to(device), ref, hk)):
        logits = adapter.logits(batch.x, batch.attention_mask, batch.target_index)
    return ctx.qoi(logits, batch.classes).double().cpu()


# --- the mean reference -------------------------------------------------------------------


class MeanReference:
    """Per token length, the sums of every node's values over real inputs and their
    count; :meth:`for_batch` gives a batch its per-position means (``leave_out``: the
    run's own instances, each left out of its own mean)."""

    def __init__(self, source: str, leave_out: bool) -> None:
        self.source = source
        self.leave_out = leave_out
        self.sums: dict[int, Nodes] = {}
        self.counts: dict[int, int] = {}

    def add(self, nodes: Nodes, lengths: Sequence[int]) -> None:
        """Add the rows of one pass (``nodes`` (B, n, ·) per layer, row b of length lengths[b])."""
        for b, n in enumerate(lengths):
            row = tuple([t[b, :n].double() for t in part] for part in nodes)
            if n not in self.sums:
                self.sums[n] = tuple([t.clone() for t in part] for part in row)  # type: ignore[assignment]
                self.counts[n] = 0
            else:
                for acc, part in zip(self.sums[n], row):
                    for a, t in zip(acc, part):
                        a += t
            self.counts[n] += 1

    def averaged(self, n: int) -> int:
        """How many inputs the mean of length ``n`` averages."""
        return self.counts.get(n, 0) - (1 if self.leave_out else 0)

    def for_batch(self, batch: Any, real: Nodes) -> Nodes:
        """The batch's reference: per instance the mean of its length (its own values
        ``real`` left out with ``leave_out``), zero-padded to the batch's width."""
        N = batch.x.shape[1]
        out: list[list[torch.Tensor]] = [[], [], []]
        for k, part in enumerate(real):
            for l, t in enumerate(part):
                ref = torch.zeros_like(t)
                for b, n in enumerate(batch.lengths):
                    total = self.sums[n][k][l]
                    if self.leave_out:
                        total = total - t[b, :n].double()
                    ref[b, :n] = (total / self.averaged(n)).to(t.dtype)
                out[k].append(ref)
        assert all(r.shape[1] == N for r in out[0])
        return out[0], out[1], out[2]

    def summary(self, lengths: Sequence[int]) -> dict[str, Any]:
        per = {int(n): self.averaged(n) for n in sorted(set(lengths))}
        return {"source": self.source, "per_length": {str(k): v for k, v in per.items()},
                "min": min(per.values()) if per else 0,
                "mean": float(np.mean([self.averaged(n) for n in lengths])) if len(lengths) else 0.0}


def heldout_queries(task: str | None, seed: int, kind: str) -> tuple[str, list[Query]] | None:
    """Held-out real inputs of a run's task (module doc): template tasks, seeded
    ``HELDOUT_SEED + seed``; ``sa/sst2``: the packaged train split (shuffled, seeded).
    ``None`` when the task has no source of held-out inputs."""
    from influence_patterns.tasks.templates import TEMPLATE_TASKS, generate

    if task in TEMPLATE_TASKS and kind == "mlm":
        insts = generate(task, HELDOUT_POOL, HELDOUT_SEED + int(seed))
        return (f"held-out {task} instances (generated with seed {HELDOUT_SEED + int(seed)})",
                [Query(i.text, i.targets, None) for i in insts])
    if kind == "causal" and task is not None and task.startswith("prefix/") and task[7:] in TEMPLATE_TASKS:
        from influence_patterns.tasks.prefix import to_prefix

        insts = [to_prefix(i) for i in generate(task[7:], HELDOUT_POOL, HELDOUT_SEED + int(seed))]
        return (f"held-out {task} instances (generated with seed {HELDOUT_SEED + int(seed)})",
                [Query(i.text, i.targets, None) for i in insts])
    if task == "ioi" and kind == "causal":
        from influence_patterns.tasks.prefix import ioi_instances

        insts = ioi_instances(HELDOUT_POOL, HELDOUT_SEED + int(seed))
        return (f"held-out ioi prompts (generated with seed {HELDOUT_SEED + int(seed)})",
                [Query(i.text, i.targets, None) for i in insts])
    if task == "sa/sst2" and kind == "classification":
        from influence_patterns.tasks.loaders import read_sst2

        pairs = read_sst2("train")
        random.Random(f"heldout:{seed}").shuffle(pairs)
        return "SST-2 train split sentences (the run's instances are the dev split)", [Query(t, None, y) for t, y in pairs]
    return None


def mean_reference(explainer: Any, records: Sequence[RunRecord], heldout: tuple[str, list[Query]] | None,
                   batch_size: int = 32) -> MeanReference:
    """The :class:`MeanReference` of ``records``: from ``heldout`` (source text, queries;
    texts that are instances of the run are skipped) at most :data:`HELDOUT_PER_LENGTH`
    per needed length, else the run's own instances, each left out. Raises
    ``InputError`` naming a length with no other input to average."""
    lengths = sorted({len(r.explanation.tokens) for r in records})
    adapter, tok = explainer.adapter, explainer.tokenizer
    if heldout is None:
        ref = MeanReference("the run's other instances of the same length (each left out of its own mean)", True)
        queries = [query_of(r) for r in records]
    else:
        ref = MeanReference(heldout[0], False)
        own = {r.explanation.text for r in records}
        if adapter.causal and records:
            # a decoder's node values do not depend on the continuations (the target is the
            # last position): the run's own pair stands in for a held-out prompt's, which
            # another tokenizer may split into several pieces
            pair = query_of(records[0]).targets
            heldout = (heldout[0], [Query(q.text, pair, q.label) for q in heldout[1]])
        need = {n: HELDOUT_PER_LENGTH for n in lengths}
        queries = []
        texts = [q for q in heldout[1] if q.text not in own]
        for start in range(0, len(texts), 512):
            chunk = texts[start : start + 512]
            ids = tok([q.text for q in chunk], add_special_tokens=True)["input_ids"]
            for q, i in zip(chunk, ids):
                if need.get(len(i), 0) > 0:
                    need[len(i)] -= 1
                    queries.append(q)
            if not any(need.values()):
                break
    # same-length inputs together: no padding in the passes that give the means
    lengths_of = tok([q.text for q in queries], add_special_tokens=True)["input_ids"] if queries else []
    pending = [q for _, q in sorted(zip(map(len, lengths_of), queries), key=lambda p: p[0])]
    for start in range(0, len(pending), batch_size):
        batch = explainer.prepare(pending[start : start + batch_size])
        nodes, _ = record_nodes(adapter, batch.x, batch.attention_mask, batch.target_index)
        ref.add(nodes, batch.lengths)
    missing = [n for n in lengths if ref.averaged(n) < 1]
    if missing:
        where = "held-out" if heldout is not None else "other"
        raise InputError(f"reference mean: no {where} instance of length {missing[0]} tokens to average "
                         f"({len(missing)} length(s) lack one); use the baseline or zero reference, or more instances")
    return ref


# --- counterfactuals ------------------------------------------------------------------------


def counterfactuals(records: Sequence[RunRecord], task: str | None = None, n: int | None = None,
                    seed: int | None = None, generated: bool = False, run: str = "the run",
                    given: dict[int, str] | None = None) -> dict[int, str]:
    """Each instance's counterfactual text: ``given``'s, the record's, or for a run of a
    template task without a data file, the template's (generated again with the run's
    ``n`` and ``seed``, matched by text). ``InputError`` when an instance has none."""
    out = {r.index: r.counterfactual for r in records if r.counterfactual is not None} | dict(given or {})
    if len(out) < len(records) and generated and task is not None and n is not None:
        from influence_patterns.tasks.templates import TEMPLATE_TASKS, generate

        if task in TEMPLATE_TASKS:
            by_text = {i.text: i.counterfactual for i in generate(task, int(n), int(seed or 0))}
            for r in records:
                cf = by_text.get(r.explanation.text)
                if r.index not in out and cf is not None:
                    out[r.index] = cf
    missing = [r for r in records if r.index not in out]
    if missing:
        what = f"task {task}" if task else run
        raise InputError(f"interchange: {what} has no counterfactual for instance {missing[0].index} "
                         f"({len(missing)} of {len(records)} lack one): interchange is not measurable here "
                         "(give data rows a 'counterfactual' column, the sentence with the answer flipped)")
    return out


# --- node sets, cached --------------------------------------------------------------------


def nodes_file(method: str) -> str:
    """The file name of a method's cached node paths in a run directory."""
    return f"nodes-{method}.json"


def _paths_key(explainer: Any, records: Sequence[RunRecord], method: str, seed: int, steps: Any,
               quadrature: Any, max_rows: Any, sha: str) -> dict[str, Any]:
    cfg = explainer.config
    key = {"method": method, "seed": seed, "model_sha256": sha, "steps": steps, "quadrature": quadrature,
           "baseline": cfg.baseline, "keep_special": cfg.keep_special,
           "instances": [[r.index, r.explanation.text] for r in records]}
    version = getattr(ABLATION_METHODS.get(method), "cache_version", "")
    if version:  # a method whose node sets changed with its implementation
        key["version"] = version
    return key


def _read_paths(path: Path, key: dict[str, Any]) -> dict[int, list[NodePath]] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("key") != key:
            return None
        return {int(i): [NodePath(int(p[0]), tuple(p[1]), tuple(p[2])) for p in ps]
                for i, ps in data["paths"].items()}
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return None  # unreadable: computed again and replaced


def _write_paths(path: Path, key: dict[str, Any], paths: dict[int, list[NodePath]]) -> None:
    body = {"key": key, "paths": {str(i): [[p.source, list(p.positions), list(p.heads)] for p in ps]
                                  for i, ps in sorted(paths.items())}}
    try:
        write_json(path, body)
    except OutputError:
        pass  # a read-only run directory: nothing cached


# --- metrics ------------------------------------------------------------------------------


def _mean(x: np.ndarray) -> np.ndarray:
    return x.mean(axis=-1)


def _recovered(model: np.ndarray, kept: np.ndarray, floor: np.ndarray) -> np.ndarray:
    return (kept - floor) / (model - floor)


#: metric name -> (statistic of (q, q_kept, q_removed, q_floor), higher value favours the method)
METRICS: dict[str, tuple[Callable[..., np.ndarray], bool]] = {
    "fidelity": (lambda q, k, r, f: _mean((k > 0) == (q > 0)), True),
    "accuracy_recovered": (lambda q, k, r, f: _recovered(_mean(q > 0), _mean(k > 0), _mean(f > 0)), True),
    "qoi_recovered": (lambda q, k, r, f: _recovered(_mean(q), _mean(k), _mean(f)), True),
    "accuracy_retained": (lambda q, k, r, f: _mean(k > 0) / _mean(q > 0), True),
    "qoi_retained": (lambda q, k, r, f: _mean(k) / _mean(q), True),
    "comprehensiveness": (lambda q, k, r, f: _mean(q - r), True),
    "accuracy_after_removal": (lambda q, k, r, f: _mean(r > 0), False),
}
#: interchange metrics: statistic of (q_iia, q_iia_complement), higher favours the method
IIA_METRICS: dict[str, tuple[Callable[..., np.ndarray], bool]] = {
    "iia": (lambda a, c: _mean(a < 0), True),
    "iia_complement": (lambda a, c: _mean(c < 0), False),
}
HEADLINE = ("fidelity", "accuracy_recovered", "qoi_recovered")
#: metrics that need the model above chance to mean anything
ABOVE_CHANCE = ("accuracy_retained",)
#: metrics normalised by (model − floor), and the statistic of that headroom: undefined
#: where its CI reaches 0 (a ratio over nothing, e.g. 2.0 [−3, 5] on a task the model
#: gets right no more often than the reference alone does)
RECOVERED: dict[str, Callable[..., np.ndarray]] = {
    "accuracy_recovered": lambda q, k, r, f: _mean(q > 0) - _mean(f > 0),
    "qoi_recovered": lambda q, k, r, f: _mean(q) - _mean(f),
}


def _keys(per_instance: Sequence[dict[str, Any]], method: str) -> set[tuple]:
    return {(r.get("run", ""), r.get("task"), r["index"]) for r in per_instance if r["method"] == method}


def _arrays(per_instance: Sequence[dict[str, Any]], method: str, keys: list[tuple],
            fields: Sequence[str] = ("q", "q_kept", "q_removed", "q_floor")) -> list[np.ndarray]:
    by_key = {(r.get("run", ""), r.get("task"), r["index"]): r for r in per_instance if r["method"] == method}
    rows = [by_key[k] for k in keys]

    def num(v: Any) -> float:
        return float("nan") if v is None else float(v)

    return [np.array([num(r.get(f)) for r in rows]) for f in fields]


def _undefined(note: str) -> dict[str, Any]:
    return {"value": None, "ci": [None, None], "note": note}


def _headroom(arrays: list[np.ndarray], idx: np.ndarray) -> tuple[dict[str, Any], dict[str, Any]]:
    """What there is to recover (model − floor, per ``RECOVERED`` metric, with its CI), and
    the metrics withheld because that CI reaches 0 (metric → an undefined estimate)."""
    headroom = {metric: bs.estimate(stat, arrays, idx) for metric, stat in RECOVERED.items()}
    withheld = {metric: _undefined(
        f"the model is not above the floor (model − floor {h['value']:.3f} "
        f"[{h['ci'][0]:.3f}, {h['ci'][1]:.3f}]): nothing to recover; read fidelity")
        for metric, h in headroom.items()
        if h["ci"][0] is not None and np.isfinite(h["ci"][0]) and h["ci"][0] <= 0}
    return headroom, withheld


def summarise(per_instance: Sequence[dict[str, Any]], groups: dict[str, str], resamples: int = bs.RESAMPLES,
              seed: int = bs.SEED) -> dict[str, Any]:
    """Methods' metrics with CIs, every ``pattern − method`` difference and the
    verdicts, from per-instance records (``run``?, ``task``, ``index``, ``method``, ``q``,
    ``q_kept``, ``q_removed``, ``q_floor``?, ``nodes``, ``q_iia``?, ``q_iia_complement``?).
    ``groups``: method → group, in table order. Several tasks: every bootstrap resamples
    instances within tasks (stratified)."""
    methods = [m for m in groups if any(r["method"] == m for r in per_instance)]
    if not methods:
        raise DataError("no per-instance ablation results to summarise")
    keys = sorted(_keys(per_instance, methods[0]), key=lambda k: (str(k[0]), str(k[1]), k[2]))
    for m in methods:
        if _keys(per_instance, m) != set(keys):
            raise DataError(f"method {m} was ablated on other instances than {methods[0]}")
    n = len(keys)
    strata = [(k[0], k[1]) for k in keys]
    idx = bs.resample_indices_stratified(strata, resamples, seed)
    arrays = {m: _arrays(per_instance, m, keys) for m in methods}
    nodes = {m: float(np.mean([r.get("nodes", 0) for r in per_instance if r["method"] == m])) for m in methods}
    q0 = arrays[methods[0]][0]
    above = float((q0 > 0).mean()) > CHANCE
    headroom, withheld = _headroom(arrays[methods[0]], idx)
    if not above:
        withheld.update({m: _undefined("the model is not above chance: use accuracy_recovered") for m in ABOVE_CHANCE})
    # interchange: the instances with a counterfactual of the same length
    first = {(r.get("run", ""), r.get("task"), r["index"]): r for r in per_instance if r["method"] == methods[0]}
    iia_rows = [i for i, k in enumerate(keys) if first[k].get("q_iia") is not None]
    has_iia = any("q_iia" in r for r in per_instance)
    iia_arrays = {}
    if has_iia and iia_rows:
        sub = [keys[i] for i in iia_rows]
        iia_idx = bs.resample_indices_stratified([strata[i] for i in iia_rows], resamples, seed)
        iia_arrays = {m: _arrays(per_instance, m, sub, ("q_iia", "q_iia_complement")) for m in methods}
    out_methods = []
    for m in methods:
        entry: dict[str, Any] = {"name": m, "group": groups[m], "nodes": nodes[m]}
        for metric, (stat, _) in METRICS.items():
            entry[metric] = withheld[metric] if metric in withheld else bs.estimate(stat, arrays[m], idx)
        if iia_arrays:
            for metric, (stat, _) in IIA_METRICS.items():
                entry[metric] = bs.estimate(stat, iia_arrays[m], iia_idx)
        q, k, r, f = arrays[m]
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
                if metric in withheld:
                    continue
                d = bs.difference(stat, arrays["pattern"], stat, arrays[m], idx)
                comparisons.append({"a": "pattern", "b": m, "group": groups[m], "metric": metric,
                                    "difference": d, "verdict": bs.verdict(d["ci"], n, higher),
                                    "nodes": [nodes["pattern"], nodes[m]]})
            if iia_arrays:
                for metric, (stat, higher) in IIA_METRICS.items():
                    d = bs.difference(stat, iia_arrays["pattern"], stat, iia_arrays[m], iia_idx)
                    comparisons.append({"a": "pattern", "b": m, "group": groups[m], "metric": metric,
                                        "difference": d, "verdict": bs.verdict(d["ci"], len(iia_rows), higher),
                                        "nodes": [nodes["pattern"], nodes[m]]})
    out = {
        "instances": n,
        "tasks": len(set(strata)),
        "qoi": float(q0.mean()),
        "accuracy": float((q0 > 0).mean()),
        "above_chance": above,
        "headroom": {m.split("_")[0]: h for m, h in headroom.items()},
        "methods": out_methods,
        "comparisons": comparisons,
        "verdicts": group_verdicts(out_methods, comparisons),
    }
    if has_iia:
        out["interchange"] = _interchange_summary(per_instance, methods[0], keys, iia_rows, resamples, seed, strata)
    return out


def _interchange_summary(per_instance, method, keys, rows, resamples, seed, strata) -> dict[str, Any]:
    """The interchange's instances, its floor (nothing patched: share(q < 0)) and its
    ceiling (everything patched = the counterfactual run: share(q_cf < 0))."""
    out: dict[str, Any] = {"instances": len(rows), "excluded": len(keys) - len(rows)}
    if not rows:
        return out
    sub = [keys[i] for i in rows]
    q, q_cf = _arrays(per_instance, method, sub, ("q", "q_cf"))
    idx = bs.resample_indices_stratified([strata[i] for i in rows], resamples, seed)
    out["floor"] = bs.estimate(lambda q: _mean(q < 0), [q], idx)
    out["ceiling"] = bs.estimate(lambda c: _mean(c < 0), [q_cf], idx)
    return out


def floor_estimates(floor: Sequence[dict[str, Any]], resamples: int = bs.RESAMPLES,
                    seed: int = bs.SEED) -> dict[str, Any] | None:
    """Compression's floor: ``accuracy_retained`` and ``qoi_retained`` when NO node is
    kept (the reference alone), from records with ``q`` and ``q_kept``."""
    if not floor:
        return None
    q = np.array([float(r["q"]) for r in floor])
    k = np.array([float(r["q_kept"]) for r in floor])
    strata = [(r.get("run", ""), r.get("task")) for r in floor]
    idx = bs.resample_indices_stratified(strata, resamples, seed)
    return {name: bs.estimate(lambda q, k, s=stat: s(q, k, k, k), [q, k], idx)
            for name, (stat, _) in METRICS.items() if name in ("accuracy_retained", "qoi_retained")} | {
        "per_instance": list(floor)}


def group_verdicts(methods: list[dict[str, Any]], comparisons: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per group other than ``pattern`` and per headline metric (and ``iia`` with an
    interchange): patterns against the group's best method (by point value), the
    comparison's CI and verdict."""
    out = []
    metrics = HEADLINE + (("iia",) if any("iia" in m for m in methods) else ())
    for group in dict.fromkeys(m["group"] for m in methods if m["name"] != "pattern"):
        members = [m for m in methods if m["group"] == group and m["name"] != "pattern"]
        for metric in metrics:
            higher = (METRICS.get(metric) or IIA_METRICS[metric])[1]
            scored = [m for m in members if (m.get(metric) or {}).get("value") is not None]
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


_Cached = tuple[Path, dict[str, Any], dict[int, list[NodePath]], bool]
"""A method's node-set cache: (file, key, instance index → paths, whether the file held them all).
The file is written after every batch that added paths, so an interrupted ``ablate``
resumes with the node sets it had found (the key names every instance of the run)."""


def _selected(records: Sequence[RunRecord], sources: str, run: str) -> list[RunRecord]:
    """The records whose nodes are ablated: all, or those with the role ``sources`` (an
    ``InputError`` naming the run's roles where none has it)."""
    if sources != "all" and not any(sources in r.roles for r in records):
        roles = sorted({k for r in records for k in r.roles})
        raise InputError(f"no instance of {run} has the role {sources!r}; roles: {', '.join(roles) or 'none'}")
    return [r for r in records if sources == "all" or sources in r.roles]


def _node_caches(explainer: Any, records: Sequence[RunRecord], chosen: Sequence[Any], opts: AblationOptions,
                 cache_dir: str | Path | None) -> dict[str, _Cached]:
    """Each chosen method's cached node sets in ``cache_dir`` (empty where none is there yet;
    no entry at all without a run directory)."""
    cache: dict[str, _Cached] = {}
    if cache_dir is None or not Path(cache_dir).is_dir():
        return cache
    sha = model_sha256(explainer.model)
    steps = opts.steps if opts.steps is not None else explainer.config.steps
    quadrature = opts.quadrature or explainer.config.quadrature
    for m in chosen:
        path = Path(cache_dir) / nodes_file(m.name)
        key = _paths_key(explainer, records, m.name, opts.seed, steps, quadrature, None, sha)
        found = _read_paths(path, key) if path.is_file() else None
        cache[m.name] = (path, key, found or {}, found is not None and all(r.index in found for r in records))
    return cache


def _chunk_input(explainer: Any, chunk: Sequence[RunRecord], opts: AblationOptions, means: MeanReference | None,
                 run: str) -> tuple[MethodInput, Nodes, list[float]]:
    """One batch of the run's instances, checked against the model (same tokens, same QoI):
    the methods' input, the real nodes and the model's QoI per instance."""
    adapter = explainer.adapter
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
        rows_per_pass = auto_max_rows(adapter, int(batch.x.shape[1]))
    ctx = MethodInput(adapter, batch, chunk, quad, explainer.qoi, seed=opts.seed, max_rows=rows_per_pass)
    real, logits = record_nodes(adapter, batch.x, batch.attention_mask, batch.target_index)
    q = explainer.qoi(logits, batch.classes).double().cpu().tolist()
    for b, row in enumerate(chunk):
        recorded = row.q
        if abs(q[b] - recorded) > QOI_TOLERANCE * max(1.0, abs(recorded)):
            raise InputError(f"instance {row.index}: the model gives QoI {q[b]:.6g}, {run} recorded "
                             f"{recorded:.6g}: ablate with the run's model")
    if means is not None:
        ctx.cache["mean_nodes"] = means.for_batch(batch, real)
    return ctx, real, q


def _method_sets(ctx: MethodInput, method: Any, chunk: Sequence[RunRecord], cached: _Cached | None,
                 sources: str) -> list[NodeSet]:
    """The method's node set per instance of the chunk (from the cache where it holds them
    all, else computed and added to it), restricted to the ``sources`` role's paths."""
    if cached is not None and all(row.index in cached[2] for row in chunk):
        paths = [cached[2][row.index] for row in chunk]
    else:
        paths = method.paths(ctx)
        if cached is not None:
            cached[2].update({row.index: list(p) for row, p in zip(chunk, paths)})
            _write_paths(cached[0], cached[1], cached[2])  # as it goes: an interrupted run resumes
    return [node_set(paths[b], None if sources == "all" else {row.roles[sources]}) for b, row in enumerate(chunk)]


def _method_rows(ctx: MethodInput, name: str, chunk: Sequence[RunRecord], sets: Sequence[NodeSet],
                 opts: AblationOptions, q: list[float], q_floor: list[float],
                 cf: tuple[Nodes | None, list[Any], list[bool]]) -> list[dict[str, Any]]:
    """One method's per-instance record on a chunk: QoI with its nodes kept / removed
    (and, with counterfactual nodes, patched from the counterfactual)."""
    replace_h = opts.replace == "as+h"
    cf_nodes, q_cf, cf_ok = cf
    q_removed = ablated_qoi(ctx, sets, keep=False,
                            reference="zero" if opts.removal == "zero" else opts.reference).tolist()
    q_kept = ablated_qoi(ctx, sets, keep=True, reference=opts.reference, replace_h=replace_h).tolist()
    if cf_nodes is not None:
        q_iia = ablated_qoi(ctx, sets, keep=False, reference=cf_nodes).tolist()
        q_iia_c = ablated_qoi(ctx, sets, keep=True, reference=cf_nodes, replace_h=replace_h).tolist()
    out = []
    for b, row in enumerate(chunk):
        rec = {"index": row.index, "task": row.task, "method": name, "q": q[b], "q_kept": q_kept[b],
               "q_removed": q_removed[b], "q_floor": q_floor[b], "nodes": len(sets[b])}
        if cf_nodes is not None:
            ok = cf_ok[b]
            rec.update({"q_cf": q_cf[b] if ok else None, "q_iia": q_iia[b] if ok else None,
                        "q_iia_complement": q_iia_c[b] if ok else None})
        out.append(rec)
    return out


def _ablation_summary(opts: AblationOptions, used: Sequence[RunRecord], means: MeanReference | None,
                      groups: dict[str, str], per_instance: list[dict[str, Any]],
                      floor: list[dict[str, Any]]) -> dict[str, Any]:
    """The summary :func:`ablate_rows` returns, from the per-instance and floor records."""
    out: dict[str, Any] = {
        "sources": opts.sources, "reference": opts.reference, "replace": opts.replace,
        "interchange": opts.interchange, "removal": opts.removal,
        "reference_instances": (means.summary([len(r.explanation.tokens) for r in used]) if means is not None
                                else None),
        "bootstrap": {"resamples": opts.resamples, "seed": opts.bootstrap_seed, "level": bs.LEVEL,
                      "min_instances": bs.MIN_INSTANCES, "stratified_by": "task"},
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


def ablate_rows(explainer: Any, rows: Run | Sequence[RunRecord | dict[str, Any]],
                options: AblationOptions | None = None, progress: Progress = None,
                run: str = "the run", heldout: tuple[str, list[Query]] | None = None,
                counterfactual: dict[int, str] | None = None, cache_dir: str | Path | None = None) -> dict[str, Any]:
    """Compress / remove (and with ``options.interchange`` patch from counterfactuals)
    each method's nodes on a loaded run (a ``Run``, its records, or result rows as dicts,
    checked by the one reader's rules; see the module doc).

    ``heldout``: (what they are, queries) — the inputs of the ``mean`` reference (default:
    the run's own instances of each length, each left out); ``counterfactual``: index →
    text (default: the records'); ``cache_dir``: a run directory where node sets are
    cached. Returns the summary of :func:`summarise` plus ``sources``, ``reference``,
    ``replace``, ``removal``, ``reference_instances``, ``bootstrap`` and ``per_instance``;
    ``per_task`` when the rows span several tasks. ``progress``: a bar over instances ×
    methods on stderr (``None``: when stderr is a terminal; ``False``: none) or a
    callable ``advance(k)`` (:mod:`influence_patterns.progress`)."""
    with heap_allocations():  # every pass reuses the memory of the last (search.memory)
        return _ablate_rows(explainer, rows, options, progress, run, heldout, counterfactual, cache_dir)


def _ablate_rows(explainer: Any, rows: Run | Sequence[RunRecord | dict[str, Any]], options: AblationOptions | None,
                 progress: Progress, run: str, heldout: tuple[str, list[Query]] | None,
                 counterfactual: dict[int, str] | None, cache_dir: str | Path | None) -> dict[str, Any]:
    opts = (options or AblationOptions()).validate()
    records = Run.from_rows(rows, name=run).records
    if not records:
        raise DataError(f"{run} has no results yet")
    check_model(explainer, records, run)
    used = _selected(records, opts.sources, run)
    if opts.interchange:
        if explainer.adapter.kind not in ("mlm", "causal"):  # an LM's counterfactual flips its answer
            raise InputError("interchange: a classifier's input has no counterfactual with the answer flipped "
                             "(interchange is not measurable here)")
        counterfactual = counterfactuals(used, run=run, given=counterfactual)
    # every check that can refuse the input comes before the long work
    means = mean_reference(explainer, used, heldout, opts.batch_size) if opts.reference == "mean" else None
    order = {r.index: k for k, r in enumerate(used)}
    # batches of similar length: padding costs the IG-based methods (n sources x n positions)
    by_length = sorted(used, key=lambda r: len(r.explanation.tokens))
    chosen = [get_method(m) for m in opts.methods]
    cache = _node_caches(explainer, records, chosen, opts, cache_dir)
    per_instance: list[dict[str, Any]] = []
    floor: list[dict[str, Any]] = []
    # one unit of the bar: one instance through one method
    with progress_bar(len(used) * len(chosen), f"ablating {run}", progress) as advance:
        for start in range(0, len(by_length), opts.batch_size):
            chunk = by_length[start : start + opts.batch_size]
            ctx, real, q = _chunk_input(explainer, chunk, opts, means, run)
            cf: tuple[Nodes | None, list[Any], list[bool]] = (None, [None] * len(chunk), [False] * len(chunk))
            if opts.interchange:
                cf = _counterfactual_pass(explainer, ctx.batch, chunk, counterfactual, real)
            # keeping nothing: the reference alone (the floor of compression)
            empty: list[NodeSet] = [set() for _ in chunk]
            q_floor = ablated_qoi(ctx, empty, keep=True, reference=opts.reference,
                                  replace_h=opts.replace == "as+h").tolist()
            for b, row in enumerate(chunk):
                floor.append({"index": row.index, "task": row.task, "q": q[b], "q_kept": q_floor[b]})
            for m in chosen:
                sets = _method_sets(ctx, m, chunk, cache.get(m.name), opts.sources)
                per_instance.extend(_method_rows(ctx, m.name, chunk, sets, opts, q, q_floor, cf))
                advance(len(chunk))

    per_instance.sort(key=lambda r: order[r["index"]])  # the run's order (stable: methods stay in order)
    floor.sort(key=lambda r: order[r["index"]])
    return _ablation_summary(opts, used, means, {m.name: m.group for m in chosen}, per_instance, floor)


def _counterfactual_pass(explainer: Any, batch: Any, chunk: Sequence[RunRecord], texts: dict[int, str],
                         real: Nodes) -> tuple[Nodes, list[float], list[bool]]:
    """The counterfactuals' node values (B, n, ·) aligned with ``batch``, their QoI read
    with the REAL targets (< 0: the counterfactual's answer), and which instances have a
    counterfactual of the same token length (the others keep their real values and are
    left out of the interchange)."""
    queries = [Query(texts[r.index], query_of(r).targets, query_of(r).label) for r in chunk]
    cf = explainer.prepare(queries)
    ok = [cf.lengths[b] == batch.lengths[b] and int(cf.target_index[b]) == int(batch.target_index[b])
          for b in range(len(chunk))]
    nodes, logits = record_nodes(explainer.adapter, cf.x, cf.attention_mask, cf.target_index)
    q_cf = explainer.qoi(logits, batch.classes).double().cpu().tolist()
    N = batch.x.shape[1]
    out: list[list[torch.Tensor]] = [[], [], []]
    for k, part in enumerate(nodes):
        for l, t in enumerate(part):
            ref = real[k][l].clone()
            for b in range(len(chunk)):
                if ok[b]:
                    n = batch.lengths[b]
                    ref[b, :n] = t[b, :n]
            out[k].append(ref[:, :N])
    return (out[0], out[1], out[2]), q_cf, ok


def ablate_run(path: str | Path, options: AblationOptions | None = None, device: str = "auto",
               model: str | None = None, explainer: Any = None, save: bool = True,
               progress: Progress = None, json_out: str | Path | None = None) -> dict[str, Any]:
    """Compression and removal (and interchange) of a run directory for each method
    (module doc and docs/analyses.md). The model is the run's (``run.json``) unless
    ``model`` or ``explainer`` is given — checked against the run (layers, heads, kind,
    tokens and the QoI it recorded). IG-based baselines use the run's steps, quadrature
    and baseline. The ``mean`` reference's held-out inputs: template tasks and
    ``sa/sst2`` draw them (module doc); runs on a data file leave each instance out.

    Writes, atomically and only after everything is computed: ``json_out`` first, then
    (with ``save``) ``DIR/`` :func:`ablation_file` (``ablation.json`` for every source
    token under the default protocol); node sets are cached in ``DIR/nodes-<method>.json``.
    """
    opts = (options or AblationOptions()).validate()
    data = Run.open(path)
    meta = data.meta
    if not data.records:
        raise DataError(f"{path} has no results yet")
    if json_out is not None:  # before computing: a refused write must not lose the work
        check_writable(json_out, "--json")
    if save and Path(path).is_dir():
        check_writable(Path(path) / ablation_file(opts.sources, opts.reference, opts.replace))
    # runs written before Gauss–Legendre became the default recorded "riemann"
    quadrature = str(data.setting("quadrature", "riemann"))
    steps = data.setting("steps")
    steps = int(steps) if steps is not None else None
    baseline = data.setting("baseline", "mask")
    task = data.setting("task")
    on_file = bool(meta.get("data"))
    if opts.interchange and not meta.get("data") and task == "sa/sst2":
        raise InputError("interchange: task sa/sst2 has no counterfactual inputs (a review whose sentiment "
                         "flips is another text): interchange is not measurable here")
    cfs = None
    if opts.interchange:  # before the model is loaded: a refusal costs nothing
        cfs = counterfactuals(data.records, task=task, n=meta.get("n"), seed=meta.get("seed", 0),
                              generated=not on_file, run=str(path))
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
    heldout = None
    if opts.reference == "mean" and not on_file:
        heldout = heldout_queries(task, int(meta.get("seed", 0) or 0), explainer.adapter.kind)
    body = ablate_rows(explainer, data, opts, progress, run=str(path), heldout=heldout, counterfactual=cfs,
                       cache_dir=path)
    result = {
        "reference": opts.reference, "replace": opts.replace,
        "run": str(path), "task": task,
        "settings": {"model": data.setting("model"), "model_used": getattr(explainer, "name", None),
                     "steps": steps, "quadrature": quadrature, "baseline": baseline,
                     "keep_special": bool(meta.get("keep_special", False)), "methods": list(opts.methods),
                     "versions": meta.get("versions"), "threads": threads.current()},
        **body,
    }
    if json_out is not None:
        write_json(json_out, result)
    if save and Path(path).is_dir():
        write_json(Path(path) / ablation_file(opts.sources, opts.reference, opts.replace), result)
    return result


def ablation_file(sources: str = "all", reference: str = "mean", replace: str = "as") -> str:
    """``ablation.json`` for all source tokens under the default protocol (what ``report``
    reads), else ``ablation-<role>.json`` (the role's name made safe: a role from a data
    file never places the file outside the run directory); another protocol adds
    ``-<reference>`` and ``-as+h`` before ``.json``."""
    stem = "ablation" if sources == "all" else f"ablation-{safe_name(sources)}"
    if reference != "mean":
        stem += f"-{reference}"
    if replace != "as":
        stem += f"-{replace}"
    return stem + ".json"


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

