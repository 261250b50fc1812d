"""Result dataclasses: what an explanation returns, and its JSON form.

Compute code builds these; plotting code reads them. Nothing here imports plotting.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Optional

from influence_patterns.errors import InputError
from influence_patterns.fileio import write_json
from influence_patterns.graph.nodes import Node
from influence_patterns.search.pattern import PatternFields

# The skip connection: in the API (``Pattern.heads``, ``Explainer.influence(heads=...)``)
# and in JSON the skip is ``None``/``null``; a head is its index, numbered from 0.
# Layers are numbered from 1 (``L1`` is the first encoder layer; ``h0`` the embeddings).

#: One layer of a head-level pattern as printed: ``(node, where)``; ``node`` is ``"skip"``
#: or ``"H<j>"``, ``where`` the position it moves to, or ``None`` when it stays put.
Step = tuple[str, Optional[str]]


def head_name(head: int | None) -> str:
    """``"skip"`` for the skip connection (``None``), ``"H<j>"`` for head j (from 0)."""
    return "skip" if head is None else f"H{int(head)}"


def position_label(t: int, tokens: Sequence[str] | None = None) -> str:
    """A position as printed: its token (``[MASK]``), with the index when the token repeats."""
    if tokens is None or not 0 <= t < len(tokens):
        return str(t)
    token = tokens[t]
    return token if list(tokens).count(token) == 1 else f"{token}({t})"


def format_steps(steps: Sequence[Step], first_layer: int = 1) -> str:
    """The one printed form of a head-level pattern, used by every table and figure.

    ``steps[k]`` is layer ``first_layer + k``. Consecutive layers taking the same step
    merge into a span: ``L1–3 skip → L4 H1@[MASK] → L5–6 skip`` reads "layers 1 to 3
    keep the token on the skip connection, head 1 of layer 4 moves it to [MASK], …".
    """
    parts: list[str] = []
    k = 0
    while k < len(steps):
        last = k
        while last + 1 < len(steps) and steps[last + 1] == steps[k] and steps[k][1] is None:
            last += 1
        a, b = first_layer + k, first_layer + last
        span = f"L{a}" if a == b else f"L{a}–{b}"
        node, where = steps[k]
        parts.append(f"{span} {node}" + ("" if where is None else f"@{where}"))
        k = last + 1
    return " → ".join(parts)


#: Word-start markers of byte-level BPE (RoBERTa: ``Ġ``) and SentencePiece (ALBERT, XLM-R: ``▁``).
_WORD_MARKERS = ("Ġ", "▁")


def _special(token: str) -> bool:
    return (token.startswith("[") and token.endswith("]")) or (token.startswith("<") and token.endswith(">"))


def word_groups(tokens: Sequence[str]) -> list[tuple[str, list[int]]]:
    """The words of a tokenized text as ``(word, [piece positions])``, in order.

    Read from the pieces alone, so an explanation saved without its tokenizer groups the
    same way: a WordPiece ``##piece`` continues the word before it; with byte-level BPE
    or SentencePiece (pieces marked ``Ġ`` / ``▁`` at a word's start) an unmarked piece
    continues it. A special token (``[CLS]``, ``[MASK]``, ``<s>`` …) is a word of its own.
    The word is its pieces joined without the markers (``giraffes`` for
    ``gi ##raf ##fe ##s``)."""
    marker = next((m for m in _WORD_MARKERS if any(t.startswith(m) for t in tokens)), None)
    groups: list[tuple[str, list[int]]] = []
    previous_special = True
    for i, token in enumerate(tokens):
        if _special(token):
            groups.append((token, [i]))
            previous_special = True
            continue
        if marker is None:
            continues = token.startswith("##") and not previous_special
            piece = token[2:] if continues else token
        else:
            continues = not token.startswith(marker) and not previous_special
            piece = token[len(marker):] if token.startswith(marker) else token
        if continues and groups:
            word, pieces = groups[-1]
            groups[-1] = (word + piece, pieces + [i])
        else:
            groups.append((piece, [i]))
        previous_special = False
    return groups


def find_word(tokens: Sequence[str], word: str) -> list[int]:
    """The piece positions of ``word`` (``the@2``: its second occurrence) among ``tokens``'
    words (:func:`word_groups`; matched ignoring case); ``ValueError`` naming the words."""
    groups = word_groups(tokens)
    name, k = word.strip(), 1
    head, _, tail = name.rpartition("@")
    if head and tail.isdigit():
        name, k = head, int(tail)
    hits = [pieces for w, pieces in groups if w.lower() == name.lower()]
    if k < 1 or k > len(hits):
        words = " ".join(w for w, _ in groups if not _special(w))
        found = f"it occurs {len(hits)} time(s)" if hits else "it is not one of its words"
        raise ValueError(f"{word!r} is not a word of the sentence ({found}: {words})")
    return hits[k - 1]


@dataclass
class Pattern(PatternFields):
    """The influence pattern of one source token (docs/method.md#guided-pattern-refinement; fields in
    :class:`~influence_patterns.search.pattern.PatternFields`): ``positions[0]`` is the
    source index and ``positions[-1]`` the target index (``num_layers + 1`` entries),
    ``heads[l]`` the head chosen at layer ``l + 1`` (``None`` for the skip connection).
    Scores are on the original QoI's scale.
    """

    @classmethod
    def of(cls, found: PatternFields) -> "Pattern":
        """The pattern part of a search's result (``search.common.SourceSearch``)."""
        return cls(**{f.name: getattr(found, f.name) for f in fields(PatternFields)})

    def path_steps(self, tokens: Sequence[str] | None = None) -> list[Step]:
        """The pattern as :data:`Step` s, one per layer: ``("skip", None)``, ``("H1", "[MASK]")``.

        A step names where it moves to (by token when ``tokens`` are given, else by
        index), or ``None`` when it stays on the previous position.
        """
        out: list[Step] = []
        for prev, t, h in zip(self.positions, self.positions[1:], self.heads):
            out.append((head_name(h), None if t == prev else position_label(t, tokens)))
        return out

    def text(self, tokens: Sequence[str] | None = None) -> str:
        """The one printed form of a pattern: ``L1–3 skip → L4 H1@[MASK] → L5–6 skip``."""
        return format_steps(self.path_steps(tokens))

    def node_names(self) -> list[str]:
        """Printable node names of the head-level pattern, e.g. ``L2.H7@5``, ``L3.skip@5``."""
        nodes = [Node("x", position=self.positions[0])]
        for l, (t, h) in enumerate(zip(self.positions[1:], self.heads), start=1):
            nodes.append(Node("skip", l, t) if h is None else Node("head", l, t, int(h)))
        return [str(n) for n in nodes]

    def to_dict(self) -> dict[str, Any]:
        return {
            "source_index": self.source_index,
            "source_token": self.source_token,
            "sign": self.sign,
            "g": self.g,
            "positions": list(self.positions),
            "heads": list(self.heads),
            "influence_token": self.influence_token,
            "influence_head": self.influence_head,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Pattern":
        return cls(
            source_index=int(d["source_index"]),
            source_token=d["source_token"],
            sign=int(d["sign"]),
            g=float(d["g"]),
            positions=[int(p) for p in d["positions"]],
            heads=[None if h is None else int(h) for h in d["heads"]],
            influence_token=float(d["influence_token"]),
            influence_head=float(d["influence_head"]),
        )


@dataclass
class Explanation:
    """Influence patterns of every source token of one text, plus the QoI."""

    model: str
    text: str
    tokens: list[str]
    target_index: int
    num_layers: int
    num_heads: int
    steps: int
    baseline: str
    qoi_name: str
    qoi_value: float
    qoi_baseline_value: float
    patterns: list[Pattern]
    targets: list[str] | None = None
    label: int | None = None
    quadrature: str = "riemann"
    method: str = "fast"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def correct(self) -> bool:
        """The model gets this instance right: QoI > 0 (docs/method.md#quantity-of-interest)."""
        return self.qoi_value > 0

    def pattern_for(self, source_index: int) -> Pattern:
        for p in self.patterns:
            if p.source_index == source_index:
                return p
        raise KeyError(f"no pattern for source index {source_index}")

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "model": self.model,
            "text": self.text,
            "tokens": list(self.tokens),
            "target_index": self.target_index,
            "num_layers": self.num_layers,
            "num_heads": self.num_heads,
            "steps": self.steps,
            "baseline": self.baseline,
            "quadrature": self.quadrature,
            "method": self.method,
            "targets": list(self.targets) if self.targets is not None else None,
            "label": self.label,
            "qoi": {
                "name": self.qoi_name,
                "value": self.qoi_value,
                "baseline_value": self.qoi_baseline_value,
            },
            "patterns": [p.to_dict() for p in self.patterns],
        }
        d.update(self.extra)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Explanation":
        known = {
            "model", "text", "tokens", "target_index", "num_layers", "num_heads", "steps",
            "baseline", "quadrature", "method", "targets", "label", "qoi", "patterns",
        }
        return cls(
            model=d["model"],
            text=d["text"],
            tokens=list(d["tokens"]),
            target_index=int(d["target_index"]),
            num_layers=int(d["num_layers"]),
            num_heads=int(d["num_heads"]),
            steps=int(d["steps"]),
            baseline=d["baseline"],
            qoi_name=d["qoi"]["name"],
            qoi_value=float(d["qoi"]["value"]),
            qoi_baseline_value=float(d["qoi"]["baseline_value"]),
            patterns=[Pattern.from_dict(p) for p in d["patterns"]],
            targets=d.get("targets"),
            label=d.get("label"),
            quadrature=d.get("quadrature", "riemann"),
            method=d.get("method", "fast"),
            extra={k: v for k, v in d.items() if k not in known},
        )

    def save(self, path: str | Path) -> None:
        """Write the JSON form atomically (strict JSON; ``OutputError`` on a failed write)."""
        write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> "Explanation":
        """Read an explanation file (``save``'s JSON), checked: ``DataError`` naming the file
        for anything that is not a whole, consistent explanation."""
        from influence_patterns.errors import DataError
        from influence_patterns.fileio import read_json

        d = read_json(path, "explanation file")
        try:
            if not isinstance(d, dict):
                raise TypeError(f"expected a JSON object, got {type(d).__name__}")
            expl = cls.from_dict(d)
            expl.check()
        except KeyError as exc:
            raise DataError(f"{path}: not an explanation file (no {exc.args[0]!r})") from None
        except (TypeError, ValueError, AttributeError) as exc:
            raise DataError(f"{path}: not an explanation file ({_short(exc)})") from None
        return expl

    def check(self) -> None:
        """``ValueError`` naming the first thing that does not fit the explanation's own model
        shape and tokens: a head outside 0..H-1, a position outside the text, a pattern of
        the wrong length, a non-finite QoI or influence. The one check every reader runs."""
        n, L, H = len(self.tokens), self.num_layers, self.num_heads
        if L < 1 or H < 1:
            raise ValueError(f"a model of {L} layers and {H} heads")
        if not 0 <= self.target_index < n:
            raise ValueError(f"target_index {self.target_index} is outside the {n} tokens")
        for name, value in (("qoi", self.qoi_value), ("qoi baseline_value", self.qoi_baseline_value)):
            if not math.isfinite(value):
                raise ValueError(f"the {name} is {value}, not a finite number")
        for p in self.patterns:
            where = f"the pattern of source {p.source_index}"
            if not 0 <= p.source_index < n:
                raise ValueError(f"source_index {p.source_index} is outside the {n} tokens")
            if len(p.heads) != L or len(p.positions) != L + 1:
                raise ValueError(f"{where} does not match its {L}-layer model")
            bad = [t for t in p.positions if not 0 <= t < n]
            if bad:
                raise ValueError(f"{where} has position {bad[0]}, outside the {n} tokens (0..{n - 1})")
            bad_heads = [h for h in p.heads if h is not None and not 0 <= h < H]
            if bad_heads:
                raise ValueError(f"{where} has head {bad_heads[0]}, outside the {H}-head model (0..{H - 1})")
            for name, value in (("g", p.g), ("influence_token", p.influence_token),
                                ("influence_head", p.influence_head)):
                if not math.isfinite(value):
                    raise ValueError(f"{where} has {name} {value}, not a finite number")

    def by_word(self) -> list[dict[str, Any]]:
        """One row per word that has a source piece (:func:`word_groups`): ``word``,
        ``pieces`` (its source pieces' tokens), ``source_indices``, ``g``,
        ``influence_token`` and ``influence_head`` summed over those pieces, and the
        ``pattern`` (printed, with ``positions`` and ``heads``) of its first piece."""
        of = {p.source_index: p for p in self.patterns}
        rows = []
        for word, pieces in word_groups(self.tokens):
            mine = [of[i] for i in pieces if i in of]
            if not mine:
                continue
            first = mine[0]
            rows.append({
                "word": word, "pieces": [p.source_token for p in mine],
                "source_indices": [p.source_index for p in mine],
                "g": sum(p.g for p in mine), "influence_token": sum(p.influence_token for p in mine),
                "influence_head": sum(p.influence_head for p in mine),
                "pattern": first.text(self.tokens), "positions": list(first.positions), "heads": list(first.heads),
            })
        return rows

    def to_dataframe(self, by: str = "piece") -> Any:
        """One row per source token (pandas): index, token, sign, g, I(π^e), I(π^a), pattern;
        ``by="word"``: one row per word (:meth:`by_word`)."""
        import pandas as pd  # heavy and optional for the compute path: imported on use

        if by not in ("piece", "token", "word"):
            raise InputError(f"by must be 'piece' or 'word', got {by!r}")
        if by == "word":
            columns = ["word", "pieces", "source_indices", "g", "influence_token", "influence_head",
                       "pattern", "positions", "heads"]
            return pd.DataFrame(self.by_word(), columns=columns)

        rows = [
            {
                "source_index": p.source_index,
                "source_token": p.source_token,
                "sign": p.sign,
                "g": p.g,
                "influence_token": p.influence_token,
                "influence_head": p.influence_head,
                "pattern": p.text(self.tokens),
                "positions": list(p.positions),
                "heads": list(p.heads),
            }
            for p in self.patterns
        ]
        columns = ["source_index", "source_token", "sign", "g", "influence_token",
                   "influence_head", "pattern", "positions", "heads"]
        return pd.DataFrame(rows, columns=columns)

    # Presentation: thin calls into ``viz`` (the layer that prints and draws), imported
    # on use so that this data module never depends on the presentation layer.

    def show(self, console: Any = None, interactive: bool = False) -> Any:
        """Print the per-token table (rich) to the terminal; ``interactive=True``: return the
        interactive view instead (a Plotly figure, shown inline by a notebook)."""
        if interactive:
            return self.interactive()
        from influence_patterns.viz.terminal import print_explanation

        print_explanation(self, console)
        return None

    def interactive(self, sources: Sequence[int] | None = None) -> Any:
        """The interactive view as a Plotly figure (hover a token for its path); a notebook
        shows it inline, ``.write_html(path)`` saves it."""
        from influence_patterns.viz.interactive import interactive_figure

        return interactive_figure(self, sources=sources)

    def plot(self, sources: Sequence[int] | None = None, ax: Any = None) -> Any:
        """Draw the patterns (matplotlib Figure); ``sources``: only these word-piece positions.
        A notebook shows the figure without ``%matplotlib inline``."""
        from influence_patterns.viz.notebook import displayable
        from influence_patterns.viz.patterns import plot_explanation

        return displayable(plot_explanation(self, sources=sources, ax=ax))

    def _repr_html_(self) -> str:
        """Notebook view: the table and the picture (inline SVG)."""
        from influence_patterns.viz.notebook import explanation_html

        return explanation_html(self)


def _short(exc: BaseException, limit: int = 200) -> str:
    """An exception's message on one line, cut to ``limit`` characters."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"
