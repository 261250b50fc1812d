"""Explicit task registry: every task the library and CLI know, looked up by name.

Adding a task is one line::

    register_task(TaskSpec("my/task", "mlm", "One line.", "the [MASK] ...", my_loader))

where ``my_loader(n, seed, data=None)`` returns a list of :class:`Instance`.
"""

from __future__ import annotations

import random
from contextlib import ExitStack
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Callable, Literal

from influence_patterns.errors import DataError, InputError
from influence_patterns.tasks.instance import Instance
from influence_patterns.tasks.loaders import load_instances, load_sst2
from influence_patterns.tasks.templates import generate

Loader = Callable[..., list[Instance]]  # (n: int, seed: int, data: str | Path | None = None)

PACKAGED_SST2 = "sst2_dev.tsv.gz"  # under influence_patterns/data/, when shipped


@dataclass(frozen=True)
class TaskSpec:
    """A named task: what it is, one example, and how to load ``n`` instances."""

    name: str
    kind: Literal["mlm", "classification"]
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
    packaged = resources.files("influence_patterns") / "data" / PACKAGED_SST2
    if packaged.is_file():
        with ExitStack() as stack:
            return load_sst2(stack.enter_context(resources.as_file(packaged)), limit)
    raise DataError(f"the package's SST-2 dev file influence_patterns/data/{PACKAGED_SST2} is missing; pass --data PATH")


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
        if any(inst.task for inst in instances):
            instances = [inst for inst in instances if inst.task == name]
            if not instances:
                raise DataError(f"{data}: no instances of task {name}")
        return subset(instances, n, seed)

    return load


TASKS: dict[str, TaskSpec] = {}


def register_task(spec: TaskSpec, replace: bool = False) -> TaskSpec:
    """Add ``spec`` to :data:`TASKS` (``replace=True`` to overwrite a task of the same name)."""
    if spec.kind not in ("mlm", "classification"):
        raise InputError(f"task kind must be 'mlm' or 'classification', got {spec.kind!r}")
    if spec.name in TASKS and not replace:
        raise InputError(f"task {spec.name!r} is already registered (pass replace=True)")
    TASKS[spec.name] = spec
    return spec


def get_task(name: str) -> TaskSpec:
    """The task called ``name``; :class:`InputError` listing the valid names otherwise."""
    try:
        return TASKS[name]
    except KeyError:
        raise InputError(f"unknown task {name!r}; valid tasks: {', '.join(TASKS)}") from None


def list_tasks() -> list[TaskSpec]:
    """Every registered task, in registration order."""
    return list(TASKS.values())


_TEMPLATE_INFO: list[tuple[str, str, str, tuple[str, str]]] = [
    ("sva/simple", "Subject-verb agreement, no attractor.",
     "the pilots [MASK] tall", ("are", "is")),
    ("sva/sent_comp", "SVA in a sentential complement; the main-clause noun attracts.",
     "the nurse said the dancers [MASK]", ("laugh", "laughs")),
    ("sva/vp_coord", "SVA on the second of two coordinated verbs.",
     "the actor sings and [MASK]", ("dances", "dance")),
    ("sva/long_vp_coord", "SVA on the second of two long coordinated verb phrases.",
     "the farmers play the piano every evening and [MASK] lunch in the park every day",
     ("eat", "eats")),
    ("sva/prep", "SVA across a prepositional phrase with an attractor noun.",
     "the painting near the doctors [MASK] old", ("is", "are")),
    ("sva/subj_rel", "SVA across a subject relative clause.",
     "the poets that like the judge [MASK]", ("smile", "smiles")),
    ("sva/obj_rel_across", "SVA across an object relative clause with 'that'.",
     "the car that the drivers want [MASK] cheap", ("is", "are")),
    ("sva/obj_rel_within", "SVA of the verb inside an object relative clause with 'that'.",
     "the artists that the clerk [MASK] are rich", ("trusts", "trust")),
    ("sva/obj_rel_no_that_across", "SVA across an object relative clause without 'that'.",
     "the singer the soldiers help [MASK] tired", ("is", "are")),
    ("sva/obj_rel_no_that_within", "SVA inside an object relative clause without 'that'.",
     "the books the students [MASK] look new", ("need", "needs")),
    ("ra/simple", "Reflexive anaphora agreement, no attractor.",
     "the surgeons doubted [MASK]", ("themselves", "himself")),
    ("ra/sent_comp", "Reflexive in a sentential complement; the main-clause noun attracts.",
     "the officers thought the mayor hurt [MASK]", ("herself", "themselves")),
    ("ra/across_rel", "Reflexive across an object relative clause.",
     "the judge that the poets fear defended [MASK]", ("himself", "themselves")),
]

for _name, _desc, _example, _targets in _TEMPLATE_INFO:
    register_task(TaskSpec(_name, "mlm", _desc, _example, _template_loader(_name), _targets))

register_task(
    TaskSpec(
        "sa/sst2",
        "classification",
        "Sentiment of a movie-review sentence (SST-2, 0 = negative, 1 = positive).",
        "it 's a charming and often affecting journey .",
        _sst2_loader,
    )
)
