"""Rich tables of the analyses, for the terminal."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from influence_patterns.analysis.report import fmt as _f


def print_analysis(result: dict[str, Any], console: Console | None = None) -> None:
    """Runs (accuracy, skip vs heads), consistency per role, and the correlation."""
    console = console or Console()
    runs = result["runs"]
    t = Table(title="Runs: accuracy and skip vs heads")
    for c in ("run", "task", "n", "accuracy", "mean QoI", "skip share", "skip:head", "skip:head (|I|)"):
        t.add_column(c, justify="left" if c in ("run", "task") else "right")
    for r in runs:
        t.add_row(r["run"], str(r["task"]), str(r["instances"]), _f(r["accuracy"]), _f(r.get("mean_qoi")),
                  _f(r["skip_share"]),
                  _f(r["skip_to_head_ratio"], 2), _f(r["skip_to_head_ratio_weighted"], 2))
    console.print(t)

    layers = max(len(r["per_layer"]) for r in runs)
    t = Table(title="Skip share per layer")
    t.add_column("task")
    for l in range(1, layers + 1):
        t.add_column(f"L{l}", justify="right")
    for r in runs:
        t.add_row(str(r["task"]), *[_f(x["skip_share"]) for x in r["per_layer"]])
    console.print(t)

    t = Table(title="Consistency: most common head-level pattern per role")
    for c in ("task", "role", "n", "distinct", "top freq", "entropy (bits)"):
        t.add_column(c, justify="right" if c not in ("task", "role") else "left", no_wrap=c == "role")
    t.add_column("most common pattern", overflow="fold", ratio=1)
    for r in runs:
        for role, c in r["consistency"].items():
            t.add_row(str(r["task"]), role, str(c["n"]), str(c["distinct"]), _f(c["top_frequency"]),
                      _f(c["entropy"], 2), str(c["top_pattern"]))
    console.print(t)

    corr = result.get("correlation")
    if corr:
        console.print(
            f"Spearman ρ(consistency of {corr['role']}, accuracy) over {len(corr['runs'])} runs: "
            f"{_f(corr['spearman_rho'], 3)} (p = {_f(corr['p_value'], 3)}); "
            f"ρ(consistency, mean QoI): {_f(corr.get('spearman_rho_qoi'), 3)} (p = {_f(corr.get('p_value_qoi'), 3)})"
        )


def print_ablation(result: dict[str, Any], console: Console | None = None) -> None:
    """One row per method: comprehensiveness, sufficiency, accuracy after removal."""
    console = console or Console()
    t = Table(title=f"Ablation of {result.get('run', '')} ({result['instances']} instances, "
                    f"sources: {result['sources']}; QoI {_f(result['qoi'])}, accuracy {_f(result['accuracy'])})")
    for c in ("method", "group", "nodes", "comprehensiveness", "sufficiency", "accuracy after removal", "accuracy kept"):
        t.add_column(c, justify="left" if c in ("method", "group") else "right", no_wrap=c == "method")
    for m in result["methods"]:
        t.add_row(m["name"], m["group"], _f(m["nodes"], 1), _f(m["comprehensiveness"]), _f(m["sufficiency"]),
                  _f(m["accuracy_after_removal"]), _f(m["accuracy_kept"]))
    console.print(t)
