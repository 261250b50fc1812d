"""The paper's findings, measured on one or more run directories, as DATA: a verdict
summary (finding, value with CI, null or ceiling, verdict), the settings, per-task
tables and warnings. Rendering (Markdown, HTML) lives in ``influence_patterns.viz.report_html``.

Every verdict comes from a confidence interval (rules in docs/analyses.md and
:mod:`.bootstrap`): "holds", "does not hold", "inconclusive", "too few instances", or
"not measurable" with the reason.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from influence_patterns.analysis import bootstrap as bs
from influence_patterns.analysis.ablation import (
    AblationOptions,
    ablate_run,
    ablation_file,
    floor_estimates,
    read_ablation,
    summarise,
)
from influence_patterns.analysis.analyze import AnalyzeOptions, analyze_runs, run_paths
from influence_patterns.models.defaults import DEFAULT_MODELS, model_dir
from influence_patterns.progress import Progress
from influence_patterns.runs import read_run_json

PAPER_SKIP_RATIO = 3.0
#: named beside the across-task consistency test
CONFOUNDS = ("sentence length (tasks differ in length, and longer sentences spread influence over more positions)",
             "the number of roles per task (nouns that could agree: more candidates, more distinct patterns)",
             "structures seen in training (the default models were trained on some templates and not others)")
PAPER_PATTERN_VS_ATTENTION = 0.74
PAPER_PATTERN_VS_LAYER = 0.25
ROLE = "subject"  # the role of the second ablation table (DIR/ablation-subject.json), when present
#: fewer tasks than this cannot make Spearman's ρ significant at 5% unless the ranking is perfect
MIN_TASKS = 5


@dataclass(frozen=True)
class ReportOptions:
    """``ablate``: compute ``DIR/ablation.json`` where missing (with ``ablation``);
    ``analyze``: options of the analyses (null, role, bootstrap)."""

    ablate: bool = False
    ablation: AblationOptions = field(default_factory=AblationOptions)
    analyze: AnalyzeOptions = field(default_factory=AnalyzeOptions)


def fmt(x: Any, digits: int = 3) -> str:
    """A number for a table: ``digits`` decimals for floats, "–" for missing."""
    if x is None:
        return "–"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def run_label(analysis: dict[str, Any]) -> str:
    """A run as tables name it beside its task: its directory's name."""
    run = str(analysis.get("run") or "")
    return Path(run).name if run else "–"


def unique_paths(paths: Sequence[str | Path]) -> tuple[list[Path], list[str]]:
    """``paths`` without repeats (the same directory resolved), and a note per repeat."""
    out: list[Path] = []
    notes: list[str] = []
    seen: set[Path] = set()
    for p in paths:
        r = Path(p).resolve()
        if r in seen:
            notes.append(f"{p} was given twice; counted once")
            continue
        seen.add(r)
        out.append(Path(p))
    return out, notes


def load_ablations(paths: Sequence[Path], sources: str = "all", compute: bool = False,
                   options: AblationOptions | None = None, progress: Progress = None) -> list[dict[str, Any] | None]:
    """The checked ablation file of every run (``None`` where missing, unless ``compute``;
    ``progress``: the bar of each computed ablation, :mod:`influence_patterns.progress`)."""
    out: list[dict[str, Any] | None] = []
    for p in paths:
        f = p / ablation_file(sources)
        if f.is_file():
            out.append(read_ablation(f))
        elif compute and sources == "all":
            out.append(ablate_run(p, options, progress=progress))
        else:
            out.append(None)
    return out


def pooled_ablation(ablations: Sequence[dict[str, Any] | None], paths: Sequence[Path],
                    resamples: int = bs.RESAMPLES, seed: int = bs.SEED) -> dict[str, Any] | None:
    """Every run's per-instance results together, summarised again (bootstrap over all
    instances); ``None`` when there is none. Only methods present in every run."""
    present = [(a, p) for a, p in zip(ablations, paths) if a]
    if not present:
        return None
    groups: dict[str, str] = {}
    common = None
    for a, _ in present:
        names = [m["name"] for m in a["methods"]]
        common = names if common is None else [n for n in common if n in names]
        groups.update({m["name"]: m.get("group", "") for m in a["methods"]})
    per = [{**r, "run": str(p)} for a, p in present for r in a["per_instance"] if r["method"] in common]
    floor = [r for a, _ in present for r in ((a.get("floor") or {}).get("per_instance") or [])]
    protocols = sorted({f"reference {a.get('reference', 'baseline')}, replace {a.get('replace', 'as')}"
                        for a, _ in present})
    return {"runs": len(present), "protocol": "; ".join(protocols),
            **summarise(per, {n: groups[n] for n in common or []}, resamples, seed),
            "floor": floor_estimates(floor, resamples, seed) if all(a.get("floor") for a, _ in present) else None}


