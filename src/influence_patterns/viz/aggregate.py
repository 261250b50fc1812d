"""Patterns of one role (the subject, say) aggregated over the instances of a task.

Sentences differ in length and word order, so token positions cannot be the x axis.
The layout instead follows the head-level pattern:

- y: layers, ``h0`` (the source embedding) at the bottom, ``L<L>`` on top;
- x: the node kind a pattern takes in that layer: the skip connection (left column)
  or head ``H0`` … ``H<H-1>``; the source ``x`` sits in the skip column at ``h0``;
- a node is (layer, kind, position). The position is named by role when it is one of
  the instance's role indices (``subject``, ``verb`` …), by the special token when it
  is ``[CLS]``/``[SEP]``, by ``target`` for the target position, and otherwise by
  its offset from the source (``src+2``). Nodes of one (layer, kind) cell that differ
  in position sit side by side, each labelled with its position;
- a line per step (layer l-1 node → layer l node), its width proportional to the
  share of instances whose pattern takes that step; dashed into a skip, solid into a
  head; green when most of those instances' head-level influence is positive, red
  otherwise;
- the most common full pattern is outlined in black under its steps; the legend gives
  its frequency.

Artists carry ``gid`` s: ``agg-step:<layer>:<from>:<to>`` for steps (nodes printed
as ``H3@subject``, ``skip@src+1``), ``top-step:<layer>`` for the outline of the most
common pattern, ``agg-node:<layer>:<node>`` for nodes.
"""

from __future__ import annotations

import textwrap
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from influence_patterns.errors import DataError, InputError
from influence_patterns.result import Pattern
from influence_patterns.runs import Run
from influence_patterns.viz.patterns import NEGATIVE, POSITIVE, pattern_sign

#: Line width (points) of a step that every instance takes; a step taken by a
#: fraction s of the instances is drawn ``STEP_WIDTH * s`` wide.
STEP_WIDTH = 11.0
OUTLINE_EXTRA = 3.5
SPECIAL = {"[CLS]", "[SEP]", "[PAD]", "<s>", "</s>"}

# A node of the aggregate graph: (kind, position class), kind "x", "skip" or "H<j>".
Node = tuple[str, str]


@dataclass(frozen=True)
class _Instance:
    nodes: tuple[Node, ...]  # layer 0 .. L
    sign: int
    correct: bool | None


