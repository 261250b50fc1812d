"""How many CPU threads torch uses: one rule for every command and for builds.

``$INFLUENCE_PATTERNS_THREADS`` when set; else torch's default lowered to the cores
idle right now. On a shared machine, OpenMP threads that land on busy cores wait on
each other: on a 2-core machine at load average 5, ``explain`` of a 10-token sentence
took 12–18 s with torch's default 2 threads and 1.3–2.1 s with 1 (docs/performance.md).

:func:`use_threads` applies the choice (``load_model`` calls it for a CPU model, so
``explain``, ``run``, ``ablate``, ``accuracy``, ``analyze --null`` and ``report`` all
honour it); :func:`current` is what was applied, recorded in ``run.json``, in
each explanation's JSON and in ``ablation.json``'s settings.
"""

from __future__ import annotations

import os
import time

from influence_patterns.errors import InputError

THREADS_ENV = "INFLUENCE_PATTERNS_THREADS"

_applied: int | None = None


def requested() -> int | None:
    """``$INFLUENCE_PATTERNS_THREADS`` as a whole number ≥ 1, or None when unset."""
    env = os.environ.get(THREADS_ENV, "").strip()
    if not env:
        return None
    try:
        value = int(env)
    except ValueError:
        raise InputError(f"{THREADS_ENV} must be a whole number, got {env!r}") from None
    if value < 1:
        raise InputError(f"{THREADS_ENV} must be at least 1, got {value}")
    return value


def choose_threads(window: float = 1.0) -> int:
    """``$INFLUENCE_PATTERNS_THREADS``, else torch's default lowered to the idle cores
    (busy cores measured over ``window`` seconds of ``/proc/stat``; the 1-minute load
    average where that is missing)."""
    import torch

    env = requested()
    if env is not None:
        return env
    threads = torch.get_num_threads()
    busy = busy_cores(window)
    if busy is None:
        busy = load_average()
    if busy is not None:
        idle = (os.cpu_count() or 1) - busy
        threads = max(1, min(threads, int(idle + 0.5)))
    return threads


def use_threads(window: float = 0.25) -> int:
    """Choose the thread count once per process and apply it (``torch.set_num_threads``);
    later calls return the same count unless ``$INFLUENCE_PATTERNS_THREADS`` changed."""
    global _applied
    import torch

    env = requested()
    if _applied is not None and (env is None or env == _applied):
        return _applied
    _applied = env if env is not None else choose_threads(window)
    torch.set_num_threads(_applied)
    return _applied


def current() -> int:
    """The threads torch uses now (the applied choice, or torch's own setting)."""
    import torch

    return torch.get_num_threads()


def busy_cores(window: float = 1.0) -> float | None:
    """Cores busy right now, from two reads of ``/proc/stat`` ``window`` seconds apart
    (the 1-minute load average lags: just after another job ends it still counts it).
    ``None`` where ``/proc/stat`` is missing (macOS, Windows)."""

    def read() -> tuple[int, int] | None:
        try:
            with open("/proc/stat", encoding="ascii") as f:
                fields = [int(v) for v in f.readline().split()[1:]]
        except (OSError, ValueError):
            return None
        if len(fields) < 5:
            return None
        return sum(fields[:8]), fields[3] + fields[4]  # total, idle + iowait

    first = read()
    if first is None:
        return None
    time.sleep(window)
    second = read()
    if second is None or second[0] <= first[0]:
        return None
    busy_share = 1 - (second[1] - first[1]) / (second[0] - first[0])
    return round(max(0.0, busy_share) * (os.cpu_count() or 1), 2)


def load_average() -> float | None:
    """The 1-minute load average, or None where the platform has none."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None