def _skip_rows(analysis: dict[str, Any]) -> list[dict[str, Any]]:
    """Skip vs heads: the paper's count ratio (descriptive: it is L/h̄ − 1), and what
    carries the claim — on steps that stay on their position, the share taking the skip
    against a uniform choice among the H + 1 and against the null (norm-matched: heads as
    loud as the model's; random-init is flagged: its heads are nearly silent)."""
    pooled = analysis.get("pooled") or {}
    est = pooled.get("skip_to_head_ratio_ci")
    n = pooled.get("instances", 0)
    null = pooled.get("null")
    hbar = pooled.get("heads_per_pattern")
    ratio = {"finding": "skip:head steps, the paper's descriptive number (≈ 3)", "value": est,
             "reference": f"= L/h̄ − 1 with h̄ = {ci_text(hbar)} head steps per pattern; "
                          f"ceiling L−1 = {pooled.get('ceiling', '–')}"
                          + (f"; {null['kind']} null {ci_text(null['skip_to_head_ratio_ci'])}" if null else ""),
             "verdict": "descriptive (restates how often the path moves)" if est else
                        "not measurable: runs of different depths", "n": n}
    stay = pooled.get("skip_when_staying")
    rows = [ratio]
    if not stay:
        return rows
    uniform = stay.get("uniform")
    lo, hi = stay["ci"]
    verdict = bs.TOO_FEW if n < bs.MIN_INSTANCES else (
        bs.HOLDS if lo is not None and lo > uniform else bs.DOES_NOT_HOLD if hi is not None and hi < uniform
        else bs.INCONCLUSIVE)
    rows.append({"finding": "on steps that stay on their position, patterns take the skip more than a uniform "
                            "choice among the skip and the H heads",
                 "value": stay, "reference": f"uniform 1/(H+1) = {uniform:.3f}; weighted by |I| "
                                             f"{ci_text(stay.get('weighted'))}",
                 "verdict": verdict, "n": n})
    if null is None:
        rows.append({"finding": "... more than a null model explaining the same sentences", "value": None,
                     "reference": "–", "verdict": "inconclusive: no null (run with --null norm-matched)", "n": n})
    elif null.get("skip_when_staying_difference") is not None:
        d = null["skip_when_staying_difference"]
        note = " (random-init: its heads are nearly silent, the verdict is decided in advance)" \
            if null["kind"] == "random-init" else ""
        rows.append({"finding": f"... more than the {null['kind']} null explaining the same sentences",
                     "value": stay, "reference": f"{null['kind']} null {ci_text(null.get('skip_when_staying'))}",
                     "difference": d,
                     "verdict": bs.verdict(d["ci"], n) + f" (model − null {ci_text(d)})" + note, "n": n})
    return rows


def ci_text(est: dict[str, Any] | None, digits: int = 2) -> str:
    """``value [lo, hi]`` of an estimate ``{"value", "ci"}``; "–" when missing."""
    if not est or est.get("value") is None:
        return "–"
    lo, hi = est["ci"]
    if lo is None:
        return f"{est['value']:.{digits}f}"
    return f"{est['value']:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def _stay_rows(analysis: dict[str, Any]) -> list[dict[str, Any]]:
    """The skip's influence share on steps that stay (``--stay-share``), step-weighted
    over runs; descriptive (no test)."""
    runs = [r for r in analysis["runs"] if r.get("stay_skip_share")]
    out = []
    for key, label in (("subject", "the subject token"), ("all", "every token")):
        steps = sum(r["stay_skip_share"].get(f"steps_{key}", 0) for r in runs)
        if not steps:
            continue
        mean = sum((r["stay_skip_share"].get(key) or 0.0) * r["stay_skip_share"].get(f"steps_{key}", 0)
                   for r in runs) / steps
        out.append({"finding": f"influence share of the skip on steps that stay ({label})",
                    "value": {"value": mean, "ci": [None, None]}, "reference": f"{steps} steps; 0.5 = as much as the best head",
                    "verdict": "descriptive (no test)", "n": steps})
    return out


