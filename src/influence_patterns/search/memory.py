"""How many rows the fast scorers can take per chunk within a memory budget.

Both scorers take ``max_rows``. For the full-width scorer (``search.full_width``,
``method="fast-full"``) it counts (source × α) rows of its restricted passes; for the
default single-position scorer (``search.fast``) it counts the α rows of the
plain backward pass, whose memory per row is the same kind (a whole backward pass of
n tokens), and sizes the per-source chunks from it (``fast.source_rows``).

The full-width scorer's largest pass is stage 2's restricted backward pass: every layer's
activations for every row of the chunk are kept for the backward. So memory grows
linearly with the rows of a chunk and, per row, like ``L·(H·n² + c·n·d)``. Rather than
guess ``c`` for each architecture, :func:`row_bytes` runs one row through the model
once and counts what autograd keeps, then adds the gradients the scorer holds and
one layer's attention-sized transients. ``benchmarks/memory.py`` checks the estimate
against measured peaks (docs/performance.md).
"""

from __future__ import annotations

import ctypes
import sys
import weakref
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import torch

from influence_patterns.graph.adapters import Adapter
from influence_patterns.graph.hooks import Interceptor, intercept, restrict

#: Measured peak / estimate stayed below this on the benchmark (CPU RSS and CUDA allocator).
SAFETY = 1.25
#: Share of the free memory :func:`auto_max_rows` plans to use when no budget is given.
DEFAULT_SHARE = 0.5
_FALLBACK_BUDGET = 4 << 30  # bytes, when free memory cannot be read
_CACHE: "weakref.WeakKeyDictionary[torch.nn.Module, dict]" = weakref.WeakKeyDictionary()


class _Restricted(Interceptor):
    """Stage 2's backward pass in miniature: h^l restricted to one position; fresh views
    of the context and skip (so the count includes what the hooks add)."""

    def on_h(self, layer, h):
        m = torch.zeros(h.shape[:-1] + (1,), dtype=h.dtype, device=h.device)
        m[:, 0] = 1
        return restrict(h, m)

    def on_attn(self, layer, context, skip):
        return context.view_as(context), skip.view_as(skip)


def saved_activation_bytes(adapter: Adapter, seq_len: int) -> int:
    """Bytes autograd keeps for the backward pass of one row of ``seq_len`` tokens
    (parameters excluded; shared storages counted once). Runs the model once per
    (model, length, dtype); later calls read a cache that dies with the model."""
    emb = adapter.word_embeddings().weight
    per_model = _CACHE.setdefault(adapter.model, {})
    key = (seq_len, emb.dtype, str(emb.device), adapter.kind)
    if key not in per_model:
        per_model[key] = _count_saved(adapter, seq_len)
    return per_model[key]


