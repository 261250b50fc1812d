"""``search.memory.heap_allocations``: glibc's malloc switched to a kept heap inside, its
defaults back outside (also after an error, and only at the outermost of nested uses);
results inside are the same numbers."""

from __future__ import annotations

import pytest
import torch

from influence_patterns.search import memory


class FakeLibc:
    """Records the ``mallopt`` / ``malloc_trim`` calls."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def mallopt(self, param: int, value: int) -> int:
        self.calls.append(("mallopt", param, value))
        return 1

    def malloc_trim(self, pad: int) -> int:
        self.calls.append(("trim", pad))
        return 1


@pytest.fixture
def libc(monkeypatch):
    fake = FakeLibc()
    monkeypatch.setattr(memory, "_glibc", lambda: fake)
    return fake


def test_heap_mode_inside_defaults_after(libc):
    with memory.heap_allocations():
        assert libc.calls == [("mallopt", memory._M_MMAP_MAX, 0), ("mallopt", memory._M_TRIM_THRESHOLD, 2**31 - 1)]
        with memory.heap_allocations():  # nested: nothing set, nothing restored
            pass
        assert len(libc.calls) == 2
    assert libc.calls[2:] == [("mallopt", memory._M_MMAP_MAX, 65536), ("mallopt", memory._M_TRIM_THRESHOLD, 128 * 1024),
                              ("trim", 0)]
    assert memory._heap_depth == 0


def test_defaults_restored_after_an_error(libc):
    with pytest.raises(ValueError):
        with memory.heap_allocations():
            raise ValueError("inside")
    assert libc.calls[-1] == ("trim", 0) and memory._heap_depth == 0


def test_as_a_decorator_and_without_glibc(monkeypatch):
    @memory.heap_allocations()
    def big() -> torch.Tensor:
        return torch.ones(64, 1 << 16).sum(0)

    want = torch.ones(64, 1 << 16).sum(0)
    assert torch.equal(big(), want) and torch.equal(big(), want)  # the real libc, twice
    monkeypatch.setattr(memory, "_glibc", lambda: None)  # macOS, musl: a no-op
    assert torch.equal(big(), want)
    assert memory._heap_depth == 0