def _correlation_row(analysis: dict[str, Any]) -> dict[str, Any]:
    corr = analysis.get("correlation") or {}
    runs = analysis["runs"]
    k = len(runs)
    rho, p = corr.get("spearman_rho"), corr.get("p_value")
    row = {"finding": f"consistency ({analysis['role']}) tracks accuracy across tasks (Spearman ρ)",
           "value": None if rho is None else {"value": rho, "ci": [None, None]},
           "reference": f"permutation p = {fmt(p, 3)}; {k} task(s); confounded by sentence length, roles per "
                        "task and structures seen in training", "n": k}
    if k < 3:
        row["verdict"] = "not measurable: needs at least three tasks"
    elif len({r["accuracy"] for r in runs}) == 1:
        row["verdict"] = f"not measurable: accuracy is {runs[0]['accuracy']:.3f} on every task"
    elif rho is None or p is None:
        row["verdict"] = "not measurable: consistency is constant"
    elif p < 0.05:
        row["verdict"] = bs.HOLDS if rho > 0 else bs.DOES_NOT_HOLD
    else:
        row["verdict"] = bs.INCONCLUSIVE + (f" (underpowered: fewer than {MIN_TASKS} tasks)" if k < MIN_TASKS else "")
    return row


def _instance_row(analysis: dict[str, Any]) -> dict[str, Any]:
    inst = analysis.get("instance_level") or {}
    d = inst.get("qoi_difference")
    n = inst.get("n_top", 0) + inst.get("n_rest", 0)
    pooled = inst.get("pooled") or {}
    row = {"finding": f"within a task, instances on its most common {inst.get('role')} pattern have a higher QoI",
           "value": d, "reference": f"permutation within tasks p = {fmt(inst.get('p_value'), 3)} "
                                    f"({inst.get('informative_strata', 0)} task(s) with both groups); top "
                                    f"{inst.get('n_top', 0)}, rest {inst.get('n_rest', 0)}; pooled over tasks "
                                    f"(repeats the across-task test): {fmt(pooled.get('qoi_difference'), 2)}",
           "n": n}
    if d is None:
        row["verdict"] = "not measurable: " + (inst.get("note") or "every instance takes the same pattern")
    else:
        row["verdict"] = bs.verdict(d["ci"], n)
    return row


def metric_label(metric: str) -> str:
    """A metric's name as tables print it: ``qoi_retained`` → ``QoI retained``, ``iia`` → ``IIA``."""
    return metric.replace("qoi", "QoI").replace("iia", "IIA").replace("_", " ")


def _compression_rows(pooled: dict[str, Any] | None, label: str) -> list[dict[str, Any]]:
    if not pooled:
        return [{"finding": f"patterns recover more than other explanations ({label})", "value": None,
                 "reference": "–", "verdict": "not measured (run ablate, or report --ablate)", "n": 0}]
    protocol = pooled.get("protocol") or "–"
    rows = []
    for v in pooled["verdicts"]:
        n = pooled["instances"] if v["metric"] != "iia" else (pooled.get("interchange") or {}).get("instances", 0)
        rows.append({
            "finding": f"patterns beat the best {v['group']} method on {metric_label(v['metric'])} "
                       f"({v['best']}; {label}; {protocol if v['metric'] != 'iia' else 'interchange'})",
            "value": v["difference"], "reference": f"nodes {v['nodes'][0]:.1f} vs {v['nodes'][1]:.1f}",
            "verdict": v["verdict"], "n": n,
        })
    return rows


