"""One explanation as a picture: tokens across, layers up, a line per pattern step.

Each source token's pattern has its own colour (the legend is keyed by token); the
sign of its influence is the marker (▲ positive, ▼ negative); a head step is solid
and labelled ``H<j>``, a skip step dashed. Token names run along the top of the
pattern panel and under the bars.

Every drawn artist carries a ``gid`` so tests (and curious users) can check the
structure without looking at pixels:

- ``step:<source>:<layer>:H<j>`` / ``step:<source>:<layer>:skip``: the segment of the
  pattern of source token ``<source>`` from layer ``layer - 1`` to layer ``layer``;
- ``head-label:<source>:<layer>:H<j>``: the ``H<j>`` text of a head step;
- ``nodes:<source>``: the markers on the pattern's nodes (▲ positive, ▼ negative);
- ``bar:<source>:g`` / ``bar:<source>:token`` / ``bar:<source>:head``: the bars of
  ``g(x_i)``, ``I(x_i, π^e)`` and ``I(x_i, π^a)``;
- ``output``: the step from the target position at the last layer to ``y``.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

import matplotlib
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from influence_patterns.errors import InputError
from influence_patterns.result import Explanation, Pattern, head_name

# SVG text stays text (editable in Inkscape or Illustrator, searchable), not glyph outlines.
matplotlib.rcParams["svg.fonttype"] = "none"

# Okabe & Ito's colour-blind-safe palette: bluish green and vermillion stay apart
# for the common colour-vision deficiencies (used for sign in the run-level figure).
POSITIVE = "#009E73"
NEGATIVE = "#D55E00"
#: One colour per source token (Okabe & Ito first, then distinct darker tones).
SOURCE_COLOURS = (
    "#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#7F3C8D", "#8C6D31",
    "#3969AC", "#E73F74", "#11A579", "#80BA5A", "#F2B701", "#4B4B8F", "#A5AA99",
)
#: Sources past the palette (the weakest by |I(π^a)|) are drawn thin and in this grey.
OTHER_COLOUR = "#B4B4B4"
POSITIVE_MARKER = "^"
NEGATIVE_MARKER = "v"
# Bars: greys (colour means a source token in the panel above), hatched differently so
# the three series survive greyscale print.
BAR_STYLES = {
    "g": {"color": "#3F3F3F", "hatch": None, "label": r"$g(x_i)$ (IG)"},
    "token": {"color": "#8F8F8F", "hatch": None, "label": r"$I(x_i, \pi^e)$"},
    "head": {"color": "#C4C4C4", "hatch": "////", "label": r"$I(x_i, \pi^a)$"},
}
SPECIAL_TOKENS = {"[CLS]", "[SEP]", "[PAD]", "[MASK]", "<s>", "</s>", "<pad>", "<mask>"}


def pattern_sign(pattern: Pattern) -> int:
    """+1 or -1: the sign of the head-level influence (the search sign when it is 0)."""
    if pattern.influence_head > 0:
        return 1
    if pattern.influence_head < 0:
        return -1
    return 1 if pattern.sign >= 0 else -1


def source_colour(rank: int) -> str:
    """The colour of the ``rank``-th source token (in sentence order) of a figure."""
    return SOURCE_COLOURS[rank % len(SOURCE_COLOURS)]


def source_colours(patterns: Sequence[Pattern]) -> dict[int, str]:
    """A distinct colour per source, in sentence order, for up to ``len(SOURCE_COLOURS)``
    sources; past that the strongest by |I(π^a)| keep distinct colours and the rest are
    :data:`OTHER_COLOUR` (never two sources in one colour)."""
    ordered = sorted(patterns, key=lambda p: p.source_index)
    if len(ordered) > len(SOURCE_COLOURS):
        strongest = sorted(ordered, key=lambda p: (-abs(p.influence_head), p.source_index))
        keep = {p.source_index for p in strongest[: len(SOURCE_COLOURS)]}
    else:
        keep = {p.source_index for p in ordered}
    out: dict[int, str] = {}
    rank = 0
    for p in ordered:
        if p.source_index in keep:
            out[p.source_index] = SOURCE_COLOURS[rank]
            rank += 1
        else:
            out[p.source_index] = OTHER_COLOUR
    return out


def _select(expl: Explanation, tokens: Sequence[int] | None) -> list[Pattern]:
    by_source = {p.source_index: p for p in expl.patterns}
    if tokens is None:
        return sorted(by_source.values(), key=lambda p: p.source_index)
    chosen = []
    for t in tokens:
        if t not in by_source:
            available = ", ".join(str(i) for i in sorted(by_source)) or "none"
            raise InputError(
                f"token {t} is not a source token of this explanation (source tokens: {available})"
            )
        chosen.append(by_source[t])
    return sorted({p.source_index: p for p in chosen}.values(), key=lambda p: p.source_index)


def _check(expl: Explanation) -> None:
    n, L = len(expl.tokens), expl.num_layers
    for p in expl.patterns:
        if len(p.positions) != L + 1 or len(p.heads) != L:
            raise InputError(
                f"pattern of token {p.source_index} has {len(p.positions)} positions and "
                f"{len(p.heads)} heads; expected {L + 1} and {L} for a {L}-layer model"
            )
        if any(not 0 <= t < n for t in p.positions):
            raise InputError(f"pattern of token {p.source_index} has a position outside 0..{n - 1}")


def _offsets(count: int) -> list[float]:
    """Small horizontal offsets that keep overlapping patterns apart."""
    if count <= 1:
        return [0.0] * count
    step = min(0.09, 0.5 / count)
    return [(k - (count - 1) / 2) * step for k in range(count)]


def _figure_size(n_tokens: int, num_layers: int) -> tuple[float, float]:
    width = min(max(6.5, 0.62 * n_tokens + 3.0), 22.0)
    height = 0.42 * (num_layers + 2) + 3.2
    return width, height


def _token_labels(ax: Axes, expl: Explanation) -> None:
    n = len(expl.tokens)
    labels = [f"{tok}" for tok in expl.tokens]
    long = n > 14 or max((len(t) for t in expl.tokens), default=0) > 6
    ax.set_xticks(range(n))
    if long:
        ax.set_xticklabels(labels, rotation=45, ha="right", rotation_mode="anchor")
    else:
        ax.set_xticklabels(labels)
    sources = {p.source_index for p in expl.patterns}
    for i, lab in enumerate(ax.get_xticklabels()):
        if i == expl.target_index:
            lab.set_fontweight("bold")
        elif i not in sources or expl.tokens[i] in SPECIAL_TOKENS:
            lab.set_color("#777777")
    # Index of each token, small, under the word: what ``--tokens`` takes.
    ax.set_xticks(range(n), minor=True)
    ax.tick_params(axis="x", which="minor", length=0)


def _top_tokens(ax: Axes, expl: Explanation, colours: dict[int, str]) -> None:
    """Token names along the top of the pattern panel, each source in its colour."""
    top = ax.secondary_xaxis("top")
    top.set_xticks(range(len(expl.tokens)))
    long = len(expl.tokens) > 14 or max((len(t) for t in expl.tokens), default=0) > 6
    top.set_xticklabels(expl.tokens, fontsize=9, rotation=45 if long else 0,
                        ha="left" if long else "center", rotation_mode="anchor")
    top.tick_params(length=0)
    top.spines["top"].set_visible(False)
    for i, label in enumerate(top.get_xticklabels()):
        label.set_gid(f"top-token:{i}")
        if i in colours:
            label.set_color(colours[i])
            label.set_fontweight("bold")
        elif i == expl.target_index:
            label.set_fontweight("bold")
        else:
            label.set_color("#777777")


def _draw_grid(ax: Axes, expl: Explanation) -> None:
    n, L = len(expl.tokens), expl.num_layers
    for t in range(n):
        ax.axvline(t, color="#EEEEEE", lw=0.8, zorder=0)
    for layer in range(L + 1):
        ax.axhline(layer, color="#F4F4F4", lw=0.8, zorder=0)
    xs = [t for t in range(n) for _ in range(L + 1)]
    ys = [layer for _ in range(n) for layer in range(L + 1)]
    ax.plot(xs, ys, ls="none", marker="o", ms=2.2, color="#CFCFCF", zorder=1, gid="lattice")
    # The output node y, above the target position.
    ax.plot(
        [expl.target_index, expl.target_index], [L, L + 1], color="#222222", lw=1.6,
        solid_capstyle="round", zorder=2, gid="output",
    )
    ax.plot(
        [expl.target_index], [L + 1], ls="none", marker="s", ms=8, color="#222222", zorder=6,
        gid="output-node",
    )
    # Token indices (what ``--tokens`` takes), small and grey, under the h0 row.
    for t in range(n):
        ax.text(t, -0.28, str(t), fontsize=6.5, color="#999999", ha="center", va="top", zorder=1)
    ax.annotate(
        "y", (expl.target_index, L + 1), xytext=(7, 0), textcoords="offset points",
        va="center", ha="left", fontsize=9, fontweight="bold",
    )


#: Where along a head step its ``H<j>`` label may sit (share of the way up), in order of preference.
LABEL_SPOTS = (0.5, 0.32, 0.68, 0.18, 0.82)
#: Two labels closer than this (tokens across, layers up) would overlap.
LABEL_GAP = (0.42, 0.2)

Label = tuple[float, float, float, float, str, str, str]  # x0, y0, x1, y1, text, colour, gid


def place_labels(requests: Sequence[Label]) -> list[tuple[float, float]]:
    """A spot for each head label on its own step, away from the labels already placed
    (greedy, strongest pattern first): the first of :data:`LABEL_SPOTS` that keeps
    :data:`LABEL_GAP` to every other label, else the one with the fewest overlaps."""
    placed: list[tuple[float, float]] = []
    for x0, y0, x1, y1, *_ in requests:
        spots = [(x0 + (x1 - x0) * t, y0 + (y1 - y0) * t) for t in LABEL_SPOTS]

        def clashes(spot: tuple[float, float]) -> int:
            return sum(abs(spot[0] - q[0]) < LABEL_GAP[0] and abs(spot[1] - q[1]) < LABEL_GAP[1] for q in placed)

        placed.append(min(spots, key=lambda spot: (clashes(spot), spots.index(spot))))
    return placed


def _draw_labels(ax: Axes, requests: Sequence[Label]) -> None:
    for (x, y), (*_, text, colour, gid) in zip(place_labels(requests), requests):
        ax.text(
            x, y, text, fontsize=7, color=colour, ha="center", va="center", zorder=5, gid=gid,
            bbox={"boxstyle": "round,pad=0.12", "fc": "white", "ec": "none", "alpha": 0.85},
        )


def _draw_pattern(ax: Axes, p: Pattern, colour: str, dx: float, lw: float, labels: list[Label]) -> None:
    sign = pattern_sign(p)
    src = p.source_index
    for layer in range(1, len(p.positions)):
        head = p.heads[layer - 1]
        x0, x1 = p.positions[layer - 1] + dx, p.positions[layer] + dx
        y0, y1 = layer - 1, layer
        kind = head_name(head)
        ax.add_line(
            Line2D(
                [x0, x1], [y0, y1], color=colour, lw=lw,
                linestyle=(0, (3.0, 2.0)) if head is None else "-",
                solid_capstyle="round", dash_capstyle="butt", alpha=0.9, zorder=3,
                gid=f"step:{src}:{layer}:{kind}",
            )
        )
        if head is not None:
            labels.append((x0, y0, x1, y1, f"H{head}", colour, f"head-label:{src}:{layer}:H{head}"))
    xs = [t + dx for t in p.positions]
    ax.plot(
        xs, list(range(len(xs))), ls="none",
        marker=POSITIVE_MARKER if sign > 0 else NEGATIVE_MARKER,
        ms=6.5, mfc=colour, mec="white", mew=0.6, zorder=4, gid=f"nodes:{src}",
    )


def _legend_label(p: Pattern) -> str:
    arrow = "▲" if pattern_sign(p) > 0 else "▼"
    return f"{p.source_token} ({p.source_index}) {arrow} {p.influence_head:+.3g}"


def _draw_bars(ax: Axes, expl: Explanation) -> None:
    width = 0.26
    shifts = {"g": -width, "token": 0.0, "head": width}
    for p in sorted(expl.patterns, key=lambda q: q.source_index):
        values = {"g": p.g, "token": p.influence_token, "head": p.influence_head}
        for key, value in values.items():
            style = BAR_STYLES[key]
            bars = ax.bar(
                p.source_index + shifts[key], value, width=width, color=style["color"],
                hatch=style["hatch"], edgecolor="white" if style["hatch"] else style["color"],
                linewidth=0.0, zorder=3,
            )
            bars.patches[0].set_gid(f"bar:{p.source_index}:{key}")
    ax.axhline(0, color="#333333", lw=0.8, zorder=2)
    ax.set_ylabel("influence", fontsize=9)
    ax.tick_params(axis="y", labelsize=8)
    ax.grid(axis="y", color="#EEEEEE", lw=0.6, zorder=0)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    handles = [
        Patch(facecolor=s["color"], hatch=s["hatch"], edgecolor="white", label=s["label"])
        for s in BAR_STYLES.values()
    ]
    ax.legend(
        handles=handles, loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=8,
        frameon=False, borderaxespad=0.0,
    )


def _main_legend(ax: Axes, chosen: Sequence[Pattern], colours: dict[int, str]) -> None:
    handles = [
        Line2D([], [], color=colours[p.source_index], lw=2.4,
               marker=POSITIVE_MARKER if pattern_sign(p) > 0 else NEGATIVE_MARKER, ms=6,
               mec="white", label=_legend_label(p))
        for p in chosen if colours[p.source_index] != OTHER_COLOUR
    ]
    rest = [p for p in chosen if colours[p.source_index] == OTHER_COLOUR]
    if rest:
        handles.append(Line2D([], [], color=OTHER_COLOUR, lw=1.2,
                              label=f"{len(rest)} weaker sources (|I(π^a)| ≤ {max(abs(p.influence_head) for p in rest):.2g})"))
    handles += [
        Line2D([], [], color="#555555", ls="none", marker=POSITIVE_MARKER, ms=6,
               label="positive influence"),
        Line2D([], [], color="#555555", ls="none", marker=NEGATIVE_MARKER, ms=6,
               label="negative influence"),
        Line2D([], [], color="#555555", lw=1.6, label="head $j$ (H$j$)"),
        Line2D([], [], color="#555555", lw=1.6, ls=(0, (3.0, 2.0)), label="skip connection"),
        Line2D([], [], color="#222222", ls="none", marker="s", ms=7, label="output $y$"),
        Line2D([], [], color="#999999", lw=3.3, label=r"width $\propto |I(x_i, \pi^a)|$"),
    ]
    ax.legend(
        handles=handles, loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=8,
        frameon=False, borderaxespad=0.0, title=r"source (position), $I(\pi^a)$", title_fontsize=8,
    )


def qoi_title(expl: Explanation) -> str:
    """What the QoI is, in words and numbers: ``QoI = logit[is] − logit[are] = +2.310`` for a
    masked LM; for a classifier the class explained (name and index), whose choice it was
    (the given label or the model's prediction) and the margin against the other class."""
    value = f"{expl.qoi_value:+.3f}"
    if expl.targets:
        good, bad = expl.targets[0], expl.targets[1]
        return f"QoI = logit[{good}] − logit[{bad}] = {value} at {expl.tokens[expl.target_index]}"
    if expl.label is None:
        return f"QoI {expl.qoi_name} = {value}"
    names = list(expl.extra.get("label_names") or [])
    name = names[expl.label] if 0 <= expl.label < len(names) else f"class {expl.label}"
    others = [n for k, n in enumerate(names) if k != expl.label]
    other = others[0] if len(others) == 1 else "other"
    origin = {"given": "the given (gold) label", "prediction": "the model's prediction"}.get(
        str(expl.extra.get("label_from")), "label")
    verdict = "" if expl.qoi_value > 0 else f": the model prefers {other}"
    return (f"class explained: {name} ({expl.label}), {origin}; "
            f"QoI = logit[{name}] − logit[{other}] = {value}{verdict}")


def _title(expl: Explanation) -> str:
    text = textwrap.shorten(expl.text, width=110, placeholder=" …")
    return f"“{text}”\n{qoi_title(expl)}"


def plot_explanation(
    expl: Explanation,
    sources: Sequence[int] | None = None,
    ax: Axes | None = None,
    tokens: Sequence[int] | None = None,
) -> Figure:
    """Draw the influence patterns of ``expl`` (all source tokens, or those in ``sources``).

    Tokens run along the top and the bottom, layers ``h0``, ``L1`` … ``L<L>`` upwards,
    ``y`` on top. A pattern is a line from layer to layer in its source token's colour:
    dashed for the skip connection, solid and labelled ``H<j>`` for head j (from 0);
    ▲ markers when its head-level influence is positive, ▼ when negative; thicker for
    larger |I(π^a)|. ``tokens`` is the old name of ``sources``.
    Under the axis, three bars per source token: g(x_i), I(x_i, π^e), I(x_i, π^a).

    With ``ax`` given, the patterns go on it and the bars on an inset axes just below
    it (leave room); otherwise a new :class:`~matplotlib.figure.Figure` is made.
    Returns the figure.
    """
    _check(expl)
    chosen = _select(expl, sources if sources is not None else tokens)
    colours = source_colours(chosen)
    L, n = expl.num_layers, len(expl.tokens)

    if ax is None:
        fig = Figure(figsize=_figure_size(n, L), layout="constrained")
        grid = fig.add_gridspec(2, 1, height_ratios=[L + 2, 2.6])
        ax = fig.add_subplot(grid[0])
        ax_bars = fig.add_subplot(grid[1], sharex=ax)
    else:
        fig = ax.get_figure()
        ax_bars = ax.inset_axes([0.0, -0.42, 1.0, 0.3], sharex=ax)

    _draw_grid(ax, expl)
    max_abs = max((abs(p.influence_head) for p in chosen), default=0.0)
    labels: dict[int, list[Label]] = {}
    for p, dx in zip(chosen, _offsets(len(chosen))):
        strength = abs(p.influence_head) / max_abs if max_abs > 0 else 1.0
        grey = colours[p.source_index] == OTHER_COLOUR
        labels[p.source_index] = []
        _draw_pattern(ax, p, colours[p.source_index], dx, lw=0.9 if grey else 1.1 + 2.2 * strength,
                      labels=labels[p.source_index])
    strongest_first = sorted(chosen, key=lambda p: (-abs(p.influence_head), p.source_index))
    _draw_labels(ax, [lab for p in strongest_first if colours[p.source_index] != OTHER_COLOUR
                      for lab in labels[p.source_index]])

    ax.set_xlim(-0.6, n - 0.4)
    ax.set_ylim(-0.55, L + 1.45)
    ax.set_yticks(range(L + 2))
    ax.set_yticklabels(["h0"] + [f"L{layer}" for layer in range(1, L + 1)] + ["y"])
    ax.tick_params(axis="y", labelsize=9, length=0)
    ax.tick_params(axis="x", which="both", length=0, labelbottom=False)
    for side in ("top", "right", "bottom"):
        ax.spines[side].set_visible(False)
    ax.set_ylabel("layer", fontsize=9)
    ax.set_title(_title(expl), fontsize=10, loc="left")
    _top_tokens(ax, expl, colours)
    _main_legend(ax, chosen, colours)

    _draw_bars(ax_bars, expl)
    _token_labels(ax_bars, expl)
    ax_bars.tick_params(axis="x", which="major", length=0, labelsize=9, labelbottom=True)
    return fig

