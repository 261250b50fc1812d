"""Terminal tables of the analyses (``analyze``, ``ablate``), drawn at the terminal's
width (``$COLUMNS`` when not a terminal, else 80) and still readable at 80 columns:
short column headers explained by a legend line under each table, numbers with a
fixed number of decimals, "–" for a missing value, a value with its CI broken before
the bracket when the column is narrow, a pattern at its arrows. The analyses return
data; this module only prints it.
"""

from __future__ import annotations

from typing import Any, Sequence

from rich.console import Console
from rich.table import Table

from influence_patterns.analysis.report import ci_text, fmt, run_label
from influence_patterns.viz.terminal import Column, print_table

#: Columns whose cells may take two lines when the terminal is narrow (CIs, patterns).
WRAPPED = {"most common pattern", "s:h", "s:h |I|", "s:h null", "accuracy retained", "QoI retained",
           "QoI drop", "accuracy after", "pattern − best"}
SHORT = {"accuracy_retained": "acc.", "qoi_retained": "QoI", "comprehensiveness": "drop",
         "accuracy_after_removal": "acc. after", "fidelity": "fid.", "accuracy_recovered": "acc. rec.",
         "qoi_recovered": "QoI rec.", "iia": "IIA", "iia_complement": "IIA compl."}


def _console(console: Console | None) -> Console:
    return console or Console()  # the terminal's width (rich reads $COLUMNS off a terminal)


def _table(title: str, columns: Sequence[tuple[str, str]]) -> Table:
    t = Table(title=title, title_justify="left", pad_edge=False, padding=(0, 1))
    for name, justify in columns:
        # no_wrap: a short cell is never cut; a CI or pattern breaks at a space when narrow
        t.add_column(name, justify=justify, no_wrap=name not in WRAPPED)  # type: ignore[arg-type]
    return t


def _legend(console: Console, text: str) -> None:
    console.print(text, style="dim", soft_wrap=False)


def _ci(run: dict[str, Any], key: str) -> str:
    """``value [lo, hi]`` from ``key + "_ci"`` when the analysis has it, else the value."""
    est = run.get(f"{key}_ci")
    return ci_text(est) if est else fmt(run.get(key), 2)


def print_analysis(result: dict[str, Any], console: Console | None = None) -> None:
    """Runs (accuracy, skip vs heads), skip share per layer, consistency per role,
    and the correlation."""
    console = _console(console)
    runs = result["runs"]
    columns = [Column("task"), Column("run"), Column("n", "right"), Column("acc.", "right"),
               Column("QoI", "right"), Column("skip", "right"), Column("s:h", "right", long=True),
               Column("s:h |I|", "right", long=True), Column("ceiling", "right")]
    rows = [[str(r["task"]), run_label(r), str(r["instances"]), fmt(r["accuracy"]), fmt(r.get("mean_qoi"), 2),
             fmt(r["skip_share"]), _ci(r, "skip_to_head_ratio"), _ci(r, "skip_to_head_ratio_weighted"),
             str(r["num_layers"] - 1)] for r in runs]
    # one row per run when it fits; else the CIs on their own lines under each run
    print_table(columns, rows, "Runs: accuracy and skip vs heads", console)
    _legend(console, "acc. = accuracy; QoI = mean QoI; skip = skip share of pattern steps; s:h = skip:head "
                     "ratio by count; s:h |I| = weighted by |I(pattern)|; value [95% CI], bootstrap over "
                     "instances; ceiling = L-1, the largest possible count ratio.")
    columns = [Column("task"), Column("heads/pattern", "right", long=True),
               Column("skip when staying", "right", long=True), Column("uniform", "right")]
    rows = [[str(r["task"]), ci_text(r.get("heads_per_pattern")), ci_text(r.get("skip_when_staying") or {}),
             fmt((r.get("skip_when_staying") or {}).get("uniform"), 3)] for r in runs]
    print_table(columns, rows, "Skip vs heads: what carries the claim", console)
    _legend(console, "heads/pattern = h̄ head steps per pattern (count ratio = L/h̄ − 1); skip when staying = "
                     "share of steps that stay on their position taking the skip; uniform = 1/(H+1).")
    null = [r for r in runs if r.get("null")]
    if null:
        kind = null[0]["null"].get("kind", "null")
        t = _table(f"Beside the {kind} null (same instances)",
                   [("task", "left"), ("s:h", "right"), ("s:h null", "right"), ("staying", "right"),
                    ("staying null", "right"), ("head/skip", "right")])
        for r in null:
            norms = r["null"].get("head_norm") or {}
            t.add_row(str(r["task"]), fmt(r.get("skip_to_head_ratio"), 2), fmt(r["null"].get("skip_to_head_ratio"), 2),
                      ci_text(r.get("skip_when_staying")), ci_text(r["null"].get("skip_when_staying")),
                      f"{fmt((norms.get('model') or {}).get('mean'), 2)}/{fmt((norms.get('null') or {}).get('mean'), 2)}")
        console.print(t)
        _legend(console, "head/skip = a head's mean contribution norm after W_O relative to the skip's, "
                         "model/null.")
        for w in dict.fromkeys(r["null"].get("warning") for r in null if r["null"].get("warning")):
            console.print(f"warning: {w}", soft_wrap=False)
    layers = max(len(r["per_layer"]) for r in runs)
    t = _table("Skip share per layer", [("task", "left")] + [(f"L{l}", "right") for l in range(1, layers + 1)])
    for r in runs:
        t.add_row(str(r["task"]), *[fmt(x["skip_share"], 2) for x in r["per_layer"]])
    console.print(t)

    t = _table("Consistency: most common head-level pattern per role",
               [("task", "left"), ("role", "left"), ("n", "right"), ("dist.", "right"), ("top", "right"),
                ("H", "right"), ("most common pattern", "left")])
    for r in runs:
        for role, c in r["consistency"].items():
            t.add_row(str(r["task"]), role, str(c["n"]), str(c["distinct"]), fmt(c["top_frequency"], 2),
                      fmt(c["entropy"], 2), str(c["top_pattern"]))
    console.print(t)
    _legend(console, "dist. = distinct patterns; top = share of the most common; H = entropy in bits.")

    corr = result.get("correlation")
    if corr:
        console.print(
            f"Spearman ρ(consistency of {corr['role']}, accuracy) over {len(corr['runs'])} runs: "
            f"{fmt(corr['spearman_rho'], 3)} (permutation p = {fmt(corr.get('p_value'), 3)}); "
            f"ρ(consistency, mean QoI): {fmt(corr.get('spearman_rho_qoi'), 3)} "
            f"(p = {fmt(corr.get('p_value_qoi'), 3)})")