def _count_saved(adapter: Adapter, seq_len: int) -> int:
    params = {p.untyped_storage().data_ptr() for p in adapter.model.parameters()}
    params |= {b.untyped_storage().data_ptr() for b in adapter.model.buffers()}
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        s = t.untyped_storage()
        if s.data_ptr() not in params:
            storages[s.data_ptr()] = s.nbytes()
        return t

    emb = adapter.word_embeddings().weight
    x = torch.zeros(1, seq_len, emb.shape[1], dtype=emb.dtype, device=emb.device, requires_grad=True)
    am = torch.ones(1, seq_len, dtype=torch.long, device=emb.device)
    target = torch.tensor([seq_len // 2], device=emb.device)
    with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        with intercept(adapter, _Restricted()):
            y = adapter.logits(x, am, target)
    del y
    return sum(storages.values())


def row_bytes(adapter: Adapter, seq_len: int) -> int:
    """Estimated bytes one (source × α) row of ``seq_len`` tokens costs the fast scorer."""
    L, H, d = adapter.num_layers, adapter.num_heads, adapter.hidden_size
    item = adapter.word_embeddings().weight.element_size()
    n = seq_len
    saved = saved_activation_bytes(adapter, n)
    # kept: ∂q/∂a^l and ∂q/∂s^l for every layer (stage 2) and ∂q/∂h^l (plain pass);
    # the IG path, its tangent and the leaf copy of it.
    kept = (3 * L + 1) * n * d * item + 3 * n * adapter.word_embeddings().weight.shape[1] * item
    # one layer's worth of attention scores, probabilities and their gradients in flight.
    transient = 4 * H * n * n * item
    return int(saved + kept + transient)


def available_bytes(device: torch.device | str = "cpu") -> int | None:
    """Free memory on ``device`` (CUDA: the driver's free bytes; CPU: Linux's
    ``MemAvailable``), or ``None`` when it cannot be read."""
    device = torch.device(device)
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def auto_max_rows(adapter: Adapter, seq_len: int, budget_bytes: int | None = None) -> int:
    """Rows per chunk (``max_rows`` of the scorers, e.g.
    :func:`~influence_patterns.search.full_width.gpr_full_width`) that fit ``budget_bytes`` for sentences padded to ``seq_len`` tokens.

    ``budget_bytes`` is what the chunks may use on top of the model's weights and the
    per-sentence cotangents (``(L+1)·A·n·d`` values per sentence, kept for the whole
    call); default: half of the device's free memory. The scorer never splits one
    source's α steps, so a chunk has at least ``len(quadrature)`` rows whatever this says.
    """
    if seq_len < 1:
        raise ValueError(f"seq_len must be positive, got {seq_len}")
    if budget_bytes is None:
        free = available_bytes(adapter.word_embeddings().weight.device)
        budget_bytes = int(DEFAULT_SHARE * free) if free is not None else _FALLBACK_BUDGET
    if budget_bytes <= 0:
        raise ValueError(f"budget_bytes must be positive, got {budget_bytes}")
    return max(1, int(budget_bytes // (SAFETY * row_bytes(adapter, seq_len))))


# --- glibc: large tensors from a kept heap --------------------------------------------

_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # mallopt parameters (glibc's malloc.h)
_DEFAULT_TRIM_THRESHOLD, _DEFAULT_MMAP_MAX = 128 * 1024, 65536  # glibc's defaults
_heap_depth = 0


def _glibc() -> ctypes.CDLL | None:
    """The process's C library if it is glibc (``mallopt`` and ``malloc_trim``), else ``None``."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # glibc only (not musl)
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
        return libc
    except (OSError, AttributeError):
        return None


@contextmanager
def heap_allocations() -> Iterator[None]:
    """Inside: glibc serves every allocation from its heap and keeps freed memory there.

    A forward-mode pass on the CPU allocates and frees tensors of tens to hundreds of MB
    per operation (tangents of every source × α row). glibc serves those with fresh
    ``mmap``s and unmaps them on free, so the kernel zero-fills every page again at the
    next operation: on ``internal-influence`` that page faulting was as much system time
    as the arithmetic's user time (docs/performance.md). With ``mmap`` off and the heap
    never trimmed the memory is reused. On leaving, glibc's default limits are set again
    (fixed thresholds: its sliding mmap threshold stays off) and the kept memory is given
    back (``malloc_trim``). Not glibc (macOS, Windows, musl): does nothing. Nested uses
    restore on the outermost exit only.
    """
    global _heap_depth
    libc = _glibc()
    if libc is None:
        yield
        return
    if _heap_depth == 0:
        libc.mallopt(_M_MMAP_MAX, 0)
        libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1)
    _heap_depth += 1
    try:
        yield
    finally:
        _heap_depth -= 1
        if _heap_depth == 0:
            libc.mallopt(_M_MMAP_MAX, _DEFAULT_MMAP_MAX)
            libc.mallopt(_M_TRIM_THRESHOLD, _DEFAULT_TRIM_THRESHOLD)
            libc.malloc_trim(0)
