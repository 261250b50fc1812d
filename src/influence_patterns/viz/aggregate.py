"""Patterns of one role (the subject, say) aggregated over the instances of a task.

Sentences differ in length and word order, so positions are named rather than
numbered, and the layout follows the sentence figure (positions across, layers up):

- x: one column per *position class*, in their average order in the sentences: the
  instance's roles (``subject``, ``verb`` …), else the target or special token itself
  (``[MASK]``, ``[CLS]``, ``[SEP]``), otherwise the offset from the source (``src+2``);
- y: layers, ``h0`` (the source embedding) at the bottom, ``L<L>`` on top;
- a node is (layer, kind, position class), kind the skip connection or head ``H<j>``
  (heads numbered from 0); nodes of one (layer, position) cell that differ in kind sit
  side by side, each labelled with its kind;
- a line per step (layer l-1 node → layer l node), its width proportional to the
  share of instances whose pattern takes that step; dashed into a skip, solid into a
  head; green when most of those instances' head-level influence is positive, red
  otherwise (the legend lists only the colours drawn);
- the most common full pattern is outlined in black under its steps (a skip inside
  the outline on a tint of its own colour, not white); the title prints it
  (``L1–2 skip → L3 H3@verb → …``) and the legend, under the plot, its frequency.

The figure is as wide as its columns need. Artists carry ``gid`` s:
``agg-step:<layer>:<from>:<to>`` for steps (nodes printed as ``H3@subject``,
``skip@src+1``), ``top-step:<layer>`` for the outline of the most common pattern,
``agg-node:<layer>:<node>`` for nodes.
"""

from __future__ import annotations

import textwrap
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from influence_patterns.analysis.consistency import position_name
from influence_patterns.errors import InputError
from influence_patterns.result import Step, format_steps, head_name
from influence_patterns.runs import Run, RunRecord
from influence_patterns.viz.patterns import NEGATIVE, POSITIVE, pattern_sign

#: Line width (points) of a step that every instance takes; a step taken by a
#: fraction s of the instances is drawn ``STEP_WIDTH * s`` wide.
STEP_WIDTH = 11.0
OUTLINE_EXTRA = 3.5

# A node of the aggregate graph: (kind, position class), kind "x", "skip" or "H<j>".
Node = tuple[str, str]


@dataclass(frozen=True)
class _Instance:
    nodes: tuple[Node, ...]  # layer 0 .. L
    positions: tuple[int, ...]  # the word-piece index of each node, layer 0 .. L
    sign: int
    correct: bool | None


def _position_class(t: int, source: int, record: RunRecord, by_index: dict[int, str]) -> str:
    """The role, target or special token (as ``analyze`` names it), else the offset from the source."""
    return position_name(t, record, by_index) or f"src{t - source:+d}"


#: The name of the source's column when every source token is drawn (``role="all"``).
ALL_SOURCES = "source"


def _instance(record: RunRecord, role: str, pattern: Any = None) -> _Instance | None:
    """The aggregate-graph nodes of the role token's pattern in one record (or of
    ``pattern``, its source's column named ``role``)."""
    pattern = pattern or record.role_pattern(role)
    if pattern is None:
        return None
    source = pattern.source_index
    by_index: dict[int, str] = {}
    for name, index in record.roles.items():
        by_index.setdefault(index, name)
    by_index[source] = role
    nodes: list[Node] = [("x", role)]
    for t, head in zip(pattern.positions[1:], pattern.heads):
        nodes.append((head_name(head), _position_class(t, source, record, by_index)))
    return _Instance(tuple(nodes), tuple(pattern.positions), pattern_sign(pattern), record.is_correct)


def _collect(records: list[RunRecord], role: str, task: str | None) -> tuple[list[_Instance], str, int, int]:
    if not records:
        raise InputError("no results to plot")
    tasks = sorted({str(r.task or "") for r in records})
    if task is not None:
        records = [r for r in records if str(r.task or "") == task]
        if not records:
            raise InputError(f"task {task!r} not in the results (tasks: {', '.join(tasks)})")
    elif len(tasks) > 1:
        raise InputError(
            f"the results hold several tasks ({', '.join(tasks)}); choose one with --task"
        )
    first = records[0].explanation  # the reader checked that every record has this shape
    roles = sorted({name for r in records for name in r.roles})
    if role == "all":  # every source token's pattern; the source's column is "source"
        instances = [inst for r in records for p in r.patterns
                     if (inst := _instance(r, ALL_SOURCES, p)) is not None]
        if not instances:
            raise InputError("no instance has a pattern to draw")
        return instances, str(records[0].task or ""), first.num_layers, first.num_heads
    if role not in roles:
        raise InputError(
            f"role {role!r} not present in the results (roles: {', '.join(roles) or 'none'})"
        )
    instances = [inst for r in records if (inst := _instance(r, role)) is not None]
    if not instances:
        raise InputError(f"no instance has a pattern for its {role} token (is it the target?)")
    return instances, str(records[0].task or ""), first.num_layers, first.num_heads


