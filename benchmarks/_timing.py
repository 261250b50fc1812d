"""Shared by the benchmark scripts: wall time of one call, synchronised on CUDA."""

from __future__ import annotations

import time

import torch


def timed(fn, device: str):
    """``(seconds, fn())``; on a CUDA device the clock waits for the kernels."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    out = fn()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - t0, out
