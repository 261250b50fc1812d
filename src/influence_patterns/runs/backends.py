"""Where the explanations of a run are computed: in this process, or on Ray workers.

A backend takes an ``Explainer`` and batches of queries and yields each batch's
explanations **in submission order**, so the writer (``runs.runner.run_dataset``) appends
lines in order and its resume guarantees hold whatever the backend. Ray is an
optional extra (``pip install "influence-patterns[ray]"``); the same code runs on a
Ray cluster given its address.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

from influence_patterns.errors import InputError
from influence_patterns.registry import Registry

if TYPE_CHECKING:
    from influence_patterns.attribution.inputs import Query

#: One batch of a run's queries (not ``attribution.inputs.Batch``, the prepared tensors).
QueryBatch = Sequence["Query"]


class LocalBackend:
    """Explain batch after batch in this process."""

    def __init__(self, explainer: Any) -> None:
        self.explainer = explainer

    def map(self, batches: Sequence[QueryBatch], progress: Callable[[int], None] | None = None) -> Iterator[list[Any]]:
        for queries in batches:
            yield self.explainer.explain_batch(list(queries), progress=progress)

    def close(self) -> None:
        pass


class RayBackend:
    """Explain batches on ``workers`` Ray actors, each holding a copy of the explainer."""

    def __init__(self, explainer: Any, workers: int = 2, address: str | None = None) -> None:
        try:
            import ray
        except ImportError:
            raise InputError('the ray backend needs Ray: pip install "influence-patterns[ray]"') from None
        if workers < 1:
            raise InputError(f"workers must be at least 1, got {workers}")
        self._ray = ray
        self._started = False
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"address": address} if address else {"num_cpus": max(workers, 1)}
            ray.init(log_to_driver=False, include_dashboard=False, ignore_reinit_error=True, **kwargs)
            self._started = True

        @ray.remote(num_cpus=1)
        class _Worker:
            def __init__(self, explainer_ref: Any) -> None:
                import torch

                torch.set_num_threads(1)  # one core per worker
                self.explainer = explainer_ref

            def explain(self, queries: list[Any]) -> list[dict]:
                return [e.to_dict() for e in self.explainer.explain_batch(queries)]

        shared = ray.put(explainer)
        self._actors = [_Worker.remote(shared) for _ in range(workers)]

    def map(self, batches: Sequence[QueryBatch], progress: Callable[[int], None] | None = None) -> Iterator[list[Any]]:
        from ray.util import ActorPool

        from influence_patterns.result import Explanation

        pool = ActorPool(self._actors)
        for dicts in pool.map(lambda actor, queries: actor.explain.remote(list(queries)), list(batches)):
            yield [Explanation.from_dict(d) for d in dicts]

    def close(self) -> None:
        for actor in self._actors:
            self._ray.kill(actor)
        if self._started:
            self._ray.shutdown()


BACKENDS: Registry[Callable[..., Any]] = Registry("backend")
BACKENDS.register("local", lambda explainer, workers, address: LocalBackend(explainer), "this process")
BACKENDS.register("ray", RayBackend, "Ray workers; needs the ray extra")


def check_backend(name: str, workers: int = 1) -> None:
    """``InputError`` for a backend that cannot run, checked before a run writes anything:
    an unknown name, fewer than one worker, Ray not installed."""
    BACKENDS.lookup(name)
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise InputError(f"workers must be at least 1, got {workers!r}")
    if name == "ray":
        import importlib.util

        if importlib.util.find_spec("ray") is None:
            raise InputError('the ray backend needs Ray: pip install "influence-patterns[ray]"')


def make_backend(name: str, explainer: Any, workers: int = 1, address: str | None = None) -> LocalBackend | RayBackend:
    """The backend called ``name`` (:data:`BACKENDS`) for ``explainer``."""
    return BACKENDS.lookup(name)(explainer, workers=workers, address=address)
