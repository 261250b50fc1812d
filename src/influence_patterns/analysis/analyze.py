"""``analyze_run``: accuracy, skip vs heads (with CIs, the ceiling L − 1 and optionally a
random-init null) and consistency of one run directory; ``analyze_runs``: several runs
plus the consistency–accuracy tests (definitions: docs/analyses.md)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from influence_patterns.analysis import bootstrap as bs
from influence_patterns.analysis.ablation import check_model
from influence_patterns.analysis.consistency import consistency, pattern_key
from influence_patterns.analysis.correlation import consistency_accuracy_correlation, consistency_role, instance_level
from influence_patterns.analysis.skip import iter_patterns, ratio_difference, skip_ratio_estimates, skip_statistics
from influence_patterns.analysis.null import NULLS, cached_null_records
from influence_patterns.errors import DataError, InputError
from influence_patterns.explainer import Explainer
from influence_patterns.progress import Progress, progress_bar
from influence_patterns.runs import Run, RunRecord

@dataclass(frozen=True)
class AnalyzeOptions:
    """``role``: the role whose consistency is tested (default ``subject`` when every run
    has it, else ``all``); ``null``: ``None`` or ``"random-init"`` (needs the model);
    ``stay_share``: also measure the skip's influence share on steps that stay (needs
    the model; H + 1 pattern influences per such step)."""

    role: str | None = None
    null: str | None = None
    null_seed: int = 0
    stay_share: bool = False
    resamples: int = bs.RESAMPLES
    seed: int = bs.SEED
    batch_size: int = 8
    device: str = "auto"
    model: str | None = None

    def validate(self) -> "AnalyzeOptions":
        if self.null is not None and self.null not in NULLS:
            raise InputError(f"unknown null {self.null!r}; choose from {', '.join(NULLS)}")
        bs.check_resamples(self.resamples)
        if self.batch_size < 1:
            raise InputError("batch_size must be at least 1")
        return self


def as_run(rows: Run | Sequence[RunRecord | dict[str, Any]], meta: dict[str, Any] | None = None,
           name: str = "the run") -> Run:
    """A checked :class:`Run` of ``rows`` (a ``Run`` as is; records or dicts checked by the
    one reader's rules, :meth:`Run.from_rows`)."""
    return Run.from_rows(rows, meta, name=name)


def analyze_rows(rows: Run | Sequence[RunRecord | dict[str, Any]], meta: dict[str, Any] | None = None,
                 run: str = "", resamples: int = bs.RESAMPLES, seed: int = bs.SEED) -> dict[str, Any]:
    """The analysis dict of a loaded run (a ``Run``, its records, or result rows as dicts;
    see :func:`analyze_run`)."""
    data = as_run(rows, meta, run or "the run")
    meta, records = data.meta, data.records
    if not records:
        raise DataError(f"{run or 'the run'} has no results yet")
    first = records[0].explanation
    num_layers = first.num_layers
    skip = skip_statistics((p for _, p in iter_patterns(records)), num_layers)
    est = skip_ratio_estimates(records, resamples, seed)
    tasks = sorted({r.task or "" for r in records})
    return {
        "run": run,
        "task": meta.get("task") or ",".join(t for t in tasks if t) or None,
        "model": meta.get("model") or first.model,
        "instances": len(records),
        "num_layers": num_layers,
        "num_heads": first.num_heads,
        "accuracy": sum(r.is_correct for r in records) / len(records),
        "mean_qoi": sum(r.q for r in records) / len(records),
        **skip,
        "skip_to_head_ratio_ci": est["skip_to_head_ratio"],
        "skip_to_head_ratio_weighted_ci": est["skip_to_head_ratio_weighted"],
        "ceiling": est["ceiling"],
        "consistency": consistency(records),
    }


def analyze_run(path: str | Path, options: AnalyzeOptions | None = None) -> dict[str, Any]:
    """Analyses of one run directory (DESIGN §6; definitions in docs/analyses.md).

    Keys: ``accuracy``, ``mean_qoi``; ``skip_share``, ``skip_share_weighted``, ``skip_to_head_ratio``,
    ``skip_to_head_ratio_weighted``, ``skip_steps``, ``head_steps``, ``per_layer``
    (see :mod:`influence_patterns.analysis.skip`), ``skip_to_head_ratio_ci`` and
    ``skip_to_head_ratio_weighted_ci`` (``{"value", "ci"}``), ``ceiling`` (L − 1);
    ``consistency``: role (and ``all``) → ``n``, ``distinct``, ``top_frequency``, ``entropy``,
    ``top_pattern``, ``skip_share``; with a null, ``null``; with ``stay_share``,
    ``stay_skip_share``.
    """
    return analyze_runs([path], options)["runs"][0]


def _explainer(run: Run, opts: AnalyzeOptions) -> Any:
    name = opts.model or run.setting("model")
    if not name:
        raise InputError("run.json names no model; pass model=")
    ex = Explainer.from_pretrained(
        name, device=opts.device, steps=run.setting("steps"),
        quadrature=str(run.setting("quadrature", "riemann")),
        baseline=run.setting("baseline", "mask"),
        keep_special=bool(run.meta.get("keep_special", False)),
    )
    check_model(ex, run.records)
    return ex


def stay_skip_share(explainer: Any, records: Sequence[RunRecord], role: str = "subject",
                    progress: Progress = None) -> dict[str, Any]:
    """On every step of a pattern that stays on its position (t_l = t_{l-1}): the share
    |I(π with the skip at l)| / (|I(skip)| + max_j |I(π with head j at l)|), the rest of π
    fixed; the mean over steps, for the ``role`` token's patterns and for every token.
    ``progress``: a bar over the instances."""
    H = explainer.adapter.num_heads
    shares: dict[str, list[float]] = {"all": [], role: []}
    with progress_bar(len(records), "skip share on steps that stay", progress) as advance:
        for record in records:
            _stay_shares(explainer, record, role, H, shares)
            advance(1)
    return {k: (float(np.mean(v)) if v else None) for k, v in shares.items()} | {
        f"steps_{k}": len(v) for k, v in shares.items()}


def _stay_shares(explainer: Any, record: RunRecord, role: str, H: int, shares: dict[str, list[float]]) -> None:
    """Append the stay-step shares of one instance to ``shares`` (see :func:`stay_skip_share`)."""
    e = record.explanation
    targets = tuple(e.targets) if e.targets else None
    role_index = record.roles.get(role)
    for p in record.patterns:
        pos, heads = list(p.positions), list(p.heads)
        for l in range(len(heads)):
            if pos[l + 1] != pos[l]:
                continue

            def infl(node: int | None) -> float:
                hs = heads.copy()
                hs[l] = node
                return abs(explainer.influence(e.text, pos[0], positions=pos, heads=hs, targets=targets,
                                               label=e.label))

            s = infl(None)
            best = max(infl(j) for j in range(H))
            if s + best > 0:
                share = s / (s + best)
                shares["all"].append(share)
                if role_index is not None and p.source_index == role_index:
                    shares[role].append(share)


def analyze_runs(paths: Sequence[str | Path], options: AnalyzeOptions | None = None,
                 progress: Callable[[str], None] | None = None, role: str | None = None,
                 bars: Progress = None) -> dict[str, Any]:
    """``{"runs": [...], "correlation": ..., "instance_level": ..., "pooled": ...}``.

    ``correlation`` (three or more runs): Spearman ρ of ``role``'s consistency against
    accuracy with a permutation p-value; ``instance_level``: Mann–Whitney U and bootstrap
    CIs, top-pattern instances against the rest, pooled over runs; ``pooled``: skip
    statistics over the patterns of all runs (same depth). ``role`` is a shorthand for
    ``options.role``. The same directory given twice is counted once (``notes`` says so).
    ``progress(message)`` announces the slow steps (``null``, ``stay_share``); ``bars``
    draws their progress bars (:mod:`influence_patterns.progress`; ``False``: none).
    """
    opts = (options or AnalyzeOptions(role=role)).validate()
    if role is not None and opts.role is None:
        opts = replace(opts, role=role)
    notes: list[str] = []
    unique: list[Path] = []
    for p in paths:
        rp = Path(p).resolve()
        if rp in [u.resolve() for u in unique]:
            notes.append(f"{p} was given twice; counted once")
            continue
        unique.append(Path(p))
    loaded = [(str(p), Run.open(p)) for p in unique]
    for name, run in loaded:
        expected = run.meta.get("instances")
        if isinstance(expected, int) and len(run) < expected:
            notes.append(f"{name} is incomplete: {len(run)} of {expected} instances (resume it with the same "
                         "`run` command); figures cover the instances written")
    analyses, patterns, depths = [], [], set()
    all_rows: list[RunRecord] = []
    all_null: list[RunRecord] = []
    for name, run in loaded:
        rows = run.records
        a = analyze_rows(run, run=name, resamples=opts.resamples, seed=opts.seed)
        if opts.null or opts.stay_share:
            ex = _explainer(run, opts)
            if opts.null:
                if progress is not None:
                    progress(f"{name}: GPR on a {opts.null} copy of the model")
                nrows = cached_null_records(ex, rows, name, opts.null, opts.null_seed, opts.batch_size,
                                            progress=bars)
                est = skip_ratio_estimates(nrows, opts.resamples, opts.seed)
                a["null"] = {
                    "kind": opts.null, "seed": opts.null_seed,
                    **skip_statistics((p for _, p in iter_patterns(nrows)), a["num_layers"]),
                    "skip_to_head_ratio_ci": est["skip_to_head_ratio"],
                    "skip_to_head_ratio_weighted_ci": est["skip_to_head_ratio_weighted"],
                    "difference": ratio_difference(rows, nrows, opts.resamples, opts.seed),
                }
                all_null += nrows
            if opts.stay_share:
                if progress is not None:
                    progress(f"{name}: skip share on steps that stay")
                a["stay_skip_share"] = stay_skip_share(ex, rows, progress=bars)
        analyses.append(a)
        all_rows += rows
        patterns += [pat for _, pat in iter_patterns(rows)]
        depths.add(a["num_layers"])

    roles = set.intersection(*[set(a["consistency"]) for a in analyses]) if analyses else set()
    chosen = opts.role or consistency_role(analyses)
    if chosen not in roles:
        raise InputError(f"no run has patterns for the role {chosen!r} in every instance set; "
                         f"roles: {', '.join(sorted(roles))}")
    out: dict[str, Any] = {"runs": analyses, "role": chosen, "notes": notes}
    out["instance_level"] = _pooled_instance_level(loaded, chosen, opts)
    if len(depths) == 1:
        est = skip_ratio_estimates(all_rows, opts.resamples, opts.seed)
        out["pooled"] = {**skip_statistics(patterns, next(iter(depths))),
                         "skip_to_head_ratio_ci": est["skip_to_head_ratio"],
                         "skip_to_head_ratio_weighted_ci": est["skip_to_head_ratio_weighted"],
                         "ceiling": est["ceiling"], "instances": len(all_rows)}
        if all_null and len(all_null) == len(all_rows):
            nest = skip_ratio_estimates(all_null, opts.resamples, opts.seed)
            out["pooled"]["null"] = {"kind": opts.null, "seed": opts.null_seed,
                                     "skip_to_head_ratio_ci": nest["skip_to_head_ratio"],
                                     "difference": ratio_difference(all_rows, all_null, opts.resamples, opts.seed)}
    if len(analyses) >= 2:
        out["correlation"] = consistency_accuracy_correlation(analyses, chosen)
    return out


def _role_key(record: RunRecord, role: str) -> Any:
    if role == "all":
        return None
    p = record.role_pattern(role)
    return None if p is None else pattern_key(record, p)


def _pooled_instance_level(loaded: list, role: str, opts: AnalyzeOptions) -> dict[str, Any]:
    """Instances whose ``role`` pattern is their task's most common one against the
    rest, the most common pattern found per run, pooled over runs."""
    if role == "all":
        return {"role": role, "note": "needs a role (one pattern per instance)"}
    rows: list[RunRecord] = []
    is_top: list[bool] = []
    for _, run in loaded:
        run_rows = run.records
        keys = [_role_key(r, role) for r in run_rows]
        have = [k for k in keys if k is not None]
        if not have:
            continue
        top = Counter(have).most_common(1)[0][0]
        for r, k in zip(run_rows, keys):
            if k is not None:
                rows.append(r)
                is_top.append(k == top)
    return {"role": role, **instance_level(rows, is_top, opts.resamples, opts.seed)}