def print_ablation(result: dict[str, Any], console: Console | None = None) -> None:
    """Compression (accuracy and QoI retained), removal, and the verdicts, with CIs."""
    console = _console(console)
    console.print(f"{result.get('run', '')}: {result['instances']} instances, sources {result['sources']}, "
                  f"reference {result.get('reference')} ({result.get('replace', 'as')}), removal "
                  f"{result.get('removal')}; QoI {fmt(result.get('qoi'))}, accuracy {fmt(result.get('accuracy'))}")
    t = _table("Compression: keep only the method's nodes",
               [("method", "left"), ("fidelity", "right"), ("acc. recovered", "right"),
                ("QoI recovered", "right")])
    for m in result["methods"]:
        t.add_row(m["name"], ci_text(m.get("fidelity")), ci_text(m.get("accuracy_recovered")),
                  ci_text(m.get("qoi_recovered")))
    console.print(t)
    _legend(console, "recovered: 0 = nothing kept (the reference alone), 1 = the model; fidelity = share "
                     "with the model's sign.")
    for metric, label in (("accuracy_recovered", "acc. recovered"), ("qoi_recovered", "QoI recovered")):
        withheld = result["methods"][0].get(metric) or {}  # withheld for every method alike
        if withheld.get("value") is None and withheld.get("note"):
            _legend(console, f"{label} –: {withheld['note']}.")
    if any("iia" in m for m in result["methods"]):
        inter = result.get("interchange") or {}
        t = _table("Interchange: the nodes patched from the counterfactual",
                   [("method", "left"), ("nodes", "right"), ("IIA", "right"), ("complement", "right")])
        for m in result["methods"]:
            t.add_row(m["name"], fmt(m["nodes"], 1), ci_text(m.get("iia")), ci_text(m.get("iia_complement")))
        console.print(t)
        _legend(console, f"IIA = share flipped to the counterfactual's answer ({inter.get('instances')} instances; "
                         f"nothing patched {ci_text(inter.get('floor'))}, all {ci_text(inter.get('ceiling'))}); "
                         "complement = every other node patched.")
    t = _table("Removal: the method's nodes replaced",
               [("method", "left"), ("nodes", "right"), ("QoI drop", "right"), ("accuracy after", "right")])
    for m in result["methods"]:
        t.add_row(m["name"], fmt(m["nodes"], 1), ci_text(m["comprehensiveness"]), ci_text(m["accuracy_after_removal"]))
    console.print(t)
    _legend(console, "value [95% CI], paired bootstrap over instances; nodes = mean node-set size.")
    verdicts = result.get("verdicts") or []
    if verdicts:
        t = _table("Patterns vs the best method of each group",
                   [("best of group", "left"), ("of", "left"), ("pattern − best", "right"), ("verdict", "left")])
        for v in verdicts:
            t.add_row(v["best"], SHORT.get(v["metric"], v["metric"]), ci_text(v["difference"]), v["verdict"])
        console.print(t)
        _legend(console, "of: fid. = fidelity, acc./QoI rec. = accuracy / QoI recovered (compression), "
                         "IIA = interchange-intervention accuracy.")


def summary_lines(rows: Sequence[dict[str, Any]], width: int) -> list[str]:
    """The report's verdict summary for the terminal: per finding its measured value
    (``value [95% CI]``), what it is compared with, and the verdict, wrapped at word
    boundaries to ``width`` with continuation lines indented."""
    import textwrap

    lines: list[str] = []
    for row in rows:
        value = ci_text(row.get("value")) if row.get("value") else "–"
        text = f"{row['finding']}: {value} ({row.get('reference', '–')}) → {row.get('verdict') or '–'}"
        lines += textwrap.wrap(text, width=max(width, 40), subsequent_indent="    ",
                               break_long_words=False, break_on_hyphens=False) or [""]
    return lines


def print_summary(rows: Sequence[dict[str, Any]], console: Console | None = None) -> None:
    """Print :func:`summary_lines` at the console's width (no markup: "[lo, hi]" stays)."""
    console = _console(console)
    for line in summary_lines(rows, console.width):
        console.print(line, markup=False, highlight=False, soft_wrap=True)


def print_wrapped(text: str, console: Console | None = None) -> None:
    """One paragraph at the console's width, broken at word boundaries only."""
    import textwrap

    console = _console(console)
    for line in textwrap.wrap(text, width=max(console.width, 40), subsequent_indent="    ",
                              break_long_words=False, break_on_hyphens=False):
        console.print(line, markup=False, highlight=False, soft_wrap=True)
