"""Task accuracy: the fraction of instances whose quantity of interest is positive.

QoI (docs/method.md#quantity-of-interest): masked agreement ``logit[good] - logit[bad]``
at the ``[MASK]``; causal LM ``logit[good] - logit[bad]`` of the next token after the
text (an instance written with a ``[MASK]`` is read in prefix form: the text up to it,
:func:`influence_patterns.tasks.prefix.to_prefix`); classification
``logit[gold] - logit[other]``, looked up in the same registry
(``attribution.qoi.QOIS``) the explainer uses. Computed by a plain batched forward.
The model is anything with ``model``, ``tokenizer`` and ``kind`` (:class:`ScoredModel`;
``models.base.LoadedModel`` is one): tasks sit below models, and models' training
and defaults call this module.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any, Callable, Protocol, Sequence

import torch

from influence_patterns.attribution.inputs import single_piece, with_mask_token
from influence_patterns.attribution.prefix import continuation_id, prefix_ids
from influence_patterns.attribution.qoi import get_qoi
from influence_patterns.errors import DataError, InputError
from influence_patterns.tasks.instance import MASK, Instance
from influence_patterns.tasks.prefix import to_prefix


class ScoredModel(Protocol):
    """What accuracy needs of a model: the Hugging Face ``model`` and ``tokenizer`` and
    its ``kind`` ("mlm", "causal" or "classification")."""

    model: Any
    tokenizer: Any
    kind: str


@dataclass
class TaskAccuracy:
    """Accuracy of a model on the instances of one task (or one subtask of a data file)."""

    task: str
    n: int  # instances scored
    accuracy: float | None  # None when no instance of the task could be scored (n == 0)
    mean_qoi: float | None
    skipped: int = 0  # instances left out because a target is not one word piece (skip_unscorable)

    def to_dict(self) -> dict:
        return asdict(self)


def task_of(inst: Instance) -> str:
    """The group an instance counts in by default: its task."""
    return inst.task or "(no task)"


def subtask_of(inst: Instance) -> str:
    """The original subtask of a Marvin & Linzen row (``prep_anim`` of ``sva/prep``), else the task.

    ``load_marvin_linzen`` keeps it as the part of ``condition`` before ``:``.
    """
    if ":" in inst.condition:
        return inst.condition.split(":", 1)[0]
    return task_of(inst)


def accuracy(
    loaded: ScoredModel,
    instances: list[Instance],
    batch_size: int = 64,
    skip_unscorable: bool = False,
    progress: Callable[[int], None] | None = None,
) -> list[TaskAccuracy]:
    """Per-task accuracy and mean QoI of ``loaded`` on ``instances``, tasks in order of first appearance.

    A masked-LM target that is not a single word piece raises ``InputError``; with
    ``skip_unscorable`` such instances are left out and counted in ``skipped`` instead
    (the usual practice for Marvin & Linzen data, whose verbs are not all in BERT's
    vocabulary). A task whose instances were all skipped is reported with ``n == 0``.
    """
    return summarize(instances, score(loaded, instances, batch_size, skip_unscorable, progress))


def score(
    loaded: ScoredModel,
    instances: Sequence[Instance],
    batch_size: int = 64,
    skip_unscorable: bool = False,
    progress: Callable[[int], None] | None = None,
) -> list[float | None]:
    """The QoI of every instance, ``None`` for one left out as unscorable (``skip_unscorable``);
    ``progress(k)`` after each k instances are done."""
    if not instances:
        raise InputError("no instances to evaluate")
    if loaded.kind in ("mlm", "causal"):
        no_targets = sum(1 for inst in instances if inst.targets is None)
        if no_targets:  # label-only rows: a classification data set, not targets that fail to tokenize
            what = "a masked LM" if loaded.kind == "mlm" else "a causal LM"
            raise InputError(
                f"the model is {what}: each instance needs targets (GOOD, BAD), but {no_targets} of "
                f"{len(instances)} have none (label-only rows: a classification data set needs a classifier)"
            )
    if skip_unscorable and loaded.kind in ("mlm", "causal"):
        keep = [scorable(loaded.tokenizer, inst, loaded.kind) for inst in instances]
    else:
        keep = [True] * len(instances)
    kept = [inst for inst, k in zip(instances, keep) if k]
    if not kept:
        raise InputError(f"none of the {len(instances)} instances can be scored: their targets are not single word pieces")
    scores = iter(qoi(loaded, kept, batch_size=batch_size, progress=progress))
    if progress is not None and len(kept) < len(instances):
        progress(len(instances) - len(kept))  # the skipped ones are done too
    return [next(scores) if k else None for k in keep]


def summarize(
    instances: Sequence[Instance],
    scores: Sequence[float | None],
    by: Callable[[Instance], str] = task_of,
) -> list[TaskAccuracy]:
    """Accuracy per group (``by``: task, or :func:`subtask_of`), groups in order of first appearance."""
    counts = Counter(by(inst) for inst in instances)  # insertion order = first appearance
    groups: dict[str, list[float]] = {group: [] for group in counts}
    for inst, q in zip(instances, scores):
        if q is not None:
            groups[by(inst)].append(q)
    return [
        TaskAccuracy(
            task=group,
            n=len(qs),
            accuracy=sum(q > 0 for q in qs) / len(qs) if qs else None,
            mean_qoi=sum(qs) / len(qs) if qs else None,
            skipped=counts[group] - len(qs),
        )
        for group, qs in groups.items()
    ]


@dataclass
class SubtaskAccuracy:
    """One subtask (or condition) of a task: the task, the group's name, its accuracy."""

    task: str
    group: str
    result: TaskAccuracy


