"""Timing and peak-memory measurement on CPU and CUDA.

CPU time: ``time.perf_counter`` around each call. CUDA time: CUDA events. Both report the median
of repeated runs after a warm-up. Peak memory is the high-water mark above what was allocated
when the measurement started: ``torch.cuda.max_memory_allocated`` on CUDA; on CPU the process's
peak resident set (VmHWM, reset through /proc/self/clear_refs), with glibc told to return every
large block to the system at once so freed memory cannot hide a later allocation.
"""
from __future__ import annotations

import atexit
import concurrent.futures
import contextlib
import ctypes
import multiprocessing
import statistics
import time
from typing import Callable, List

import torch

_M_MMAP_THRESHOLD = -3


def configure_cpu_allocator() -> None:
    """Blocks over 64 KiB are mmap-ed and unmapped on free (a fixed threshold, glibc only)."""
    try:
        ctypes.CDLL("libc.so.6").mallopt(_M_MMAP_THRESHOLD, 64 * 1024)
    except OSError:
        pass


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


@contextlib.contextmanager
def peak_memory(device: torch.device, result: dict):
    """Sets result['peak_mb'] to the peak memory allocated inside the block beyond its start."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        start = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        yield
        torch.cuda.synchronize(device)
        result["peak_mb"] = (torch.cuda.max_memory_allocated(device) - start) / 2**20
    else:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")  # resets VmHWM to the current resident set
        start = _status_kib("VmRSS")
        yield
        result["peak_mb"] = max(0, _status_kib("VmHWM") - start) / 1024


def median_ms(
    run: Callable[[int], None], device: torch.device, repeats: int, warmup: int,
    prepare: Callable[[int], object] = None,
) -> float:
    """Median milliseconds of ``run(k)`` over ``repeats`` calls (k counts calls, for rotating
    inputs); ``prepare(k)``, when given, runs untimed before each call and its result is passed."""
    times: List[float] = []
    for k in range(warmup + repeats):
        state = prepare(k) if prepare else None
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            run(k) if state is None else run(k, state)
            end.record()
            end.synchronize()
            elapsed = start.elapsed_time(end)
        else:
            begin = time.perf_counter()
            run(k) if state is None else run(k, state)
            elapsed = (time.perf_counter() - begin) * 1e3
        if k >= warmup:
            times.append(elapsed)
    return statistics.median(times)


def copy_bandwidth_gbs(device: torch.device, megabytes: int = 512) -> float:
    """Device-to-device copy bandwidth (read + write bytes per second), in GB/s."""
    source = torch.empty(megabytes * 2**20, dtype=torch.uint8, device=device)
    target = torch.empty_like(source)
    ms = median_ms(lambda k: target.copy_(source), device, repeats=20, warmup=3)
    return 2 * source.numel() / (ms * 1e-3) / 1e9


_isolated_pool = None


def run_isolated(fn, *args):
    """``fn(*args)`` in a separate, reused process whose allocator is set up by
    configure_cpu_allocator, so memory can be read there without slowing this process."""
    global _isolated_pool
    if _isolated_pool is None:
        _isolated_pool = concurrent.futures.ProcessPoolExecutor(
            max_workers=1, mp_context=multiprocessing.get_context("spawn"),
            initializer=configure_cpu_allocator)
        atexit.register(_isolated_pool.shutdown)  # before the interpreter tears modules down
    return _isolated_pool.submit(fn, *args).result()
