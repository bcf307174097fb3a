"""Which CUDA kernels the ops run.

- ``"baseline"`` (the default): one thread per result element, as in the paper's CuPy code.
  They stay as the oracle of the GPU tests.
- ``"fast"``: several channels of one group per thread (each generated weight loaded once for
  them), a native channels_last path with 16-byte loads, and a grad_weight that reduces each
  group's channels without atomics (csrc/cuda/fast_threads.h). They become the default for a
  dtype and layout only once a committed GPU benchmark shows them correct and faster there.

The choice is process-wide and read at every call; the environment variable
``INVOLUTION_CUDA_KERNELS`` sets it at import. CPU tensors always run the CPU kernels.
"""
from __future__ import annotations

import contextlib
import os

from . import _C

CHOICES = ("baseline", "fast")
ENVIRONMENT_VARIABLE = "INVOLUTION_CUDA_KERNELS"


def get_cuda_kernels() -> str:
    """The CUDA kernels in use: ``"baseline"`` or ``"fast"``."""
    return _C._get_cuda_kernels()


def set_cuda_kernels(kernels: str) -> str:
    """Chooses the CUDA kernels (``"baseline"`` or ``"fast"``) and returns the previous choice."""
    if kernels not in CHOICES:
        raise ValueError(f"kernels must be one of {CHOICES}, got {kernels!r}")
    previous = get_cuda_kernels()
    _C._set_cuda_kernels(kernels)
    return previous


@contextlib.contextmanager
def cuda_kernels(kernels: str):
    """Runs the block with the given CUDA kernels, then restores the previous choice."""
    previous = set_cuda_kernels(kernels)
    try:
        yield
    finally:
        set_cuda_kernels(previous)


def _choose_from_environment() -> None:
    kernels = os.environ.get(ENVIRONMENT_VARIABLE)
    if kernels is None:
        return
    if kernels not in CHOICES:
        raise ValueError(f"{ENVIRONMENT_VARIABLE} must be one of {CHOICES}, got {kernels!r}")
    set_cuda_kernels(kernels)


_choose_from_environment()
