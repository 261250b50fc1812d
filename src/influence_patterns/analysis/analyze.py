"""``analyze_run``: accuracy, skip vs heads (with CIs, the ceiling L − 1, the reframed
statistics ``heads_per_pattern`` and ``skip_when_staying``, and optionally a null:
``norm-matched`` or ``random-init``) and consistency of one run directory; ``analyze_runs``: several runs
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
from influence_patterns.analysis.skip import (
    iter_patterns,
    ratio_difference,
    reframed_estimates,
    skip_ratio_estimates,
    skip_statistics,
    stay_difference,
)
from influence_patterns.analysis.null import NULLS, SILENT_NULL_WARNING, cached_null_records, head_norms, null_explainer
from influence_patterns.errors import DataError, InputError
from influence_patterns.explainer import Explainer
from influence_patterns.progress import Progress, progress_bar
from influence_patterns.runs import Run, RunRecord

@dataclass(frozen=True)
class AnalyzeOptions:
    """``role``: the role whose consistency is tested (default ``subject`` when every run
    has it, else ``all``); ``null``: ``None``, ``"norm-matched"`` (the null to use) or
    ``"random-init"`` (needs the model);
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
    reframed = reframed_estimates(records, first.num_heads, bs.resample_indices(len(records), resamples, seed))
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
        **reframed,
        "consistency": consistency(records),
    }


def analyze_run(path: str | Path, options: AnalyzeOptions | None = None) -> dict[str, Any]:
    """Analyses of one run directory (docs/method.md#analyses; definitions in docs/analyses.md).

    Keys: ``accuracy``, ``mean_qoi``; ``skip_share``, ``skip_share_weighted``, ``skip_to_head_ratio``,
    ``skip_to_head_ratio_weighted``, ``skip_steps``, ``head_steps``, ``per_layer``
    (see :mod:`influence_patterns.analysis.skip`), ``skip_to_head_ratio_ci`` and
    ``skip_to_head_ratio_weighted_ci`` (``{"value", "ci"}``), ``ceiling`` (L − 1);
    ``heads_per_pattern`` (``{"value", "ci"}``) and ``skip_when_staying`` (``{"value",
    "ci", "uniform", "steps", "weighted"}``), see :func:`.skip.reframed_estimates`;
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


class Analysis(dict):  # type: ignore[type-arg]
    """The result of :func:`analyze_runs`: a plain dict (JSON as it is) that a notebook
    shows as a table (task, n, accuracy, skip share, top pattern) and prints briefly."""

    def __repr__(self) -> str:
        runs = ", ".join(f"{a.get('task')} (n={a.get('instances')}, acc={a.get('accuracy', 0):.3f})"
                         for a in self.get("runs", []))
        return f"Analysis(role={self.get('role')!r}, runs=[{runs}])"

    def _repr_html_(self) -> str:
        from influence_patterns.viz.notebook import analysis_html

        return analysis_html(self)


def _open_runs(paths: Sequence[str | Path], notes: list[str]) -> list[tuple[str, Run]]:
    """The run directories, each once (a second mention noted), opened; an incomplete run is
    noted with the command that resumes it."""
    unique: list[Path] = []
    for p in paths:
        rp = Path(p).resolve()
        if rp in [u.resolve() for u in unique]:
            notes.append(f"{p} was given twice; counted once")
            continue
        unique.append(Path(p))
    opened = [(str(p), Run.open(p)) for p in unique]
    for name, run in opened:
        expected = run.meta.get("instances")
        if isinstance(expected, int) and len(run) < expected:
            notes.append(f"{name} is incomplete: {len(run)} of {expected} instances (resume it with the same "
                         "`run` command); figures cover the instances written")
    return opened


def _null_section(ex: Any, rows: list[RunRecord], nrows: list[RunRecord], a: dict[str, Any],
                  opts: AnalyzeOptions, notes: list[str]) -> dict[str, Any]:
    """One run's ``null`` entry: the run's skip statistics on the null model's patterns
    (``nrows``, the same instances) and their differences from the model's."""
    est = skip_ratio_estimates(nrows, opts.resamples, opts.seed)
    idx = bs.resample_indices(len(rows), opts.resamples, opts.seed)
    null = {
        "kind": opts.null, "seed": opts.null_seed,
        **skip_statistics((p for _, p in iter_patterns(nrows)), a["num_layers"]),
        "skip_to_head_ratio_ci": est["skip_to_head_ratio"],
        "skip_to_head_ratio_weighted_ci": est["skip_to_head_ratio_weighted"],
        **reframed_estimates(nrows, a["num_heads"], idx),
        "difference": ratio_difference(rows, nrows, opts.resamples, opts.seed),
        "skip_when_staying_difference": stay_difference(rows, nrows, idx),
        "head_norm": {"model": head_norms(ex, rows),
                      "null": head_norms(null_explainer(ex, opts.null, opts.null_seed), rows)},
    }
    if opts.null == "random-init":
        null["warning"] = SILENT_NULL_WARNING
        if SILENT_NULL_WARNING not in notes:
            notes.append(SILENT_NULL_WARNING)
    return null