def read_results(path: str | Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Rows of ``results.jsonl`` (a run directory or the file itself) and ``run.json``:
    the one reader, :meth:`influence_patterns.runs.Run.open`."""
    run = Run.open(path)
    return run.rows, run.meta


def _position_class(t: int, source: int, row: dict[str, Any], by_index: dict[int, str]) -> str:
    if t in by_index:
        return by_index[t]
    if t == int(row["target_index"]):
        return "target"
    tokens = row.get("tokens") or []
    if 0 <= t < len(tokens) and tokens[t] in SPECIAL:
        return tokens[t]
    return f"src{t - source:+d}"


def _instance(row: dict[str, Any], role: str) -> _Instance | None:
    """The aggregate-graph nodes of the role token's pattern in one result row."""
    roles = row.get("roles") or {}
    if role not in roles:
        return None
    source = int(roles[role])
    pattern = next(
        (Pattern.from_dict(p) for p in row.get("patterns", []) if int(p["source_index"]) == source),
        None,
    )
    if pattern is None:
        return None
    by_index: dict[int, str] = {}
    for name, index in roles.items():
        by_index.setdefault(int(index), name)
    by_index[source] = role
    num_layers = int(row["num_layers"])
    if len(pattern.positions) != num_layers + 1 or len(pattern.heads) != num_layers:
        raise DataError(
            f"a pattern of {row.get('text', 'a result')!r} does not match its "
            f"{num_layers}-layer model"
        )
    nodes: list[Node] = [("x", role)]
    for t, head in zip(pattern.positions[1:], pattern.heads):
        kind = "skip" if head is None else f"H{head}"
        nodes.append((kind, _position_class(t, source, row, by_index)))
    correct = row.get("correct")
    if correct is None and "qoi" in row:
        correct = float(row["qoi"]["value"]) > 0
    return _Instance(tuple(nodes), pattern_sign(pattern), correct)


def _collect(
    results: list[dict[str, Any]], role: str, task: str | None
) -> tuple[list[_Instance], str, int, int]:
    if not results:
        raise InputError("no results to plot")
    tasks = sorted({str(r.get("task", "")) for r in results})
    if task is not None:
        results = [r for r in results if str(r.get("task", "")) == task]
        if not results:
            raise InputError(f"task {task!r} not in the results (tasks: {', '.join(tasks)})")
    elif len(tasks) > 1:
        raise InputError(
            f"the results hold several tasks ({', '.join(tasks)}); choose one with --task"
        )
    for number, r in enumerate(results, start=1):
        missing = [k for k in ("tokens", "target_index", "num_layers", "num_heads", "patterns")
                   if k not in r]
        if missing:
            raise DataError(f"result {number} is not an explanation: it lacks {', '.join(missing)}")
    shapes = {(int(r["num_layers"]), int(r["num_heads"])) for r in results}
    if len(shapes) > 1:
        raise InputError("the results come from models of different shapes; plot one model")
    num_layers, num_heads = shapes.pop()
    roles = sorted({name for r in results for name in (r.get("roles") or {})})
    if role not in roles:
        raise InputError(
            f"role {role!r} not present in the results (roles: {', '.join(roles) or 'none'})"
        )
    instances = [inst for r in results if (inst := _instance(r, role)) is not None]
    if not instances:
        raise InputError(f"no instance has a pattern for its {role} token (is it the target?)")
    return instances, str(results[0].get("task", "")), num_layers, num_heads


def _node_name(node: Node) -> str:
    return f"{node[0]}@{node[1]}"


def _class_order(role: str, instances: Iterable[_Instance]) -> dict[str, int]:
    """Stable left-to-right order of position classes inside a cell."""

    def rank(name: str) -> tuple[int, int, str]:
        if name == role:
            return (0, 0, name)
        if name.startswith("src") and name[3:].lstrip("+-").isdigit():
            return (2, int(name[3:]), name)
        if name in SPECIAL:
            return (3, 0, name)
        return (1, 0, name)

    names = {cls for inst in instances for _, cls in inst.nodes}
    return {name: i for i, name in enumerate(sorted(names, key=rank))}


def _layout(
    instances: list[_Instance], num_layers: int, order: dict[str, int]
) -> dict[tuple[int, Node], float]:
    """x coordinate of every node: its kind's column plus a small offset by position."""
    xs: dict[tuple[int, Node], float] = {}
    for layer in range(num_layers + 1):
        cells: dict[str, set[str]] = {}
        for inst in instances:
            kind, cls = inst.nodes[layer]
            cells.setdefault(kind, set()).add(cls)
        for kind, classes in cells.items():
            column = 0 if kind in ("x", "skip") else int(kind[1:]) + 1
            ranked = sorted(classes, key=lambda c: order[c])
            spread = min(0.56, 0.2 * (len(ranked) - 1))
            for k, cls in enumerate(ranked):
                dx = 0.0 if len(ranked) == 1 else -spread / 2 + spread * k / (len(ranked) - 1)
                xs[(layer, (kind, cls))] = column + dx
    return xs


def _compact(nodes: tuple[Node, ...]) -> str:
    """``L1–2 skip@subject → L3 H3@verb → …``: a pattern as text, runs of a node merged."""
    parts: list[str] = []
    layer, end = 1, len(nodes)
    while layer < end:
        last = layer
        while last + 1 < end and nodes[last + 1] == nodes[layer]:
            last += 1
        span = f"L{layer}" if last == layer else f"L{layer}–{last}"
        parts.append(f"{span} {_node_name(nodes[layer])}")
        layer = last + 1
    return " → ".join(parts)


def _figure_size(num_layers: int, num_heads: int) -> tuple[float, float]:
    return min(max(7.5, 0.78 * (num_heads + 1) + 4.2), 20.0), 0.62 * (num_layers + 1) + 2.0


def plot_run(
    results: list[dict[str, Any]] | str | Path,
    role: str = "subject",
    task: str | None = None,
    ax: Axes | None = None,
) -> Figure:
    """Patterns of the ``role`` token aggregated over the instances of one task.

    ``results`` is a list of result rows (``Explanation.to_dict()`` plus ``task``,
    ``roles``, ``correct``) or a run directory / ``results.jsonl`` path. Layout: layers
    up, node kinds across (skip, H0 … H<H-1>); positions named by role or by offset
    from the source; step widths proportional to the share of instances taking them;
    the most common full pattern outlined (see the module docstring).
    """
    meta: dict[str, Any] = {}
    if isinstance(results, (str, Path)):
        results, meta = read_results(results)
    instances, task_name, num_layers, num_heads = _collect(list(results), role, task)
    n = len(instances)
    order = _class_order(role, instances)
    xs = _layout(instances, num_layers, order)

    steps: Counter[tuple[int, Node, Node]] = Counter()
    positive: Counter[tuple[int, Node, Node]] = Counter()
    node_count: Counter[tuple[int, Node]] = Counter()
    for inst in instances:
        for layer in range(num_layers + 1):
            node_count[(layer, inst.nodes[layer])] += 1
        for layer in range(1, num_layers + 1):
            key = (layer, inst.nodes[layer - 1], inst.nodes[layer])
            steps[key] += 1
            positive[key] += inst.sign > 0
    full = Counter(inst.nodes for inst in instances)
    top, top_count = min(full.items(), key=lambda kv: (-kv[1], [_node_name(x) for x in kv[0]]))

    if ax is None:
        fig = Figure(figsize=_figure_size(num_layers, num_heads), layout="constrained")
        ax = fig.add_subplot()
    else:
        fig = ax.get_figure()

    for column in range(num_heads + 1):
        ax.axvspan(column - 0.42, column + 0.42, color="#F6F6F6" if column else "#EEF3F8",
                   lw=0, zorder=0)
    for layer in range(num_layers + 1):
        ax.axhline(layer, color="#E4E4E4", lw=0.6, zorder=0)

    top_steps = {(layer, top[layer - 1], top[layer]) for layer in range(1, num_layers + 1)}
    for (layer, a, b), count in sorted(steps.items(), key=lambda kv: -kv[1]):
        share = count / n
        x0, x1 = xs[(layer - 1, a)], xs[(layer, b)]
        lw = STEP_WIDTH * share
        if (layer, a, b) in top_steps:
            ax.add_line(Line2D(
                [x0, x1], [layer - 1, layer], color="black", lw=lw + OUTLINE_EXTRA,
                solid_capstyle="round", zorder=2, gid=f"top-step:{layer}",
            ))
            # White core, so the gaps of a dashed step read as gaps, not as black.
            ax.add_line(Line2D(
                [x0, x1], [layer - 1, layer], color="white", lw=lw + 1.0,
                solid_capstyle="round", zorder=2.5,
            ))
        colour = POSITIVE if positive[(layer, a, b)] * 2 >= count else NEGATIVE
        ax.add_line(Line2D(
            [x0, x1], [layer - 1, layer], color=colour, lw=lw,
            linestyle=(0, (3.0, 1.6)) if b[0] == "skip" else "-",
            solid_capstyle="round", dash_capstyle="butt", alpha=0.9, zorder=3,
            gid=f"agg-step:{layer}:{_node_name(a)}:{_node_name(b)}",
        ))

    for (layer, node), count in node_count.items():
        x = xs[(layer, node)]
        ax.plot([x], [layer], ls="none", marker="o", ms=3.5 + 5.0 * count / n, color="#333333",
                mec="white", mew=0.7, zorder=4, gid=f"agg-node:{layer}:{_node_name(node)}")
        ax.annotate(
            node[1], (x, layer), xytext=(0, 5.5), textcoords="offset points", ha="center",
            va="bottom", fontsize=6.5, color="#444444", zorder=5,
            bbox={"boxstyle": "round,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.75},
        )

    ax.set_xlim(-0.6, num_heads + 0.6)
    ax.set_ylim(-0.45, num_layers + 0.6)
    ax.set_xticks(range(num_heads + 1))
    ax.set_xticklabels(["skip"] + [f"H{j}" for j in range(num_heads)], fontsize=9)
    ax.set_yticks(range(num_layers + 1))
    ax.set_yticklabels(["h0"] + [f"L{layer}" for layer in range(1, num_layers + 1)], fontsize=9)
    ax.tick_params(length=0)
    for side in ("top", "right", "left", "bottom"):
        ax.spines[side].set_visible(False)
    ax.set_xlabel("node of the head-level pattern (skip connection or head)", fontsize=9)
    ax.set_ylabel("layer", fontsize=9)

    known = [inst.correct for inst in instances if inst.correct is not None]
    accuracy = f", accuracy {sum(known) / len(known):.0%}" if known else ""
    model = f"  ·  {meta['model']}" if meta.get("model") else ""
    top_text = _compact(top)
    width_chars = int(fig.get_figwidth() * 9.5)
    ax.set_title(
        f"{task_name or 'results'}: patterns of the {role} token over {n} instances"
        f"{accuracy}{model}\n"
        + textwrap.fill(f"most common ({top_count / n:.0%}): {top_text}", width=width_chars),
        fontsize=10, loc="left",
    )

    handles = [
        Line2D([], [], color="black", lw=2.5 + OUTLINE_EXTRA,
               label=f"most common pattern\n{top_count}/{n} instances ({top_count / n:.0%})"),
        Line2D([], [], color=POSITIVE, lw=3, label="mostly positive influence"),
        Line2D([], [], color=NEGATIVE, lw=3, label="mostly negative influence"),
        Line2D([], [], color="#666666", lw=2, label="into a head"),
        Line2D([], [], color="#666666", lw=2, ls=(0, (3.0, 1.6)), label="into the skip"),
    ]
    handles += [
        Line2D([], [], color="#999999", lw=STEP_WIDTH * s, label=f"{s:.0%} of instances")
        for s in (0.25, 0.5, 1.0)
    ]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8,
              frameon=False, borderaxespad=0.0, handlelength=2.6, handletextpad=1.0,
              labelspacing=1.0)
    return fig
