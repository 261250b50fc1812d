"""The report's Markdown and HTML, assembled from ``analysis.report.findings`` (data):
the verdict summary on top, then the settings, warnings and per-task tables.

The HTML page ends with the interactive pattern view (``viz.interactive``) of one
representative instance per run (its first correct one; plotly.js embedded once per
page). Extra HTML sections plug in through :data:`SECTION_HOOKS`: each hook gets
``(findings, run_dirs)`` and returns a list of sections in the ``viz.html`` format;
they are appended after the built-in ones.
"""

from __future__ import annotations

import re
from html import escape as html_escape
from pathlib import Path
from typing import Any, Callable, Sequence

from influence_patterns.analysis.analyze import run_paths
from influence_patterns.analysis.report import ReportOptions, ci_text, findings, fmt, metric_label, run_label
from influence_patterns.errors import DataError, InputError, printable
from influence_patterns.fileio import write_text
from influence_patterns.progress import Progress
from influence_patterns.runs import Run, RunRecord

Section = dict[str, Any]
#: callables ``(findings, run_dirs) -> [section, ...]`` appended to the HTML report
SECTION_HOOKS: list[Callable[[dict[str, Any], Sequence[Path]], list[Section]]] = []
TITLE = "Influence patterns: the paper's findings, measured"


# --- tables (data for Markdown and HTML) ------------------------------------------------


def summary_table(f: dict[str, Any]) -> dict[str, Any]:
    return {"columns": ["finding", "measured [95% CI]", "null / ceiling", "n", "verdict"],
            "rows": [[r["finding"], ci_text(r.get("value")), r.get("reference", "–"), r.get("n"), r["verdict"]]
                     for r in f["summary"]]}


def settings_table(f: dict[str, Any]) -> dict[str, Any]:
    s = f["settings"]
    seeds = ", ".join(f"{k} {v}" for k, v in s["seeds"].items() if v not in (None, "–"))
    rows = [["model", s["model"]], ["model build", s["model_build"]], ["IG steps", s["steps"]],
            ["quadrature", s["quadrature"]], ["IG baseline", s["baseline"]],
            ["compression reference", s["reference"]], ["removal", s["removal"]], ["seeds", seeds or "–"],
            ["bootstrap resamples", s["resamples"]],
            ["n per task", ", ".join(f"{k}: {v}" for k, v in s["n_per_task"].items())],
            ["influence_patterns", s["versions"]]]
    return {"columns": ["setting", "value"], "rows": rows}


def run_table(f: dict[str, Any]) -> dict[str, Any]:
    role = f["analysis"]["role"]
    return {
        "columns": ["task", "run", "n", "accuracy", "mean QoI", "skip share", "skip:head [95% CI]", "ceiling",
                    "random-init null", f"consistency ({role})", f"entropy ({role}, bits)"],
        "rows": [
            [r["task"], run_label(r), r["instances"], r["accuracy"], r.get("mean_qoi"), r["skip_share"],
             ci_text(r.get("skip_to_head_ratio_ci")), r.get("ceiling"),
             ci_text((r.get("null") or {}).get("skip_to_head_ratio_ci")),
             r["consistency"].get(role, {}).get("top_frequency"), r["consistency"].get(role, {}).get("entropy")]
            for r in f["runs"]
        ],
    }


def per_layer_table(f: dict[str, Any]) -> dict[str, Any]:
    layers = max((len(r["per_layer"]) for r in f["runs"]), default=0)
    return {"columns": ["task", "run"] + [f"L{l}" for l in range(1, layers + 1)],
            "rows": [[r["task"], run_label(r)] + [x["skip_share"] for x in r["per_layer"]] for r in f["runs"]]}