def _pooled(loaded: Sequence[tuple[str, Run]], analyses: Sequence[dict[str, Any]], all_rows: list[RunRecord],
            all_null: list[RunRecord], patterns: list[Any], depth: int, opts: AnalyzeOptions) -> dict[str, Any]:
    """Skip statistics pooled over runs of one depth; every bootstrap resamples instances
    within runs (tasks). With a null for every instance, the null's beside them."""
    strata = [k for k, (_, run) in enumerate(loaded) for _ in run.records]
    idx = bs.resample_indices_stratified(strata, opts.resamples, opts.seed)
    est = skip_ratio_estimates(all_rows, opts.resamples, opts.seed, idx=idx)
    heads = {a["num_heads"] for a in analyses}
    pooled = {**skip_statistics(patterns, depth),
              "skip_to_head_ratio_ci": est["skip_to_head_ratio"],
              "skip_to_head_ratio_weighted_ci": est["skip_to_head_ratio_weighted"],
              "ceiling": est["ceiling"], "instances": len(all_rows), "stratified_by": "run"}
    if len(heads) == 1:
        pooled.update(reframed_estimates(all_rows, next(iter(heads)), idx))
    if all_null and len(all_null) == len(all_rows):
        nest = skip_ratio_estimates(all_null, opts.resamples, opts.seed, idx=idx)
        pooled["null"] = {"kind": opts.null, "seed": opts.null_seed,
                          "skip_to_head_ratio_ci": nest["skip_to_head_ratio"],
                          "difference": ratio_difference(all_rows, all_null, opts.resamples, opts.seed, idx=idx)}
        if len(heads) == 1:
            pooled["null"].update(reframed_estimates(all_null, next(iter(heads)), idx))
            pooled["null"]["skip_when_staying_difference"] = stay_difference(all_rows, all_null, idx)
        if opts.null == "random-init":
            pooled["null"]["warning"] = SILENT_NULL_WARNING
    return pooled


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
    kept, notes = run_paths(paths)
    opened = _open_runs(kept, notes)
    loaded = [(name, part) for name, run in opened for part in split_tasks(run)]
    analyses, patterns, depths = [], [], set()
    all_rows: list[RunRecord] = []
    all_null: list[RunRecord] = []
    null_of: dict[str, list[RunRecord]] = {}  # one null per run directory, split by task like the run
    explainers: dict[str, Any] = {}
    for name, run in loaded:
        rows = run.records
        a = analyze_rows(run, run=name, resamples=opts.resamples, seed=opts.seed)
        if opts.null or opts.stay_share:
            ex = explainers[name] = explainers.get(name) or _explainer(run, opts)
            if opts.null:
                if name not in null_of:
                    whole = dict(opened)[name].records
                    if progress is not None:
                        progress(f"{name}: GPR on a {opts.null} copy of the model")
                    null_of[name] = cached_null_records(ex, whole, name, opts.null, opts.null_seed,
                                                        opts.batch_size, progress=bars)
                mine = {r.index for r in rows}
                nrows = [r for r in null_of[name] if r.index in mine]
                a["null"] = _null_section(ex, rows, nrows, a, opts, notes)
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
    out: dict[str, Any] = Analysis({"runs": analyses, "role": chosen, "notes": notes})
    out["instance_level"] = _pooled_instance_level(loaded, chosen, opts)
    if len(depths) == 1:
        out["pooled"] = _pooled(loaded, analyses, all_rows, all_null, patterns, next(iter(depths)), opts)
    if len(analyses) >= 2:
        out["correlation"] = consistency_accuracy_correlation(analyses, chosen)
    return out


def split_tasks(run: Run) -> list[Run]:
    """A run that holds several tasks (``run --data FILE`` without ``--task``) as one
    ``Run`` per task, in order of first appearance (``meta["task"]`` set); others as they are."""
    tasks = list(dict.fromkeys(r.task or "" for r in run.records))
    if len(tasks) <= 1:
        return [run]
    return [Run.from_rows([r for r in run.records if (r.task or "") == t], {**run.meta, "task": t},
                          name=f"{run.path} (task {t})", path=run.path) for t in tasks]


def run_paths(paths: Sequence[str | Path]) -> tuple[list[Path], list[str]]:
    """The run directories (or ``results.jsonl`` files) among ``paths``, and a note for each
    other file left out (a glob such as ``runs/*`` also matches ``*-ablation.json``);
    ``InputError`` when none is a run."""
    kept: list[Path] = []
    notes: list[str] = []
    for p in map(Path, paths):
        if p.is_file() and p.name != "results.jsonl" and p.suffix in (".json", ".csv", ".md", ".html", ".svg",
                                                                        ".png", ".pdf", ".lock", ".txt"):
            notes.append(f"{p} is not a run directory; left out")
        else:
            kept.append(p)
    if not kept and paths:
        raise InputError(f"none of the {len(notes)} path(s) given is a run directory (e.g. {paths[0]})")
    return kept, notes


def _role_key(record: RunRecord, role: str) -> Any:
    if role == "all":
        return None
    p = record.role_pattern(role)
    return None if p is None else pattern_key(record, p)


def _pooled_instance_level(loaded: list, role: str, opts: AnalyzeOptions) -> dict[str, Any]:
    """Instances whose ``role`` pattern is their task's most common one against the
    rest, the most common pattern found per run; tested within runs (stratified)."""
    if role == "all":
        return {"role": role, "note": "needs a role (one pattern per instance)"}
    rows: list[RunRecord] = []
    is_top: list[bool] = []
    strata: list[str] = []
    for name, run in loaded:
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
                strata.append(name)
    return {"role": role, **instance_level(rows, is_top, opts.resamples, opts.seed, strata)}
