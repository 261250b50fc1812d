"""The paper's three findings, measured on one or more run directories, side by side
with the paper's figures: Markdown (``write_report``) and HTML sections
(``html_sections``, drawn by ``influence_patterns.viz.html``).

Only measured numbers are reported; each finding gets a verdict (holds / partly /
does not hold / not measurable) computed from them by the rules in docs/analyses.md.
Nothing here imports matplotlib; ``html_sections`` imports the viz package lazily.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from influence_patterns.analysis.ablation import ABLATION_FILE, ablate_run, ablation_file
from influence_patterns.analysis.analyze import analyze_runs
from influence_patterns.analysis.correlation import consistency_role
from influence_patterns.errors import DataError, InputError

PAPER_SKIP_RATIO = 3.0
PAPER_PATTERN_VS_ATTENTION = 0.74
PAPER_PATTERN_VS_LAYER = 0.25
ROLE = "subject"  # the role of the second ablation table (DIR/ablation-subject.json), when present


def fmt(x: Any, digits: int = 3) -> str:
    """A number for a table: ``digits`` decimals for floats, "–" for missing."""
    if x is None:
        return "–"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


_f = fmt


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:+.0f}%"


def load_ablations(paths: Sequence[str | Path], compute: bool = False, **kwargs: Any) -> list[dict[str, Any] | None]:
    """``DIR/ablation.json`` of every run (``None`` where missing, unless ``compute``)."""
    out: list[dict[str, Any] | None] = []
    for p in paths:
        f = Path(p) / ABLATION_FILE
        if f.is_file():
            out.append(json.loads(f.read_text()))
        elif compute:
            out.append(ablate_run(p, **kwargs))
        else:
            out.append(None)
    return out


def pool_ablations(ablations: Sequence[dict[str, Any] | None]) -> list[dict[str, Any]]:
    """Per method over runs: instance-weighted comprehensiveness and accuracy after
    removal; sufficiency pooled as Σ n·mean(q⁺) / Σ n·mean(q)."""
    acc: dict[str, dict[str, float]] = {}
    order: list[str] = []
    groups: dict[str, str] = {}
    for a in ablations:
        if not a:
            continue
        n = a["instances"]
        for m in a["methods"]:
            name = m["name"]
            if name not in acc:
                acc[name] = {"n": 0, "comp": 0.0, "acc": 0.0, "kept": 0.0, "q": 0.0}
                order.append(name)
                groups[name] = m.get("group", "")
            s = acc[name]
            s["n"] += n
            s["comp"] += n * (m["comprehensiveness"] or 0.0)
            s["acc"] += n * (m["accuracy_after_removal"] or 0.0)
            s["kept"] += n * (m.get("qoi_kept") or 0.0)
            s["q"] += n * (a.get("qoi") or 0.0)
    return [
        {
            "name": name,
            "group": groups[name],
            "instances": int(acc[name]["n"]),
            "comprehensiveness": acc[name]["comp"] / acc[name]["n"],
            "sufficiency": acc[name]["kept"] / acc[name]["q"] if acc[name]["q"] else None,
            "accuracy_after_removal": acc[name]["acc"] / acc[name]["n"],
        }
        for name in order
        if acc[name]["n"]
    ]


def _relative(pattern: float | None, best: float | None) -> float | None:
    if pattern is None or best is None or best == 0:
        return None
    return (pattern - best) / abs(best)


def findings(paths: Sequence[str | Path], ablate: bool = False, **ablate_kwargs: Any) -> dict[str, Any]:
    """Everything the report says, as numbers: analyses, pooled skip statistics,
    correlation, pooled ablation and the comparisons with the paper."""
    analysis = analyze_runs(paths)
    runs = analysis["runs"]
    if "pooled" in analysis:
        pooled = analysis["pooled"]
    else:
        pooled = {k: runs[0][k] for k in ("skip_share", "skip_to_head_ratio", "skip_to_head_ratio_weighted")}
    ratio = pooled.get("skip_to_head_ratio")
    weighted = pooled.get("skip_to_head_ratio_weighted")
    if ratio is None:
        skip_verdict = "not measurable (no head steps)"
    elif ratio >= 2.0 and (weighted is None or weighted >= 2.0):
        skip_verdict = "holds" + (" (about 3×)" if 2.0 <= ratio <= 4.5 else f" in direction (ratio {ratio:.1f}×, not about 3×)")
    elif ratio > 1.0:
        skip_verdict = "partly: skips outnumber heads, but by less than 2×"
    else:
        skip_verdict = "does not hold: heads are taken at least as often as skips"

    corr = analysis.get("correlation") or {
        "role": consistency_role(runs), "spearman_rho": None, "p_value": None, "runs": [r["task"] for r in runs],
    }
    rho, p = corr.get("spearman_rho"), corr.get("p_value")
    if len(runs) >= 3 and len({r["accuracy"] for r in runs}) == 1:
        corr_verdict = (f"not measurable: accuracy is {runs[0]['accuracy']:.3f} on every task, so it cannot "
                        "track anything")
    elif len(runs) < 3 or rho is None:
        corr_verdict = "not measurable: needs at least three runs (tasks) with varying consistency and accuracy"
    elif rho > 0 and p is not None and p < 0.05:
        corr_verdict = "holds (positive and significant at 5%)"
    elif rho > 0:
        corr_verdict = f"partly: positive but not significant (p = {p:.2f}, {len(corr['runs'])} tasks)"
    else:
        corr_verdict = "does not hold: consistency does not rise with accuracy"

    ablations = load_ablations(paths, compute=ablate, **ablate_kwargs)
    pooled_abl = pool_ablations(ablations)
    role_abl = [json.loads((Path(d) / ablation_file(ROLE)).read_text())
                for d in paths if (Path(d) / ablation_file(ROLE)).is_file()]
    pooled_role = pool_ablations(role_abl)
    return {
        "runs": runs,
        "pooled": pooled,
        "skip_verdict": skip_verdict,
        "correlation": corr,
        "correlation_verdict": corr_verdict,
        "ablation": pooled_abl,
        "ablation_runs": sum(a is not None for a in ablations),
        "comparison": compare_methods(pooled_abl),
        "ablation_role": ROLE,
        "ablation_role_runs": len(role_abl),
        "ablation_by_role": pooled_role,
        "comparison_by_role": compare_methods(pooled_role),
    }


def compare_methods(pooled_abl: list[dict[str, Any]]) -> dict[str, Any]:
    """Patterns vs the mean and the best method of the attention and layer groups, by
    pooled comprehensiveness, with the verdict rule of docs/analyses.md."""
    by_name = {m["name"]: m for m in pooled_abl}
    pat = by_name.get("pattern")
    compare: dict[str, Any] = {}
    for group, paper in (("attention", PAPER_PATTERN_VS_ATTENTION), ("layer", PAPER_PATTERN_VS_LAYER)):
        members = [m for m in pooled_abl if m["group"] == group]
        if pat is None or not members:
            compare[group] = {"paper": paper, "best": None, "relative": None, "relative_best": None,
                              "verdict": "not measured (run `ablate`)"}
            continue
        best = max(members, key=lambda m: m["comprehensiveness"])
        mean = sum(m["comprehensiveness"] for m in members) / len(members)
        rel = _relative(pat["comprehensiveness"], mean)
        rel_best = _relative(pat["comprehensiveness"], best["comprehensiveness"])
        if rel is None:
            verdict = "not measurable"
        elif rel > 0:
            verdict = "holds" if rel >= paper / 2 else "partly: patterns ahead, by less than the paper's margin"
            if rel_best is not None and rel_best <= 0:
                verdict += f"; but {best['name']} alone matches or beats patterns"
        else:
            verdict = "does not hold: these methods' nodes matter at least as much on average"
        compare[group] = {"paper": paper, "best": best["name"], "relative": rel, "relative_best": rel_best,
                          "verdict": verdict}
    return compare


def run_table(f: dict[str, Any]) -> dict[str, Any]:
    role = f["correlation"]["role"]
    return {
        "columns": ["task", "instances", "accuracy", "mean QoI", "skip share", "skip:head", "skip:head (weighted)",
                    f"consistency ({role})", f"entropy ({role}, bits)"],
        "rows": [
            [r["task"], r["instances"], r["accuracy"], r.get("mean_qoi"), r["skip_share"], r["skip_to_head_ratio"],
             r["skip_to_head_ratio_weighted"], r["consistency"].get(role, {}).get("top_frequency"),
             r["consistency"].get(role, {}).get("entropy")]
            for r in f["runs"]
        ],
    }


def ablation_table(f: dict[str, Any], key: str = "ablation") -> dict[str, Any]:
    return {
        "columns": ["method", "group", "comprehensiveness (QoI drop)", "sufficiency (QoI kept)", "accuracy after removal"],
        "rows": [[m["name"], m["group"], m["comprehensiveness"], m["sufficiency"], m["accuracy_after_removal"]]
                 for m in f[key]],
    }


def _md_table(table: dict[str, Any]) -> str:
    lines = ["| " + " | ".join(table["columns"]) + " |", "|" + "---|" * len(table["columns"])]
    lines += ["| " + " | ".join(_f(v).replace("|", "\\|") for v in row) + " |" for row in table["rows"]]
    return "\n".join(lines)


def _texts(f: dict[str, Any]) -> dict[str, str]:
    pooled, corr = f["pooled"], f["correlation"]
    L = f["runs"][0]["num_layers"]
    skip = (
        f"Paper: information flows through skip connections about {PAPER_SKIP_RATIO:.0f}× more than "
        f"through heads. Measured over all patterns: skip share {_f(pooled.get('skip_share'))}, "
        f"skip:head ratio {_f(pooled.get('skip_to_head_ratio'), 2)} by count and "
        f"{_f(pooled.get('skip_to_head_ratio_weighted'), 2)} weighted by |I(π^a)|. "
        f"Verdict: {f['skip_verdict']}. (A pattern from a source other than the target must move to "
        f"the target, and only a head moves, so with L = {L} layers the count ratio is at most {L - 1}.)"
    )
    cons = (
        "Paper: how consistently a task's instances share one pattern tracks the model's accuracy on it. "
        f"Measured: Spearman ρ between the {corr['role']} token's consistency (frequency of its most "
        f"common pattern) and accuracy over {len(corr.get('runs') or [])} run(s): ρ = {_f(corr.get('spearman_rho'), 2)}, "
        f"p = {_f(corr.get('p_value'), 3)}. Verdict: {f['correlation_verdict']}. "
        f"As a graded stand-in for accuracy, ρ between that consistency and the mean QoI (logit margin): "
        f"{_f(corr.get('spearman_rho_qoi'), 2)} (p = {_f(corr.get('p_value_qoi'), 3)})."
    )
    def comparison_text(compare: dict[str, Any]) -> str:
        parts = []
        for group, label in (("attention", "attention-based"), ("layer", "layer-based")):
            c = compare[group]
            parts.append(
                f"vs the mean of the {label} methods: {_pct(c['relative'])} comprehensiveness, vs the best "
                f"of them ({c['best'] or '–'}): {_pct(c.get('relative_best'))} (paper: {_pct(c['paper'])}); "
                f"verdict: {c['verdict']}"
            )
        return "; ".join(parts)

    abl = (
        "Paper: patterns are 74% / 25% more accurate than attention- and layer-based explanations. "
        f"Measured by ablation over {f['ablation_runs']} run(s), the node set being the union over every "
        "source token (comprehensiveness = mean QoI drop when the explanation's nodes are removed; higher = "
        "the nodes matter more): " + comparison_text(f["comparison"]) + "."
    )
    if f.get("ablation_by_role"):
        abl += (
            f" With only the {f['ablation_role']} token's nodes ({f['ablation_role_runs']} run(s)): "
            + comparison_text(f["comparison_by_role"]) + "."
        )
    return {"skip": skip, "consistency": cons, "ablation": abl}


def markdown(f: dict[str, Any], title: str = "Influence patterns: the paper's findings, measured") -> str:
    t = _texts(f)
    per_layer_rows = []
    for r in f["runs"]:
        per_layer_rows.append([r["task"]] + [x["skip_share"] for x in r["per_layer"]])
    layers = max((len(r["per_layer"]) for r in f["runs"]), default=0)
    per_layer = {"columns": ["task"] + [f"L{l}" for l in range(1, layers + 1)], "rows": per_layer_rows}
    model = ", ".join(sorted({str(r.get("model")) for r in f["runs"]}))
    out = [f"# {title}", "", f"Model: {model}. Runs: {len(f['runs'])}.", "", _md_table(run_table(f)), "",
           "## 1. Skip connections vs heads", "", t["skip"], "", "Skip share per layer:", "",
           _md_table(per_layer), "", "## 2. Consistency tracks accuracy", "", t["consistency"], "",
           "## 3. Patterns vs attention- and layer-based explanations", "", t["ablation"], ""]
    if f["ablation"]:
        out += ["Node set: every source token.", "", _md_table(ablation_table(f)), ""]
    if f.get("ablation_by_role"):
        out += [f"Node set: the {f['ablation_role']} token only.", "",
                _md_table(ablation_table(f, "ablation_by_role")), ""]
    return "\n".join(out)


def write_report(paths: Sequence[str | Path], out: str | Path, ablate: bool = False, **ablate_kwargs: Any) -> dict[str, Any]:
    """Write the Markdown report of ``paths`` to ``out``; return the findings."""
    f = findings(paths, ablate=ablate, **ablate_kwargs)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(markdown(f), encoding="utf-8")
    return f


def html_sections(f: dict[str, Any], paths: Sequence[str | Path]) -> list[dict[str, Any]]:
    """Sections for ``viz.html.write_html``; figures by ``viz.aggregate.plot_run`` (lazy import)."""
    from influence_patterns.viz.aggregate import plot_run

    t = _texts(f)
    figures = []
    role = f["correlation"]["role"]
    for p in paths:
        try:
            figures.append(plot_run(p, role=role if role != "all" else "subject"))
        except (InputError, DataError):  # a run without that role: no figure for it
            continue
    per_layer = {
        "columns": ["task"] + [f"L{x['layer']}" for x in f["runs"][0]["per_layer"]],
        "rows": [[r["task"]] + [x["skip_share"] for x in r["per_layer"]] for r in f["runs"]],
    }
    sections = [
        {"title": "Runs", "text": "One row per run directory.", "tables": [run_table(f)]},
        {"title": "Skip connections vs heads", "text": t["skip"], "tables": [per_layer]},
        {"title": "Consistency tracks accuracy", "text": t["consistency"], "tables": [], "figures": figures},
        {"title": "Patterns vs attention- and layer-based explanations", "text": t["ablation"],
         "tables": ([ablation_table(f)] if f["ablation"] else [])
         + ([ablation_table(f, "ablation_by_role")] if f.get("ablation_by_role") else [])},
    ]
    return sections
