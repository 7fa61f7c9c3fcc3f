"""Helpers shared by the benchmarks: the machine line and a robust timer."""

from __future__ import annotations

import platform
import time
from collections.abc import Callable

import torch

__all__ = ["machine", "timeit"]


def machine() -> str:
    """One line naming the machine the numbers were measured on."""
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else platform.processor() or "cpu"
    return (f"{platform.node()} | {platform.machine()} {device} | torch {torch.__version__} | "
            f"threads {torch.get_num_threads()}")


def timeit(fn: Callable[[], object], repeats: int = 3, warmup: int = 1) -> float:
    """Median wall time of ``fn`` in seconds (CUDA synchronised)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]
