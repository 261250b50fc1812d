"""The one obvious entry point: ``Explainer.from_pretrained(name).explain(text, targets=...)``."""

from __future__ import annotations

import math
import numbers
from typing import Any, Callable, Sequence

import torch

from influence_patterns.attribution.influence import Constraint, qoi_values, restricted_influence
from influence_patterns.attribution.inputs import Batch, Query, prepare_batch
from influence_patterns.attribution.qoi import get_qoi
from influence_patterns.attribution.quadrature import make_quadrature
from influence_patterns.config import ExplainConfig
from influence_patterns.errors import InputError, ModelError
from influence_patterns.graph.architectures import adapter_for
from influence_patterns.models.base import fingerprint
from influence_patterns.models.loading import prepare
from influence_patterns.progress import Progress, progress_bar
from influence_patterns.result import Explanation, Pattern
from influence_patterns.search.common import SourceSearch
from influence_patterns.search.methods import GPR_METHODS


class Explainer:
    """Explains a BERT-family masked LM or classifier with influence patterns."""

    def __init__(self, model: Any, tokenizer: Any, name: str | None = None, **config: Any) -> None:
        """Wrap a loaded model and its tokenizer. The model is prepared as
        ``from_pretrained`` does (eval mode, eager attention: fused attention has no
        forward-mode AD) and must have finite weights."""
        _check_model_and_tokenizer(model, tokenizer)
        self.config = ExplainConfig(**config)
        self.config.validate()
        self.adapter = adapter_for(prepare(model))
        check_finite_weights(model)
        self.model = model
        self.tokenizer = tokenizer
        self.name = name or getattr(model, "name_or_path", None) or type(model).__name__
        self.qoi = get_qoi(self.config.qoi, self.adapter.kind)

    @classmethod
    def from_pretrained(cls, name_or_path: str, device: str = "auto", **config: Any) -> "Explainer":
        """Load ``default-mlm``, ``default-sst2``, a local checkpoint directory or a hub name."""
        from influence_patterns.models.loading import load_model

        loaded = load_model(name_or_path, device=device)
        return cls(loaded.model, loaded.tokenizer, name=loaded.name, **config)

    @property
    def kind(self) -> str:
        return self.adapter.kind

    @property
    def fingerprint(self) -> dict[str, str]:
        """``weights_sha256`` and ``config_sha256`` of the model (``models.base.fingerprint``),
        computed once: what a run records so that rows of other weights are never mixed in."""
        cached = getattr(self, "_fingerprint", None)
        if cached is None:
            cached = self._fingerprint = fingerprint(self.model)
        return dict(cached)

    def prepare(self, queries: Sequence[Query]) -> Batch:
        """Check and tokenize ``queries``; build x and the baseline."""
        for q in queries:
            self._check_query(q)
        return prepare_batch(self.adapter, self.tokenizer, queries, self.config.baseline, self.config.keep_special)

    def _check_query(self, q: Query) -> None:
        if not isinstance(q.text, str):
            hint = " (decode the bytes first, e.g. text.decode('utf-8'))" if isinstance(q.text, (bytes, bytearray)) else ""
            raise InputError(f"text must be a str, got {type(q.text).__name__}{hint}")
        if self.kind == "classification" and q.targets is not None:
            raise InputError(
                "the model is a classifier: it explains a label (default: its prediction), not targets; "
                "drop the targets, or load a masked LM"
            )
        if q.label is not None and (isinstance(q.label, bool) or not isinstance(q.label, numbers.Integral)):
            raise InputError(f"label must be a class index (an integer), got {q.label!r}")
        if self.kind == "mlm" and q.label is not None:
            raise InputError(
                "the model is a masked LM: it explains targets GOOD,BAD at the [MASK], not a label; "
                "drop the label, or load a classifier"
            )
        if self.kind == "causal" and q.label is not None:
            raise InputError(
                "the model is a causal LM: it explains two continuations GOOD,BAD of the text, not a label; "
                "drop the label, or load a classifier"
            )

    def explain(
        self, text: str, targets: Sequence[str] | None = None, label: int | None = None,
        sources: Sequence[int] | None = None, progress: Progress = None,
    ) -> Explanation:
        """Influence patterns of every source token of ``text`` (``targets=(good, bad)``
        for a masked LM with one ``[MASK]``; ``label`` for a classifier, default: its
        prediction). ``sources``: only these word-piece positions (``[CLS]`` is 0).
        ``progress``: a bar per source-token chunk (``None``: when stderr is a terminal)."""
        result = self.explain_batch([Query(text, _pair(targets), label, sources)], progress=progress)[0]
        result.extra["threads"] = torch.get_num_threads()  # recorded: the time it took depends on it
        if self.kind == "classification":  # for titles: which class, and whose choice it was
            id2label = getattr(self.model.config, "id2label", None) or {}
            result.extra["label_names"] = [str(id2label.get(k, k)) for k in range(len(id2label))]
            result.extra["label_from"] = "given" if label is not None else "prediction"
        return result

    def explain_batch(
        self,
        queries: Sequence[Query | str],
        targets: Sequence[str] | str | Sequence[Sequence[str] | None] | None = None,
        labels: int | Sequence[int | None] | None = None,
        progress: Progress = None,
    ) -> list[Explanation]:
        """Explain several texts together (sentences, sources and α steps are batched).

        ``queries``: :class:`Query` objects or plain strings; for strings, ``targets`` is
        one ``(good, bad)`` pair for all (masked LM) or one pair per text, and ``labels``
        one class for all or one per text (classifier; default: its prediction).
        ``progress``: ``True``/``False``, ``None`` (a bar when stderr is a terminal) or a
        callable given the number of source tokens done after each chunk."""
        queries = _queries(queries, targets, labels)
        cfg = self.config
        batch = self.prepare(queries)
        quad = make_quadrature(cfg.steps, cfg.quadrature, dtype=batch.x.dtype)
        total = sum(len(s) for s in batch.sources)
        with progress_bar(total, "explaining", progress) as advance:
            searches = GPR_METHODS.lookup(cfg.method)(self.adapter, batch, quad, self.qoi, cfg.max_rows, advance)
        q_x, q_b = qoi_values(self.adapter, batch, self.qoi)
        check_finite_qoi(batch, q_x, q_b)
        out = [self._explanation(batch, b, searches[b], float(q_x[b]), float(q_b[b])) for b in range(len(batch))]
        if self.adapter.causal:
            for b, e in enumerate(out):
                e.extra.update(decoder_fields(self.adapter, batch, b, e))
        return out

    def influence(
        self,
        text: str,
        source: int,
        positions: Sequence[int] | None = None,
        heads: Sequence[int | None | str] | None = None,
        targets: Sequence[str] | None = None,
        label: int | None = None,
    ) -> float:
        """I(x_source, π) of a user-given pattern (docs/method.md#pattern-influence).

        ``positions``: one position per layer 1..L (or L+1 entries starting with the
        source); ``None`` means the whole graph (plain IG). ``heads``: per layer a head
        index (from 0), ``None`` for the skip (as in :attr:`Pattern.heads`; ``"skip"`` is
        accepted too), or ``"h"`` to keep the layer token level; omitted: a token-level
        pattern. Returns the QoI's share (in logits) that flows through that pattern.
        """
        if isinstance(source, bool) or not isinstance(source, numbers.Integral):
            raise InputError(f"source must be a word-piece position (an integer), got {source!r}")
        source = int(source)
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
            if any(isinstance(t, bool) or not isinstance(t, numbers.Integral) or not 0 <= t < n for t in pos):
                raise InputError(f"positions must be word-piece positions in 0..{n - 1}, got {pos}")
            target = int(batch.target_index[0])
            if pos[-1] != target:
                raise InputError(
                    f"a pattern ends at the target position {target}, but positions end at {pos[-1]}"
                )
            hs = list(heads) if heads is not None else ["h"] * L
            if len(hs) != L:
                raise InputError(f"a head-level pattern needs {L} heads (one per layer), got {len(hs)}")
            for l, (t, h) in enumerate(zip(pos, hs)):
                if h is not None and h not in ("h", "skip") and (
                    isinstance(h, bool) or not isinstance(h, numbers.Integral) or not 0 <= h < self.adapter.num_heads
                ):
                    raise InputError(
                        f"head {h!r} at layer {l + 1} is not one of 0..{self.adapter.num_heads - 1}, 'skip' or 'h'"
                    )
                node = "skip" if h in (None, "skip") else h
                constraints[l] = Constraint(int(t), node if node in ("h", "skip") else int(node))
        quad = make_quadrature(self.config.steps, self.config.quadrature, dtype=batch.x.dtype)
        return restricted_influence(self.adapter, batch, 0, source, constraints, quad, self.qoi)

    def _explanation(self, batch: Batch, b: int, searches: list[SourceSearch], q_x: float, q_b: float) -> Explanation:
        tokens = batch.tokens[b]
        cfg = self.config
        q = batch.queries[b]
        patterns = [Pattern.of(s) for s in searches]
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


