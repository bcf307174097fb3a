"""Timing and peak-memory measurement on CPU and CUDA.

Every timed call starts cold: before it the last-level cache (the GPU's L2, the CPU's L3) is
flushed by writing a buffer twice its size, and the inputs rotate through enough copies that
each call reads tensors no recent call touched. Untimed set-up (the forward whose graph a timed
backward consumes) runs before the flush.

CPU: ``time.perf_counter`` around each call. CUDA: the way ``triton.testing.do_bench`` does it,
with one addition: a chunk of calls is queued behind a ``torch.cuda._sleep`` so the host is
ahead of the GPU, every call is bracketed by CUDA events recorded back to back with the flush
between calls, and the host synchronises once per chunk; so a timed interval holds the GPU work
of the call and not the host's launch overhead.

Calls are measured in chunks so that the benchmark can alternate methods (one chunk of each in
turn) and drift of the machine hits all of them alike; ``summarize`` gives min, median,
quartiles and the relative interquartile range of everything collected.

Peak memory is the high-water mark above what was allocated when the measurement started:
``torch.cuda.max_memory_allocated`` on CUDA; on CPU the process's peak resident set (VmHWM,
reset through /proc/self/clear_refs), with glibc told to return every large block to the system
at once so freed memory cannot hide a later allocation.
"""
from __future__ import annotations

import atexit
import concurrent.futures
import contextlib
import ctypes
import multiprocessing
import statistics
import time
from pathlib import Path
from typing import Callable, List, Optional

import torch

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_FALLBACK_CACHE_BYTES = 32 * 2**20
_SLEEP_CYCLES = 50_000_000  # ~25 ms at 2 GHz: time for the host to queue a whole chunk


def last_level_cache_bytes(device: torch.device) -> int:
    """The GPU's L2 size, or the CPU's largest cache (sysfs), or 32 MiB when neither is known."""
    if device.type == "cuda":
        return getattr(torch.cuda.get_device_properties(device), "L2_cache_size", 0) or _FALLBACK_CACHE_BYTES
    sizes = []
    for entry in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*/size"):
        text = entry.read_text().strip()
        scale = {"K": 2**10, "M": 2**20, "G": 2**30}.get(text[-1:], 1)
        sizes.append(int(text.rstrip("KMG")) * scale)
    return max(sizes, default=_FALLBACK_CACHE_BYTES)


class Timer:
    """Times calls cold, in chunks of at least ``min_runs`` calls and ``min_seconds`` (CPU)."""

    def __init__(self, device: torch.device, min_runs: int, min_seconds: float = 0.0):
        self.device, self.min_runs, self.min_seconds = device, min_runs, min_seconds
        flush_elements = 2 * last_level_cache_bytes(device) // 4
        self._scratch = torch.empty(flush_elements, dtype=torch.float32, device=device)

    def flush(self) -> None:
        self._scratch.fill_(1.0)

    def chunk(self, run: Callable, calls: int, prepare: Optional[Callable] = None) -> List[float]:
        """Milliseconds of ``run(k)`` (or ``run(k, prepare(k))``) for k = calls, calls + 1, ...;
        ``calls`` counts what ran before, so successive chunks keep rotating the inputs."""
        if self.device.type == "cuda":
            return self._cuda_chunk(run, calls, prepare)
        times: List[float] = []
        started = time.perf_counter()
        k = calls
        while len(times) < self.min_runs or time.perf_counter() - started < self.min_seconds:
            args = (k, prepare(k)) if prepare else (k,)
            self.flush()
            begin = time.perf_counter()
            run(*args)
            times.append((time.perf_counter() - begin) * 1e3)
            k += 1
        return times

    def _cuda_chunk(self, run, calls, prepare) -> List[float]:
        events = []
        torch.cuda.synchronize(self.device)
        torch.cuda._sleep(_SLEEP_CYCLES)
        for k in range(calls, calls + self.min_runs):
            args = (k, prepare(k)) if prepare else (k,)
            self.flush()
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            run(*args)
            end.record()
            events.append((start, end))
        torch.cuda.synchronize(self.device)
        return [start.elapsed_time(end) for start, end in events]


def summarize(times: List[float]) -> dict:
    """min / median / quartiles (ms) and the interquartile range relative to the median."""
    ordered = sorted(times)
    if len(ordered) >= 2:
        q1, _, q3 = statistics.quantiles(ordered, n=4, method="inclusive")
    else:
        q1 = q3 = ordered[0]
    median = statistics.median(ordered)
    return {"min_ms": ordered[0], "median_ms": median, "q1_ms": q1, "q3_ms": q3,
            "iqr_rel": (q3 - q1) / median if median > 0 else 0.0, "runs": len(ordered)}


def median_ms(run: Callable[[int], None], device: torch.device, repeats: int, warmup: int) -> float:
    """Median milliseconds of ``run(k)`` over ``repeats`` cold calls after ``warmup`` calls."""
    for k in range(warmup):
        run(k)
    return summarize(Timer(device, repeats).chunk(run, warmup))["median_ms"]


def keep_freed_memory() -> None:
    """glibc keeps freed blocks of up to 1 GiB for reuse instead of returning them to the system
    (glibc only). Otherwise whether a call's results land in fresh pages (page faults, zeroing by
    the kernel) or in reused ones varies from call to call, and that, not the method, decides
    the spread; a long-running program reuses its memory, as this setting makes every method do."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(_M_MMAP_THRESHOLD, 2**30)
        libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1)
    except OSError:
        pass


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