@dataclass
class AccuracyReport:
    """What ``accuracy`` measures: per task, per subtask (or per condition) within each
    task, the unweighted mean over tasks, and how many instances could not be scored."""

    results: list[TaskAccuracy]
    subtasks: list[SubtaskAccuracy]
    mean: float
    by: str  # "subtask" or "condition"
    unscorable: int

    def rows(self) -> list[tuple[str, TaskAccuracy, bool]]:
        """Table rows ``(label, result, is_subtask)``: each task, then its subtasks when it
        has several (a single one is named in the task's row)."""
        out: list[tuple[str, TaskAccuracy, bool]] = []
        for r in self.results:
            parts = [sub for sub in self.subtasks if sub.task == r.task]
            only = parts[0].group if len(parts) == 1 else r.task
            out.append((r.task if only == r.task else f"{r.task} ({only})", r, False))
            out += [("  " + sub.group, sub.result, True) for sub in (parts if len(parts) > 1 else ())]
        return out

    def to_dict(self) -> dict[str, Any]:
        key = "conditions" if self.by == "condition" else "subtasks"
        return {
            "results": [r.to_dict() for r in self.results],
            "mean_accuracy": self.mean,
            key: [{**sub.result.to_dict(), "task": sub.task, self.by: sub.group} for sub in self.subtasks],
        }


def condition_of(inst: Instance) -> str:
    """The condition of an instance (``sing_subj_plur_attr``), for ``--by-condition``."""
    return inst.condition or "(no condition)"


def evaluate(
    loaded: LoadedModel,
    instances: Sequence[Instance],
    batch_size: int = 64,
    skip_unscorable: bool = True,
    by_condition: bool = False,
    progress: Callable[[int], None] | None = None,
) -> AccuracyReport:
    """Accuracy of ``loaded`` per task and per subtask (Marvin & Linzen) or per condition."""
    scores = score(loaded, instances, batch_size=batch_size, skip_unscorable=skip_unscorable, progress=progress)
    results = summarize(instances, scores)
    group_of = condition_of if by_condition else subtask_of
    subtasks = []
    for task in results:
        members = [(inst, q) for inst, q in zip(instances, scores) if task_of(inst) == task.task]
        for r in summarize([i for i, _ in members], [q for _, q in members], by=group_of):
            subtasks.append(SubtaskAccuracy(task=task.task, group=r.task, result=r))
    return AccuracyReport(results=results, subtasks=subtasks, mean=mean_accuracy(results),
                          by="condition" if by_condition else "subtask",
                          unscorable=sum(r.skipped for r in results))