def model_build(name: str | None) -> str | None:
    """``sha256:<12 hex> (built <date>)`` of a model's weights file (a default model in the
    cache or a checkpoint directory); ``None`` when it is not found."""
    if not name:
        return None
    d = model_dir(name) if name in DEFAULT_MODELS else Path(name)
    weights = d / "model.safetensors"
    if not weights.is_file():
        return None
    h = hashlib.sha256()
    with open(weights, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    out = f"sha256:{h.hexdigest()[:12]}"
    try:
        built = json.loads((d / "build.json").read_text()).get("built_at")
    except (OSError, ValueError):
        built = None
    return out + (f" (built {built})" if built else "")


def settings(analysis: dict[str, Any], metas: Sequence[dict[str, Any]], ablations: Sequence[dict[str, Any] | None],
             opts: ReportOptions) -> dict[str, Any]:
    """What the numbers were computed with."""
    def uniq(values: Sequence[Any]) -> str:
        vals = [str(v) for v in dict.fromkeys(values) if v is not None]
        return ", ".join(vals) or "–"

    abl = [a for a in ablations if a]
    return {
        "model": uniq([m.get("model") for m in metas] or [r.get("model") for r in analysis["runs"]]),
        "model_build": uniq([model_build(m.get("model")) for m in dict((m.get("model"), m) for m in metas).values()]),
        "steps": uniq([m.get("steps") for m in metas]),
        "quadrature": uniq([m.get("quadrature") for m in metas]),
        "baseline": uniq([m.get("baseline") for m in metas]),
        "reference": uniq([a.get("reference") for a in abl]),
        "replace": uniq([a.get("replace", "as") for a in abl]),
        "removal": uniq([a.get("removal") for a in abl]),
        "seeds": {"instances": uniq([m.get("seed") for m in metas]),
                  "controls": uniq([a.get("seed") for a in abl]),
                  "bootstrap": uniq([(a.get("bootstrap") or {}).get("seed") for a in abl] + [opts.analyze.seed]),
                  "null": opts.analyze.null_seed if opts.analyze.null else None},
        "resamples": opts.analyze.resamples,
        "n_per_task": {str(r["task"]): r["instances"] for r in analysis["runs"]},
        "versions": uniq([(m.get("versions") or {}).get("influence_patterns") for m in metas]),
    }


def findings(paths: Sequence[str | Path], options: ReportOptions | None = None,
             progress: Progress = None) -> dict[str, Any]:
    """Everything the report says, as numbers: ``summary`` (one row per finding),
    ``settings``, ``analysis`` (per-task tables), ``ablation`` (pooled) and
    ``ablation_by_role``, ``ablation_runs`` (per task), ``warnings``, ``notes``.
    ``progress``: the bars of the slow steps (``--null``, ``--stay-share``, ``--ablate``)."""
    opts = options or ReportOptions()
    kept, skipped = run_paths(paths)
    dirs, notes = unique_paths(kept)
    notes = skipped + notes
    analysis = analyze_runs(dirs, opts.analyze, bars=progress)
    metas = [read_run_json(d) for d in dirs]
    ablations = load_ablations(dirs, "all", opts.ablate, opts.ablation, progress)
    by_role = load_ablations(dirs, ROLE)
    pooled = pooled_ablation(ablations, dirs, opts.analyze.resamples, opts.analyze.seed)
    pooled_role = pooled_ablation(by_role, dirs, opts.analyze.resamples, opts.analyze.seed)
    summary = _skip_rows(analysis) + _stay_rows(analysis) + [_correlation_row(analysis), _instance_row(analysis)]
    summary += _compression_rows(pooled, "every source token")
    if pooled_role:
        summary += _compression_rows(pooled_role, f"{ROLE} token only")
    warnings = [f"{r['task']}: {r['instances']} instances (< {bs.MIN_INSTANCES}): its verdicts read "
                f"'too few instances'" for r in analysis["runs"] if r["instances"] < bs.MIN_INSTANCES]
    if 3 <= len(analysis["runs"]) < MIN_TASKS:
        warnings.append(f"{len(analysis['runs'])} tasks: Spearman ρ reaches p < 0.05 only with a perfect ranking")
    return {
        "summary": summary,
        "settings": settings(analysis, metas, ablations, opts),
        "analysis": analysis,
        "runs": analysis["runs"],
        "ablation": pooled,
        "ablation_by_role": pooled_role,
        "ablation_role": ROLE,
        "ablation_runs": [(str(d), a) for d, a in zip(dirs, ablations) if a],
        "warnings": warnings,
        "confounds": list(CONFOUNDS),
        "notes": notes + analysis.get("notes", []),
        "paper": {"skip_ratio": PAPER_SKIP_RATIO, "pattern_vs_attention": PAPER_PATTERN_VS_ATTENTION,
                  "pattern_vs_layer": PAPER_PATTERN_VS_LAYER},
    }
