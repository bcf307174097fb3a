"""Builds and loads the emulated CUDA launches (tests/csrc/emulated_launch.cpp): a test
instrument compiled here with the package's own checks, never part of the installed package.

``ops()`` returns ``torch.ops.involution_cuda_emulated``, building the library on first use into
``build/emulation`` (kept between runs; torch's extension builder recompiles changed sources).
With ``INVOLUTION_SANITIZE=1`` (scripts/check_sanitizers.sh) it is built with AddressSanitizer
and UndefinedBehaviorSanitizer, into its own folder.
"""
from __future__ import annotations

import functools
import os
from pathlib import Path

import torch
from torch.utils.cpp_extension import load

import involution_cuda  # noqa: F401  (the ops' library must load first: its checks raise the errors)

ROOT = Path(__file__).resolve().parent.parent


SANITIZERS = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all"]


@functools.lru_cache(maxsize=None)
def ops():
    name = "involution_cuda_emulated"
    cflags, ldflags = ["-O2"], []
    if os.environ.get("INVOLUTION_SANITIZE") == "1":
        name += "_sanitized"
        cflags, ldflags = ["-O1", "-g", "-fno-omit-frame-pointer", *SANITIZERS], SANITIZERS
    build = ROOT / "build" / name
    build.mkdir(parents=True, exist_ok=True)
    load(name=name, sources=[str(ROOT / "tests" / "csrc" / "emulated_launch.cpp"),
                             str(ROOT / "csrc" / "checks.cpp")],
         extra_include_paths=[str(ROOT / "csrc")], extra_cflags=cflags, extra_ldflags=ldflags,
         build_directory=str(build), is_python_module=False, verbose=False)
    return torch.ops.involution_cuda_emulated