def scorable(tokenizer: Any, inst: Instance, kind: str = "mlm") -> bool:
    """Whether both targets of a masked instance are single word pieces of ``tokenizer``
    (``kind="causal"``: single tokens continuing the instance's prefix)."""
    try:
        if kind == "causal":
            _prepare_prefix(tokenizer, inst)
        else:
            target_ids(tokenizer, inst)
    except (InputError, DataError):
        return False
    return True


def mean_accuracy(results: Sequence[TaskAccuracy]) -> float:
    """Unweighted mean of the per-task accuracies (each task counts once; tasks with n == 0 do not count)."""
    scored = [r.accuracy for r in results if r.accuracy is not None]
    if not scored:
        return float("nan")
    return sum(scored) / len(scored)


def qoi(
    loaded: ScoredModel, instances: Sequence[Instance], batch_size: int = 64,
    progress: Callable[[int], None] | None = None, qoi_name: str | None = None,
) -> list[float]:
    """The QoI of every instance, in order (``progress(k)`` after each batch of k).
    ``qoi_name``: a registered QoI (default: the model kind's, as the explainer's)."""
    if batch_size < 1:
        raise InputError(f"batch_size must be at least 1, got {batch_size}")
    if not instances:
        raise InputError("no instances to evaluate")
    _check_kinds(instances, loaded.kind)
    if loaded.kind == "mlm":
        prepared = [_prepare_masked(loaded.tokenizer, inst) for inst in instances]
    elif loaded.kind == "causal":
        prepared = [_prepare_prefix(loaded.tokenizer, inst) for inst in instances]
    elif loaded.kind == "classification":
        n_labels = int(getattr(loaded.model.config, "num_labels", 2))
        prepared = [_prepare_classification(loaded.tokenizer, inst, n_labels) for inst in instances]
    else:
        raise InputError(f"unknown model kind {loaded.kind!r}")
    limit = _max_length(loaded.model)
    for inst, (ids, *_rest) in zip(instances, prepared):
        if limit is not None and len(ids) > limit:  # as the explainer refuses it: never a RuntimeError
            shown = inst.text if len(inst.text) <= 60 else inst.text[:57] + "..."
            raise InputError(f"the text {shown!r} is {len(ids)} word pieces long; the model takes at most {limit}")
    qoi_fn = get_qoi(qoi_name, loaded.kind)

    device = next(loaded.model.parameters()).device
    pad = loaded.tokenizer.pad_token_id or 0
    out: list[float] = []
    with torch.no_grad():
        for start in range(0, len(prepared), batch_size):
            chunk = prepared[start : start + batch_size]
            width = max(len(ids) for ids, *_ in chunk)
            input_ids = torch.full((len(chunk), width), pad, dtype=torch.long)
            attention = torch.zeros((len(chunk), width), dtype=torch.long)
            for k, (ids, *_rest) in enumerate(chunk):
                input_ids[k, : len(ids)] = torch.tensor(ids)
                attention[k, : len(ids)] = 1
            logits = loaded.model(input_ids=input_ids.to(device), attention_mask=attention.to(device)).logits
            rows = torch.arange(len(chunk), device=device)
            if loaded.kind in ("mlm", "causal"):  # at the [MASK], or the next token after the text
                pos = torch.tensor([c[1] for c in chunk], device=device)
                at_target = logits[rows, pos]  # (batch, vocab) at the [MASK] / the prefix's last token
                classes = torch.tensor([(c[2], c[3]) for c in chunk], device=device)  # (batch, 2): good, bad
            else:
                at_target = logits  # (batch, labels)
                gold = torch.tensor([c[1] for c in chunk], device=device)
                others = logits.clone()
                others[rows, gold] = float("-inf")
                # the strongest other class (= 1 - gold for 2 labels), as attribution.inputs picks it
                classes = torch.stack([gold, others.argmax(dim=1)], dim=1)
            q = qoi_fn(at_target, classes)
            out.extend(q.double().cpu().tolist())
            if progress is not None:
                progress(len(chunk))
    return out