def _node_name(node: Node) -> str:
    return f"{node[0]}@{node[1]}"


def _class_order(instances: Iterable[_Instance]) -> dict[str, int]:
    """Left-to-right column of each position class: by its mean index in the sentences."""
    seen: dict[str, list[int]] = {}
    for inst in instances:
        for (_, cls), t in zip(inst.nodes, inst.positions):
            seen.setdefault(cls, []).append(t)
    ranked = sorted(seen, key=lambda c: (sum(seen[c]) / len(seen[c]), c))
    return {name: i for i, name in enumerate(ranked)}


def _kind_rank(kind: str) -> int:
    return -1 if kind in ("x", "skip") else int(kind[1:])


def _layout(
    instances: list[_Instance], num_layers: int, order: dict[str, int]
) -> dict[tuple[int, Node], float]:
    """x coordinate of every node: its position's column plus a small offset by kind."""
    xs: dict[tuple[int, Node], float] = {}
    for layer in range(num_layers + 1):
        cells: dict[str, set[str]] = {}
        for inst in instances:
            kind, cls = inst.nodes[layer]
            cells.setdefault(cls, set()).add(kind)
        for cls, kinds in cells.items():
            ranked = sorted(kinds, key=_kind_rank)
            spread = min(0.82, 0.22 * (len(ranked) - 1))
            for k, kind in enumerate(ranked):
                dx = 0.0 if len(ranked) == 1 else -spread / 2 + spread * k / (len(ranked) - 1)
                xs[(layer, (kind, cls))] = order[cls] + dx
    return xs


def pattern_steps(nodes: tuple[Node, ...]) -> list[Step]:
    """Aggregate nodes (layer 0 .. L) as printed steps: where a step moves, or None."""
    return [(kind, None if cls == prev[1] else cls) for prev, (kind, cls) in zip(nodes, nodes[1:])]


def _compact(nodes: tuple[Node, ...]) -> str:
    """``L1–2 skip → L3 H3@verb → …``: the one printed form of a pattern."""
    return format_steps(pattern_steps(nodes))


def _figure_size(columns: int, num_layers: int, crowd: int = 1) -> tuple[float, float]:
    """Sized to the content: about 1.2 in per position column (more when a cell holds
    many nodes side by side), wide enough for the legend's three columns under the plot."""
    per_column = 1.2 + 0.14 * max(0, crowd - 4)
    return min(max(7.5, per_column * columns + 1.2), 18.0), 0.6 * (num_layers + 1) + 3.0


@dataclass
class _Counts:
    """What the figure draws: instances per step and per node, positive ones per step,
    the most common full pattern."""

    n: int
    steps: Counter
    positive: Counter
    nodes: Counter
    top: tuple[Node, ...]
    top_count: int


def _count(instances: list[_Instance], num_layers: int) -> _Counts:
    steps: Counter[tuple[int, Node, Node]] = Counter()
    positive: Counter[tuple[int, Node, Node]] = Counter()
    nodes: Counter[tuple[int, Node]] = Counter()
    for inst in instances:
        for layer in range(num_layers + 1):
            nodes[(layer, inst.nodes[layer])] += 1
        for layer in range(1, num_layers + 1):
            key = (layer, inst.nodes[layer - 1], inst.nodes[layer])
            steps[key] += 1
            positive[key] += inst.sign > 0
    full = Counter(inst.nodes for inst in instances)
    top, top_count = min(full.items(), key=lambda kv: (-kv[1], [_node_name(x) for x in kv[0]]))
    return _Counts(len(instances), steps, positive, nodes, top, top_count)


def _tint(colour: str, amount: float = 0.6) -> tuple[float, float, float]:
    """``colour`` mixed with white: the core of an outlined skip, so its dashes read as
    darker and lighter stretches of one colour rather than colour and white stripes."""
    from matplotlib.colors import to_rgb

    return tuple(c + (1 - c) * amount for c in to_rgb(colour))  # type: ignore[return-value]


