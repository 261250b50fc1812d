"""Explicit task registry: every task the library and CLI know, looked up by name.

Adding a task is one line::

    register_task(TaskSpec("my/task", "mlm", "One line.", "the [MASK] ...", my_loader))

where ``my_loader(n, seed, data=None)`` returns a list of :class:`Instance`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal

from influence_patterns.data import sst2_path
from influence_patterns.errors import DataError, InputError
from influence_patterns.registry import Registry
from influence_patterns.tasks.instance import Instance
from influence_patterns.tasks.instance import MASK
from influence_patterns.tasks.loaders import load_instances, load_sst2
from influence_patterns.tasks.prefix import ioi_instances, prefix_loader
from influence_patterns.tasks.templates import TEMPLATES, generate

Loader = Callable[..., list[Instance]]  # (n: int, seed: int, data: str | Path | None = None)


@dataclass(frozen=True)
class TaskSpec:
    """A named task: what it is, one example, and how to load ``n`` instances."""

    name: str
    kind: Literal["mlm", "classification", "causal"]
    description: str
    example: str
    load: Loader
    example_targets: tuple[str, str] | None = None


def subset(instances: list[Instance], n: int | None, seed: int = 0) -> list[Instance]:
    """``n`` instances chosen with ``seed``, kept in file order (all when ``n`` is None or large)."""
    if n is None or n >= len(instances):
        return list(instances)
    if n < 0:
        raise InputError(f"n must be a non-negative integer, got {n}")
    keep = sorted(random.Random(seed).sample(range(len(instances)), n))
    return [instances[i] for i in keep]


def _load_default_sst2(limit: int | None = None) -> list[Instance]:
    return load_sst2(sst2_path("dev"), limit)


def _sst2_loader(n: int | None, seed: int = 0, data: str | Path | None = None) -> list[Instance]:
    if data is None:
        instances = _load_default_sst2()
    elif Path(data).name.removesuffix(".gz").endswith(".tsv"):
        instances = load_sst2(data)
    else:
        instances = load_instances(data)
    return subset(instances, n, seed)


def _template_loader(name: str) -> Loader:
    def load(n: int | None, seed: int = 0, data: str | Path | None = None) -> list[Instance]:
        if data is None:
            if n is None:
                raise InputError(f"task {name} generates instances: give a number n")
            return generate(name, n, seed)
        instances = load_instances(data)
        unnamed = sum(1 for inst in instances if not inst.task)
        if 0 < unnamed < len(instances):  # silently dropping them would run a part of the file
            raise DataError(
                f"{data}: {unnamed} of {len(instances)} rows name no task while the others do; "
                "give every row a task (or none: then every row belongs to the task asked for)"
            )
        if any(inst.task for inst in instances):
            instances = [inst for inst in instances if inst.task == name]
            if not instances:
                raise DataError(f"{data}: no instances of task {name}")
        return subset(instances, n, seed)

    return load


TASKS: Registry[TaskSpec] = Registry("task")


def register_task(spec: TaskSpec, replace: bool = False) -> TaskSpec:
    """Add ``spec`` to :data:`TASKS` (``replace=True`` to overwrite a task of the same name)."""
    if spec.kind not in KIND_NAMES:
        raise InputError(f"task kind must be 'mlm', 'classification' or 'causal', got {spec.kind!r}")
    return TASKS.register(spec.name, spec, spec.description, replace=replace)


#: What each task kind needs, as errors name it.
KIND_NAMES = {"mlm": "a masked LM", "classification": "a classifier", "causal": "a causal LM (decoder)"}


def check_task_kind(spec: TaskSpec, model_kind: str) -> None:
    """``InputError`` when the task is not for a model of ``model_kind`` (a masked task given
    to a decoder, a prefix task to an encoder), naming the twin task that fits."""
    if spec.kind == model_kind:
        return
    hint = ""
    if spec.kind == "mlm" and model_kind == "causal" and f"prefix/{spec.name}" in TASKS:
        hint = f"; use prefix/{spec.name}, its prefix form"
    elif spec.kind == "causal" and spec.name.startswith("prefix/") and model_kind == "mlm":
        hint = f"; use {spec.name.removeprefix('prefix/')}, its masked form"
    raise InputError(f"task {spec.name} is for {KIND_NAMES[spec.kind]}, but the model is "
                     f"{KIND_NAMES.get(model_kind, model_kind)}{hint}")


def get_task(name: str) -> TaskSpec:
    """The task called ``name``; :class:`InputError` listing the valid names otherwise."""
    return TASKS.lookup(name)


def list_tasks() -> list[TaskSpec]:
    """Every registered task, in registration order."""
    return list(TASKS.values())


for _t in TEMPLATES:
    register_task(TaskSpec(_t.name, "mlm", _t.description, _t.example, _template_loader(_t.name), _t.example_targets))
for _t in TEMPLATES:  # the prefix forms, for causal decoders (tasks.prefix)
    _example = _t.example.split(MASK)[0].strip()
    register_task(TaskSpec(f"prefix/{_t.name}", "causal", f"{_t.description} Prefix form, for decoders.",
                           _example, prefix_loader(_template_loader(_t.name)), _t.example_targets))
register_task(TaskSpec(
    "ioi", "causal",
    "Indirect-object identification (Wang et al. 2022): which name the sentence ends with; ABBA/BABA balanced.",
    "When Mary and John went to the store, John gave a drink to", ioi_instances, ("Mary", "John"),
))

register_task(
    TaskSpec(
        "sa/sst2",
        "classification",
        "Sentiment of a movie-review sentence (SST-2, 0 = negative, 1 = positive).",
        "it 's a charming and often affecting journey .",
        _sst2_loader,
    )
)