def target_ids(tokenizer: Any, inst: Instance) -> tuple[int, int]:
    """Vocabulary ids of ``inst.targets`` (good, bad); each must be one word piece."""
    if inst.targets is None or len(inst.targets) != 2:
        raise InputError(f"instance needs targets (good, bad) for a masked LM: {inst.text!r}")
    return single_piece(tokenizer, inst.targets[0]), single_piece(tokenizer, inst.targets[1])


def _encode(tokenizer: Any, text: str) -> list[int]:
    return tokenizer(text)["input_ids"]  # never truncated: a text too long is refused (qoi)


def _max_length(model: Any) -> int | None:
    """The most word pieces the model takes (its position embeddings), ``None`` if unknown."""
    from influence_patterns.errors import ModelError
    from influence_patterns.graph.architectures import adapter_for

    try:
        return int(adapter_for(model).max_length)
    except (ModelError, AttributeError, TypeError, ValueError):
        value = getattr(getattr(model, "config", None), "max_position_embeddings", None)
        return int(value) if isinstance(value, int) else None


def _check_kinds(instances: Sequence[Instance], kind: str) -> None:
    """A registered task's instances given to a model of another kind: one error naming
    the twin task (a masked task on a decoder, a prefix task on an encoder)."""
    from influence_patterns.tasks.registry import TASKS, check_task_kind

    for name in dict.fromkeys(inst.task for inst in instances):
        if name in TASKS:
            check_task_kind(TASKS[name], kind)


def _prepare_prefix(tokenizer: Any, inst: Instance) -> tuple[list[int], int, int, int]:
    """A decoder's instance: the text's ids, its last position, the two continuations' ids.
    A masked instance (a template or Marvin & Linzen pair) is read in its prefix form."""
    if MASK in inst.text.split():
        inst = to_prefix(inst)
    if inst.targets is None or len(inst.targets) != 2:
        raise InputError(f"instance needs targets (good, bad) for a causal LM: {inst.text!r}")
    ids = prefix_ids(tokenizer, inst.text)
    return ids, len(ids) - 1, continuation_id(tokenizer, inst.text, inst.targets[0]), \
        continuation_id(tokenizer, inst.text, inst.targets[1])


def _prepare_masked(tokenizer: Any, inst: Instance) -> tuple[list[int], int, int, int]:
    mask = tokenizer.mask_token
    if mask is None:
        raise InputError("this tokenizer has no mask token; it cannot score masked instances")
    text = with_mask_token(tokenizer, inst.text)  # the model's own mask token (``<mask>``)
    count = text.count(mask)
    if count != 1:
        raise InputError(f"text must contain exactly one {MASK}, found {count}: {inst.text!r}")
    good, bad = target_ids(tokenizer, inst)
    ids = _encode(tokenizer, text)
    where = [k for k, t in enumerate(ids) if t == tokenizer.mask_token_id]
    if len(where) != 1:
        raise InputError(f"the {mask} of this text does not survive tokenisation (too long?): {inst.text!r}")
    return ids, where[0], good, bad


def _prepare_classification(tokenizer: Any, inst: Instance, n_labels: int) -> tuple[list[int], int]:
    if inst.label is None:
        raise InputError(f"instance has no gold label, but the model is a classifier: {inst.text!r}")
    if not 0 <= inst.label < n_labels:
        raise InputError(f"label {inst.label} is out of range for a {n_labels}-label classifier")
    return _encode(tokenizer, inst.text), int(inst.label)