def _draw_steps(ax: Axes, counts: _Counts, xs: dict[tuple[int, Node], float], num_layers: int) -> set[str]:
    """One line per step, widest first; the most common pattern outlined. Returns the
    sign colours used (the legend lists only those)."""
    top = counts.top
    top_steps = {(layer, top[layer - 1], top[layer]) for layer in range(1, num_layers + 1)}
    used: set[str] = set()
    for (layer, a, b), count in sorted(counts.steps.items(), key=lambda kv: -kv[1]):
        x0, x1, lw = xs[(layer - 1, a)], xs[(layer, b)], STEP_WIDTH * count / counts.n
        colour = POSITIVE if counts.positive[(layer, a, b)] * 2 >= count else NEGATIVE
        used.add(colour)
        skip = b[0] == "skip"
        if (layer, a, b) in top_steps:
            ax.add_line(Line2D([x0, x1], [layer - 1, layer], color="black", lw=lw + OUTLINE_EXTRA,
                               solid_capstyle="round", zorder=2, gid=f"top-step:{layer}"))
            ax.add_line(Line2D([x0, x1], [layer - 1, layer], color=_tint(colour) if skip else "white",
                               lw=lw + 1.0, solid_capstyle="butt", zorder=2.5))
        ax.add_line(Line2D(
            [x0, x1], [layer - 1, layer], color=colour, lw=lw, linestyle=(0, (3.0, 1.6)) if skip else "-",
            solid_capstyle="round", dash_capstyle="butt", alpha=0.9, zorder=3,
            gid=f"agg-step:{layer}:{_node_name(a)}:{_node_name(b)}",
        ))
    return used


def _draw_nodes(ax: Axes, counts: _Counts, xs: dict[tuple[int, Node], float]) -> None:
    """A dot per node (larger when more instances pass), labelled with its kind."""
    cells: dict[tuple[int, str], list[str]] = {}
    for layer, node in counts.nodes:
        cells.setdefault((layer, node[1]), []).append(node[0])
    slot = {(layer, (kind, cls)): k for (layer, cls), kinds in cells.items()
            for k, kind in enumerate(sorted(kinds, key=_kind_rank))}
    for (layer, node), count in counts.nodes.items():
        x = xs[(layer, node)]
        ax.plot([x], [layer], ls="none", marker="o", ms=3.5 + 5.0 * count / counts.n, color="#333333",
                mec="white", mew=0.7, zorder=4, gid=f"agg-node:{layer}:{_node_name(node)}")
        # In a crowded cell, labels alternate above and below their nodes.
        below = len(cells[(layer, node[1])]) > 3 and slot[(layer, node)] % 2 == 1
        ax.annotate(
            node[0], (x, layer), xytext=(0, -6.0 if below else 5.5), textcoords="offset points",
            ha="center", va="top" if below else "bottom", fontsize=8, color="#444444", zorder=5,
            bbox={"boxstyle": "round,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.75},
        )


def _axes(ax: Axes, order: dict[str, int], role: str, num_layers: int) -> None:
    """Position columns (the source's shaded), layer rows, tick labels, no frame."""
    for cls, column in order.items():
        ax.axvspan(column - 0.42, column + 0.42, color="#EEF3F8" if cls == role else "#F6F6F6", lw=0, zorder=0)
    for layer in range(num_layers + 1):
        ax.axhline(layer, color="#E4E4E4", lw=0.6, zorder=0)
    ax.set_xlim(-0.6, len(order) - 0.4)
    ax.set_ylim(-0.45, num_layers + 0.6)
    names = sorted(order, key=order.get)
    long = max(map(len, names)) > 9
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, fontsize=10, rotation=30 if long else 0, ha="right" if long else "center",
                       rotation_mode="anchor")
    for label in ax.get_xticklabels():
        if label.get_text() == role:
            label.set_fontweight("bold")
    ax.set_yticks(range(num_layers + 1))
    ax.set_yticklabels(["h0"] + [f"L{layer}" for layer in range(1, num_layers + 1)], fontsize=10)
    ax.tick_params(length=0)
    for side in ("top", "right", "left", "bottom"):
        ax.spines[side].set_visible(False)
    ax.set_xlabel("position (by role, or offset from the source); nodes labelled skip or head Hj", fontsize=9)
    ax.set_ylabel("layer", fontsize=10)


