"""Terminal tables (rich) for explanations. Text only; pictures live in ``viz``."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from influence_patterns.result import Explanation


def _num(v: float) -> str:
    colour = "green" if v > 0 else "red" if v < 0 else "white"
    return f"[{colour}]{v:+.4f}[/{colour}]"


def explanation_table(expl: Explanation) -> Table:
    """One row per source token: g, I(π^e), I(π^a), token path, head path."""
    target = expl.tokens[expl.target_index]
    if expl.targets:
        about = f"q = logit[{expl.targets[0]}] - logit[{expl.targets[1]}] at {target}@{expl.target_index}"
    else:
        about = f"q = logit[{expl.label}] - logit[other] of the classifier"
    verdict = "correct" if expl.correct else "wrong"
    table = Table(
        title=escape(f"{expl.text}\n{about}: {expl.qoi_value:+.4f} ({verdict}); baseline {expl.qoi_baseline_value:+.4f}"),
        title_justify="left",
        show_lines=False,
    )
    table.add_column("token", style="bold", no_wrap=True)
    table.add_column("g", justify="right", no_wrap=True)
    table.add_column("I(π^e)", justify="right", no_wrap=True)
    table.add_column("I(π^a)", justify="right", no_wrap=True)
    table.add_column("token path", overflow="fold")
    table.add_column("head path")
    for p in expl.patterns:
        table.add_row(
            escape(f"{p.source_token}@{p.source_index}"),
            _num(p.g),
            _num(p.influence_token),
            _num(p.influence_head),
            "→".join(str(t) for t in p.positions),
            p.head_path(),
        )
    return table


def print_explanation(expl: Explanation, console: Console | None = None) -> None:
    console = console or Console()
    console.print(explanation_table(expl))
    total = sum(p.g for p in expl.patterns)
    console.print(
        f"Σ g over source tokens {total:+.4f}; q(x) - q(b) = {expl.qoi_value - expl.qoi_baseline_value:+.4f} "
        f"(special tokens and the target make up the rest). {expl.num_layers} layers × {expl.num_heads} heads, "
        f"{expl.quadrature} with {expl.steps} steps, baseline {expl.baseline}."
    )
