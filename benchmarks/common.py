"""Shared helpers for the benchmark scripts: timing, the machine's matmul peak, FLOP counting."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch


def median_seconds(fn: Callable[[], object], repeats: int = 5, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def matmul_peak_gflops(n: int = 2048, repeats: int = 5) -> float:
    """Measured dense fp32 matmul throughput of this machine (GFLOP/s), with the current threads."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    sec = median_seconds(lambda: a @ b, repeats=repeats)
    return 2 * n**3 / sec / 1e9


def count_flops(fn: Callable[[], object]) -> int:
    """FLOPs of one call, counted by PyTorch's FlopCounterMode (matmuls, convolutions, attention)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def header(title: str) -> None:
    print(f"\n== {title}  (torch {torch.__version__}, {torch.get_num_threads()} threads)")
