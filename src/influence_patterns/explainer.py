"""The one obvious entry point: ``Explainer.from_pretrained(name).explain(text, targets=...)``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

from influence_patterns.attribution.baselines import BASELINES
from influence_patterns.attribution.influence import Constraint, qoi_values, restricted_influence
from influence_patterns.attribution.inputs import Batch, Query, prepare_batch
from influence_patterns.attribution.qoi import get_qoi
from influence_patterns.attribution.quadrature import DEFAULT_QUADRATURE, QUADRATURES, default_steps, make_quadrature
from influence_patterns.errors import InputError
from influence_patterns.graph.adapters import adapter_for
from influence_patterns.result import Explanation, Pattern
from influence_patterns.search.common import SourceSearch
from influence_patterns.search.fast import gpr_fast
from influence_patterns.search.memory import auto_max_rows
from influence_patterns.search.positional import gpr_positional
from influence_patterns.search.reference import gpr_reference

# "fast": single-position tangents (search.positional); "fast-full": the earlier
# full-width tangents (search.fast, kept for benchmarks); "reference": the literal loop.
METHODS = ("fast", "fast-full", "reference")


@dataclass
class ExplainConfig:
    """How explanations are computed. ``steps`` is the number of Gauss–Legendre points
    (default 32) or m of the paper's Riemann rule (m+1 points; default 50 with
    ``quadrature="riemann"``)."""

    steps: int | None = None
    baseline: str = "mask"
    keep_special: bool = False
    quadrature: str | None = DEFAULT_QUADRATURE
    method: str = "fast"
    max_rows: int | None = None  # rows per backward pass (fast: α; fast-full: source × α); None: auto

    def validate(self) -> None:
        self.quadrature = self.quadrature or DEFAULT_QUADRATURE  # None: the default rule
        if self.quadrature not in QUADRATURES:
            raise InputError(f"unknown quadrature {self.quadrature!r}; choose one of {', '.join(QUADRATURES)}")
        self.steps = default_steps(self.steps, self.quadrature)
        if self.steps < 1:
            raise InputError(f"steps must be at least 1, got {self.steps}")
        if self.baseline not in BASELINES:
            raise InputError(f"unknown baseline {self.baseline!r}; choose one of {', '.join(BASELINES)}")
        if self.method not in METHODS:
            raise InputError(f"unknown method {self.method!r}; choose one of {', '.join(METHODS)}")
        if self.max_rows is not None and self.max_rows < 1:
            raise InputError(f"max_rows must be positive, got {self.max_rows}")


class Explainer:
    """Explains a BERT-family masked LM or classifier with influence patterns."""

    def __init__(self, model: Any, tokenizer: Any, name: str | None = None, **config: Any) -> None:
        self.adapter = adapter_for(model)
        self.model = model
        self.tokenizer = tokenizer
        self.name = name or getattr(model, "name_or_path", None) or type(model).__name__
        self.config = ExplainConfig(**config)
        self.config.validate()
        model.eval()
        self.qoi = get_qoi("agreement" if self.adapter.kind == "mlm" else "classification")

    @classmethod
    def from_pretrained(cls, name_or_path: str, device: str = "auto", **config: Any) -> "Explainer":
        """Load ``default-mlm``, ``default-sst2``, a local checkpoint directory or a hub name."""
        from influence_patterns.models.loading import load_model

        loaded = load_model(name_or_path, device=device)
        return cls(loaded.model, loaded.tokenizer, name=loaded.name, **config)

    @property
    def kind(self) -> str:
        return self.adapter.kind

    def prepare(self, queries: Sequence[Query]) -> Batch:
        return prepare_batch(self.adapter, self.tokenizer, queries, self.config.baseline, self.config.keep_special)

    def explain(
        self, text: str, targets: Sequence[str] | None = None, label: int | None = None,
        sources: Sequence[int] | None = None,
    ) -> Explanation:
        """Influence patterns of every source token of ``text`` (``targets=(good, bad)``
        for a masked LM with one ``[MASK]``; ``label`` for a classifier, default: its
        prediction). ``sources``: only these word-piece positions (``[CLS]`` is 0)."""
        return self.explain_batch([Query(text, _pair(targets), label, sources)])[0]

    def explain_batch(
        self, queries: Sequence[Query], progress: Callable[[int], None] | None = None
    ) -> list[Explanation]:
        """Explain several texts together (sentences, sources and α steps are batched)."""
        cfg = self.config
        batch = self.prepare(queries)
        quad = make_quadrature(cfg.steps, cfg.quadrature, dtype=batch.x.dtype)
        if cfg.method in ("fast", "fast-full"):
            max_rows = cfg.max_rows or auto_max_rows(self.adapter, int(batch.x.shape[1]))
            search = gpr_positional if cfg.method == "fast" else gpr_fast
            searches = search(self.adapter, batch, quad, self.qoi, max_rows, progress)
        else:
            searches = gpr_reference(self.adapter, batch, quad, self.qoi, progress)
        q_x, q_b = qoi_values(self.adapter, batch, self.qoi)
        return [self._explanation(batch, b, searches[b], float(q_x[b]), float(q_b[b])) for b in range(len(batch))]

    def influence(
        self,
        text: str,
        source: int,
        positions: Sequence[int] | None = None,
        heads: Sequence[int | None | str] | None = None,
        targets: Sequence[str] | None = None,
        label: int | None = None,
    ) -> float:
        """I(x_source, π) of a user-given pattern (DESIGN §3).

        ``positions``: one position per layer 1..L (or L+1 entries starting with the
        source); ``None`` means the whole graph (plain IG). ``heads``: per layer a head
        index, ``None``/``"skip"`` for the skip, or ``"h"`` to keep the layer token level;
        omitted: a token-level pattern.
        """
        batch = self.prepare([Query(text, _pair(targets), label)])
        L, n = self.adapter.num_layers, batch.lengths[0]
        if not 0 <= source < n:
            raise InputError(f"source {source} is out of range: the text has {n} word pieces")
        constraints: list[Constraint | None] = [None] * L
        if positions is not None:
            pos = list(positions)
            if len(pos) == L + 1:
                if pos[0] != source:
                    raise InputError(f"positions[0] must be the source {source}, got {pos[0]}")
                pos = pos[1:]
            if len(pos) != L:
                raise InputError(f"a pattern needs {L} positions (one per layer), got {len(pos)}")
            if any(not 0 <= t < n for t in pos):
                raise InputError(f"positions must lie in 0..{n - 1}")
            hs = list(heads) if heads is not None else ["h"] * L
            if len(hs) != L:
                raise InputError(f"a head-level pattern needs {L} heads (one per layer), got {len(hs)}")
            for l, (t, h) in enumerate(zip(pos, hs)):
                if h is not None and h not in ("h", "skip") and not 0 <= int(h) < self.adapter.num_heads:
                    raise InputError(f"head {h} at layer {l + 1} is out of range")
                node = "skip" if h in (None, "skip") else h
                constraints[l] = Constraint(int(t), node if node in ("h", "skip") else int(node))
        quad = make_quadrature(self.config.steps, self.config.quadrature, dtype=batch.x.dtype)
        return restricted_influence(self.adapter, batch, 0, source, constraints, quad, self.qoi)

    def _explanation(self, batch: Batch, b: int, searches: list[SourceSearch], q_x: float, q_b: float) -> Explanation:
        tokens = batch.tokens[b]
        cfg = self.config
        q = batch.queries[b]
        patterns = [
            Pattern(
                source_index=s.source,
                source_token=tokens[s.source],
                sign=s.sign,
                g=s.g,
                positions=s.positions,
                heads=s.heads,
                influence_token=s.influence_token,
                influence_head=s.influence_head,
            )
            for s in searches
        ]
        return Explanation(
            model=str(self.name),
            text=q.text,
            tokens=tokens,
            target_index=int(batch.target_index[b]),
            num_layers=self.adapter.num_layers,
            num_heads=self.adapter.num_heads,
            steps=cfg.steps,
            baseline=cfg.baseline,
            qoi_name=self.qoi.name,
            qoi_value=q_x,
            qoi_baseline_value=q_b,
            patterns=patterns,
            targets=list(q.targets) if q.targets is not None else None,
            label=batch.labels[b],
            quadrature=cfg.quadrature,
            method=cfg.method,
        )


def _pair(targets: Sequence[str] | str | None) -> tuple[str, str] | None:
    if targets is None:
        return None
    if isinstance(targets, str):
        targets = [t for t in targets.split(",")]
    targets = tuple(t.strip() for t in targets)
    if len(targets) != 2:
        raise InputError(f"give exactly two targets GOOD,BAD; got {len(targets)}")
    return targets  # type: ignore[return-value]