def _title(ax: Axes, fig: Figure, counts: _Counts, instances: list[_Instance], task: str, role: str,
           meta: dict[str, Any]) -> None:
    known = [inst.correct for inst in instances if inst.correct is not None]
    accuracy = f", accuracy {sum(known) / len(known):.0%}" if known else ""
    model = f"  ·  {meta['model']}" if meta.get("model") else ""
    n = counts.n
    what = (f"patterns of every source token ({n} patterns)" if role == "all"
            else f"patterns of the {role} token over {n} instances")
    ax.set_title(
        f"{task or 'results'}: {what}{accuracy}{model}\n"
        + textwrap.fill(f"most common ({counts.top_count / n:.0%}): {_compact(counts.top)}",
                        width=int(fig.get_figwidth() * 8.5)),
        fontsize=11, loc="left",
    )


def _legend(ax: Axes, counts: _Counts, used: set[str], skips: bool, heads: bool, unit: str = "instances") -> None:
    """Under the plot, in columns (no half-empty canvas beside a short plot); only the
    colours and line kinds the figure uses."""
    n = counts.n
    handles = [Line2D([], [], color="black", lw=2.5 + OUTLINE_EXTRA,
                      label=f"most common pattern: {counts.top_count}/{n} {unit} ({counts.top_count / n:.0%})")]
    if POSITIVE in used:
        handles.append(Line2D([], [], color=POSITIVE, lw=3, label="mostly positive influence"))
    if NEGATIVE in used:
        handles.append(Line2D([], [], color=NEGATIVE, lw=3, label="mostly negative influence"))
    if heads:
        handles.append(Line2D([], [], color="#666666", lw=2, label="into a head"))
    if skips:
        handles.append(Line2D([], [], color="#666666", lw=2, ls=(0, (3.0, 1.6)), label="into the skip"))
    handles += [Line2D([], [], color="#999999", lw=STEP_WIDTH * s, label=f"{s:.0%} of {unit}")
                for s in (0.25, 0.5, 1.0)]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(0.0, -0.16), ncol=3, fontsize=9,
              frameon=False, borderaxespad=0.0, handlelength=2.6, handletextpad=0.8, columnspacing=1.6)


def plot_run(
    results: Run | Sequence[RunRecord | dict[str, Any]] | str | Path,
    role: str | None = "subject",
    task: str | None = None,
    ax: Axes | None = None,
) -> Figure:
    """Patterns of the ``role`` token aggregated over the instances of one task.

    ``role="all"`` draws every source token's pattern (their column is ``source``);
    ``role=None`` is ``subject`` when the run has that role, else ``all`` (a run
    without roles, such as a sentiment run, draws every source).

    ``results`` is a :class:`~influence_patterns.runs.Run`, a run directory /
    ``results.jsonl`` path (read by ``Run.open``), or records / result rows
    (``Explanation.to_dict()`` plus ``task``, ``roles``, ``correct``; checked by the
    reader's rules). Layout: layers
    up, node kinds across (skip, H0 … H<H-1>); positions named by role or by offset
    from the source; step widths proportional to the share of instances taking them;
    the most common full pattern outlined (see the module docstring).
    """
    run = Run.open(results) if isinstance(results, (str, Path)) else Run.from_rows(results, name="results")
    if role is None:
        role = "subject" if any("subject" in r.roles for r in run.records) else "all"
    instances, task_name, num_layers, num_heads = _collect(run.records, role, task)
    order = _class_order(instances)
    xs = _layout(instances, num_layers, order)
    counts = _count(instances, num_layers)
    if ax is None:
        crowd = max(Counter((layer, cls) for layer, (_, cls) in counts.nodes).values())
        fig = Figure(figsize=_figure_size(len(order), num_layers, crowd), layout="constrained")
        ax = fig.add_subplot()
    else:
        fig = ax.get_figure()
    _axes(ax, order, ALL_SOURCES if role == "all" else role, num_layers)
    used = _draw_steps(ax, counts, xs, num_layers)
    _draw_nodes(ax, counts, xs)
    _title(ax, fig, counts, instances, task_name, role, run.meta)
    kinds = {b[0] for (_, _, b) in counts.steps}
    _legend(ax, counts, used, skips="skip" in kinds, heads=bool(kinds - {"skip"}),
            unit="patterns" if role == "all" else "instances")
    from influence_patterns.viz.notebook import displayable

    return displayable(fig)  # a notebook shows it without %matplotlib inline