def compression_table(summary: dict[str, Any]) -> dict[str, Any]:
    iia = any("iia" in m for m in summary["methods"])
    rows = [[m["name"], m["group"], fmt(m["nodes"], 1), ci_text(m.get("fidelity")), ci_text(m.get("accuracy_recovered")),
             ci_text(m.get("qoi_recovered")), ci_text(m["accuracy_retained"]), ci_text(m["comprehensiveness"])]
            + ([ci_text(m.get("iia")), ci_text(m.get("iia_complement"))] if iia else [])
            for m in summary["methods"]]
    floor = summary.get("floor")
    if floor:  # keeping no node: the reference alone
        rows.append(["(no node kept)", "floor", "0", "–", "0", "0", ci_text(floor["accuracy_retained"]), "–"]
                    + (["–", "–"] if iia else []))
    return {"columns": ["method", "group", "nodes", "fidelity", "accuracy recovered", "QoI recovered",
                        "accuracy retained", "QoI drop (removal)"] + (["IIA", "IIA complement"] if iia else []),
            "rows": rows}


def comparison_table(summary: dict[str, Any]) -> dict[str, Any]:
    shown = ("fidelity", "accuracy_recovered", "qoi_recovered", "iia")
    return {"columns": ["pattern vs", "group", "metric", "difference [95% CI]", "nodes (pattern, other)", "verdict"],
            "rows": [[c["b"], c["group"], metric_label(c["metric"]), ci_text(c["difference"]),
                      f"{c['nodes'][0]:.1f}, {c['nodes'][1]:.1f}", c["verdict"]]
                     for c in summary["comparisons"] if c["metric"] in shown]}


def per_task_verdicts(f: dict[str, Any]) -> dict[str, Any]:
    return {"columns": ["task", "n", "best of group", "metric", "pattern − best [95% CI]", "nodes", "verdict"],
            "rows": [[a.get("task"), a["instances"], v["best"], metric_label(v["metric"]), ci_text(v["difference"]),
                      f"{v['nodes'][0]:.1f}, {v['nodes'][1]:.1f}", v["verdict"]]
                     for _, a in f["ablation_runs"] for v in a.get("verdicts", [])]}


def md_text(value: Any) -> str:
    """A string from the data (a task, a model path, a warning) made inert in Markdown: HTML
    characters as entities (``<script>`` stays text in renderers that allow HTML), no link
    syntax, no table-breaking ``|``, no code span or superscript (``viz.html.inline_html``
    renders the same text in report.html), control characters and line breaks shown escaped."""
    text = printable(str(value))
    text = re.sub(r"\\(?=[!-/:-@\[-`{-~])", r"\\\\", text)  # a backslash escapes nothing of the data's
    text = re.sub(r"&(?=[#A-Za-z])", "&amp;", text)  # no entity; "a & b" stays as it is
    text = re.sub(r"<(?=[A-Za-z/!?])", "&lt;", text)  # no tag; "n (< 30)" stays as it is
    for raw, safe in (("|", "\\|"), ("`", "\\`"), ("](", "]\\("), ("^", "\\^")):
        text = text.replace(raw, safe)
    return text


def md_table(table: dict[str, Any]) -> str:
    lines = ["| " + " | ".join(table["columns"]) + " |", "|" + "---|" * len(table["columns"])]
    lines += ["| " + " | ".join(md_text(fmt(v)) for v in row) + " |" for row in table["rows"]]
    return "\n".join(lines)


def html_cell(value: Any) -> str:
    """A table cell of report.html: the text of report.md's cell (``fmt``, one number format)."""
    return printable(fmt(value))


# --- Markdown ----------------------------------------------------------------------------