def decoder_fields(adapter: Any, batch: Batch, b: int, e: Explanation) -> dict[str, Any]:
    """What a decoder's explanation adds to the JSON: ``architecture`` (model type and layer
    form), ``causal``, what filled the baseline, and the completeness gap
    ``Σ_i g(x_i) − (q(x) − q(b))`` when every token is explained (the BOS, kept real in
    the baseline, has g = 0) (docs/decoders.md, "Baseline")."""
    gap = None
    if batch.queries[b].sources is None:
        gap = sum(p.g for p in e.patterns) - (e.qoi_value - e.qoi_baseline_value)
    return {
        "architecture": f"{adapter.config.model_type} ({adapter.form})",
        "causal": True,
        "baseline_fill": batch.baseline_fill,
        "completeness_gap": gap,
    }


def _check_model_and_tokenizer(model: Any, tokenizer: Any) -> None:
    """``InputError`` for something that is not a loaded model or tokenizer (``None``, a name)."""
    if not isinstance(model, torch.nn.Module) or getattr(model, "config", None) is None:
        hint = "; to load by name use Explainer.from_pretrained(name)" if isinstance(model, (str, type(None))) else ""
        raise InputError(f"model must be a loaded Hugging Face model (a torch Module with a config), "
                         f"got {type(model).__name__}{hint}")
    if not callable(tokenizer) or not hasattr(tokenizer, "convert_ids_to_tokens"):
        raise InputError(f"tokenizer must be a Hugging Face tokenizer, got {type(tokenizer).__name__} "
                         "(e.g. AutoTokenizer.from_pretrained(the model's directory))")


def check_finite_weights(model: Any) -> None:
    """``ModelError`` naming the first parameter that holds a NaN or an infinity."""
    for name, p in model.named_parameters():
        if not torch.isfinite(p).all():
            raise ModelError(f"the model's weights are not finite (NaN or inf in {name}); the checkpoint is corrupt")


def check_finite_qoi(batch: Batch, q_x: torch.Tensor, q_b: torch.Tensor) -> None:
    """``ModelError`` when the model's output at the input or the baseline is NaN or infinite."""
    for b in range(len(batch)):
        if not (math.isfinite(float(q_x[b])) and math.isfinite(float(q_b[b]))):
            raise ModelError(
                f"the quantity of interest is not finite ({float(q_x[b])} at the text, {float(q_b[b])} at the "
                f"baseline) for {batch.queries[b].text!r}; the model's outputs overflow or hold NaN"
            )


def _queries(
    queries: Sequence[Query | str],
    targets: Sequence[str] | str | Sequence[Sequence[str] | None] | None,
    labels: int | Sequence[int | None] | None,
) -> list[Query]:
    """Plain strings become queries with ``targets`` / ``labels`` (one for all, or one each)."""
    if isinstance(queries, (str, Query)):
        queries = [queries]
    n = len(queries)

    def each(value: Any, name: str, single: Callable[[Any], bool]) -> list[Any]:
        if value is None or single(value):
            return [value] * n
        value = list(value)
        if len(value) != n:
            raise InputError(f"{name} has {len(value)} entries for {n} texts; give one each or one for all")
        return value

    pairs = each(targets, "targets", lambda v: isinstance(v, str) or (
        len(v) == 2 and all(isinstance(t, str) for t in v)))
    label_list = each(labels, "labels", lambda v: isinstance(v, int))
    out = []
    for q, pair, label in zip(queries, pairs, label_list):
        if isinstance(q, Query):
            if pair is not None or label is not None:
                raise InputError("targets/labels go with plain strings; a Query carries its own")
            out.append(q)
        elif isinstance(q, str):
            out.append(Query(q, _pair(pair), label))
        else:
            raise InputError(f"explain_batch takes strings or Query objects, not {type(q).__name__}")
    return out


def _pair(targets: Sequence[str] | str | None) -> tuple[str, str] | None:
    if targets is None:
        return None
    if isinstance(targets, (bytes, bytearray)) or not isinstance(targets, (str, Sequence)):
        raise InputError(f"targets must be two words GOOD,BAD, got {targets!r}")
    if isinstance(targets, str):
        targets = [t for t in targets.split(",")]
    if any(not isinstance(t, str) for t in targets):
        raise InputError(f"targets must be two words (strings) GOOD,BAD, got {tuple(targets)!r}")
    targets = tuple(t.strip() for t in targets)
    if len(targets) != 2:
        raise InputError(f"give exactly two targets GOOD,BAD; got {len(targets)}")
    return targets  # type: ignore[return-value]