def _texts(f: dict[str, Any]) -> dict[str, str]:
    a = f["analysis"]
    pooled = a.get("pooled") or {}
    L = f["runs"][0]["num_layers"]
    corr = a.get("correlation") or {}
    inst = a.get("instance_level") or {}
    return {
        "skip": (f"Paper: skips carry information about {f['paper']['skip_ratio']:.0f}× more often than heads. "
                 f"Measured skip:head ratio over all patterns: {ci_text(pooled.get('skip_to_head_ratio_ci'))} by "
                 f"count, {ci_text(pooled.get('skip_to_head_ratio_weighted_ci'))} weighted by |I(π^a)|. A pattern "
                 f"from a source other than the target must move to the target once and only a head moves, so "
                 f"with L = {L} the count ratio is at most {L - 1}, and it equals L/h̄ − 1 for h̄ = "
                 f"{ci_text(pooled.get('heads_per_pattern'))} head steps per pattern: a descriptive number. What "
                 f"carries the claim: on steps that stay on their position the pattern takes the skip "
                 f"{ci_text(pooled.get('skip_when_staying'))} of the time (uniform choice among the skip and the "
                 f"H heads: {fmt((pooled.get('skip_when_staying') or {}).get('uniform'), 3)}), beside a "
                 "norm-matched copy of the model (`--null norm-matched`: every tensor redrawn with its own mean "
                 "and std, heads as loud as the model's). The random-init null's heads are nearly silent, so a "
                 "verdict against it is decided in advance."),
        "consistency": (f"Spearman ρ between the {md_text(a['role'])} token's consistency and accuracy over "
                        f"{len(f['runs'])} task(s): {fmt(corr.get('spearman_rho'), 2)} (permutation p = "
                        f"{fmt(corr.get('p_value'), 3)}); against the mean QoI: {fmt(corr.get('spearman_rho_qoi'), 2)} "
                        f"(p = {fmt(corr.get('p_value_qoi'), 3)}). Confounds: "
                        + "; ".join(f.get("confounds") or []) + ". Per instance, within each task, top-pattern "
                        f"instances minus the rest: mean QoI {ci_text(inst.get('qoi_difference'))}, accuracy "
                        f"{ci_text(inst.get('accuracy_difference'))} (permutation within tasks p = "
                        f"{fmt(inst.get('p_value'), 3)}; pooled over tasks, which repeats the across-task test: "
                        f"{fmt((inst.get('pooled') or {}).get('qoi_difference'), 2)})."),
        "ablation": ("Paper: patterns are 74% / 25% more accurate than attention- and layer-based explanations. "
                     "Compression keeps only a method's nodes (every other head context and skip, at every layer "
                     "and position, takes its reference value: `mean` of held-out real inputs of the same length, "
                     "`baseline` input, or zero); removal replaces the method's nodes; interchange patches them "
                     "from a counterfactual with the answer flipped. Fidelity, accuracy and QoI recovered are "
                     "normalised between the floor (nothing kept) and the model. Verdicts compare patterns with "
                     "the best method of each group by paired-bootstrap CIs; each names its protocol."),
    }


def markdown(f: dict[str, Any], title: str = TITLE) -> str:
    """The report as Markdown."""
    t = _texts(f)
    out = [f"# {title}", "", "## Verdicts", "", md_table(summary_table(f)), ""]
    if f["warnings"] or f["notes"]:
        out += ["Warnings:", ""] + [f"- {md_text(w)}" for w in f["warnings"] + f["notes"]] + [""]
    out += ["## Settings", "", md_table(settings_table(f)), "", "## Runs", "", md_table(run_table(f)), "",
            "## 1. Skip connections vs heads", "", t["skip"], "", "Skip share per layer:", "",
            md_table(per_layer_table(f)), "", "## 2. Consistency tracks accuracy", "", t["consistency"], "",
            "## 3. Compression: patterns vs attention- and layer-based explanations and controls", "",
            t["ablation"], ""]
    if f["ablation"]:
        out += [f"Pooled over {f['ablation']['runs']} run(s), node set: every source token "
                f"({f['ablation']['instances']} instances).", "", md_table(compression_table(f["ablation"])), "",
                md_table(comparison_table(f["ablation"])), ""]
        if len(f["ablation_runs"]) > 1:
            out += ["Per task: patterns against the best method of each group.", "",
                    md_table(per_task_verdicts(f)), ""]
            for run, a in f["ablation_runs"]:
                out += [f"Task {md_text(a.get('task'))} ({md_text(run)}, {a['instances']} instances):", "",
                        md_table(compression_table(a)), ""]
    else:
        out += ["Not measured: run `influence-patterns ablate DIR` (or `report --ablate`).", ""]
    if f.get("ablation_by_role"):
        out += [f"Node set: the {md_text(f['ablation_role'])} token only.", "", md_table(compression_table(f["ablation_by_role"])),
                "", md_table(comparison_table(f["ablation_by_role"])), ""]
    return "\n".join(out)


# --- HTML ---------------------------------------------------------------------------------

INTERACTIVE_TITLE = "Interactive pattern view"


def representative(run: Run) -> RunRecord | None:
    """The instance a run is shown by: its first correct instance (file order), else its first."""
    return next((r for r in run.records if r.is_correct), run.records[0] if run.records else None)


def interactive_section(paths: Sequence[str | Path]) -> Section | None:
    """One interactive view (hover a token to highlight its paths) of the representative
    instance of every run; plotly.js is embedded with the first view only. ``None`` when
    no run has an instance."""
    from influence_patterns.viz.interactive import interactive_div

    parts: list[str] = []
    views = 0
    for p in paths:
        run = Run.open(p)
        record = representative(run)
        if record is None:
            continue
        task = record.task or run.setting("task") or str(p)
        verdict = "correct" if record.is_correct else "wrong (no instance of the run is correct)"
        parts.append(f"<h3>{html_escape(str(task))}: instance {record.index} ({verdict})</h3>")
        parts.append(interactive_div(record.explanation, include_plotlyjs=views == 0))
        views += 1
    if not parts:
        return None
    return {"title": INTERACTIVE_TITLE, "tables": [], "html": parts,
            "text": "One instance per run (its first correct one), every source token's influence pattern. "
                    "Hover or click a token (or a path's node) to highlight its token- and head-level path; "
                    "the tooltip gives each step's node and the pattern's influence; click the legend to "
                    "toggle sources."}


def html_sections(f: dict[str, Any], paths: Sequence[str | Path]) -> list[Section]:
    """Sections for ``viz.html.write_html``: the built-in ones, then :data:`SECTION_HOOKS`'."""
    from influence_patterns.viz.aggregate import plot_run
    from influence_patterns.viz.compression import plot_compression

    t = _texts(f)
    role = f["analysis"]["role"]
    figures = []
    for p in paths:
        for task in dict.fromkeys(r.task or "" for r in Run.open(p).records) or [None]:
            try:  # one figure per task of the run
                figures.append(plot_run(p, role=role if role != "all" else "subject", task=task or None))
            except (InputError, DataError):  # a run without that role: no figure for it
                continue
    warnings = "\n".join(f"- {md_text(w)}" for w in f["warnings"] + f["notes"])
    abl_tables = []
    if f["ablation"]:
        abl_tables += [compression_table(f["ablation"]), comparison_table(f["ablation"])]
        if len(f["ablation_runs"]) > 1:
            abl_tables += [per_task_verdicts(f)]
    if f.get("ablation_by_role"):
        abl_tables += [compression_table(f["ablation_by_role"])]
    sections: list[Section] = [
        {"title": "Verdicts", "markdown": warnings and f"Warnings:\n\n{warnings}", "tables": [summary_table(f)]},
        {"title": "Settings", "text": None, "tables": [settings_table(f)]},
        {"title": "Runs", "text": "One row per run directory.", "tables": [run_table(f)]},
        {"title": "Skip connections vs heads", "markdown": t["skip"], "tables": [per_layer_table(f)]},
        {"title": "Consistency tracks accuracy", "markdown": t["consistency"], "tables": [], "figures": figures},
        {"title": "Compression", "markdown": t["ablation"], "tables": abl_tables,
         "figures": [plot_compression(f["ablation"])] if f["ablation"] else []},
    ]
    for section in sections:  # numbers as report.md writes them (1.000, not 1)
        section["tables"] = [{**table, "format": html_cell} for table in section["tables"]]
    view = interactive_section(paths)
    if view is not None:
        sections.append(view)
    for hook in SECTION_HOOKS:
        sections += hook(f, [Path(p) for p in paths])
    return sections


def write_report(paths: Sequence[str | Path], out: str | Path | None, html: str | Path | None = None,
                 options: ReportOptions | None = None, progress: Progress = None) -> dict[str, Any]:
    """Compute the findings, then write the Markdown report to ``out`` and/or the HTML
    page to ``html`` atomically; return the findings. ``progress``: the bar of
    ``report --ablate`` (:mod:`influence_patterns.progress`)."""
    runs, left_out = run_paths(paths)  # files a glob matched beside the runs are left out
    f = findings(runs, options, progress)
    f["notes"] = left_out + f["notes"]
    paths = runs
    if out is not None:
        write_text(out, markdown(f))
    if html is not None:
        from influence_patterns.viz.html import render_html

        write_text(html, render_html(html_sections(f, paths), TITLE))
    return f
