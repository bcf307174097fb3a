"""Builds and loads the emulated CUDA launches (tests/csrc/emulated_launch.cpp): a test
instrument compiled here with the package's own checks, never part of the installed package.

``ops()`` returns ``torch.ops.involution_cuda_emulated``, building the library on first use into
``build/<name>``; each of its ops returns the tuple that ``Launch`` names. With ninja (as
scripts/setup.sh installs) torch's extension builder recompiles only what changed, headers
included; without it (a bare GPU host) setuptools rebuilds it whole.
With ``INVOLUTION_SANITIZE=1`` (scripts/check_sanitizers.sh) it is built with AddressSanitizer
and UndefinedBehaviorSanitizer, into its own folder.
"""
from __future__ import annotations

import functools
import os
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import torch
from torch.utils import cpp_extension

import involution_cuda  # noqa: F401  (the ops' library first: the emulation raises through it)

ROOT = Path(__file__).resolve().parent.parent
SOURCES = [str(ROOT / "tests" / "csrc" / "emulated_launch.cpp"), str(ROOT / "csrc" / "checks.cpp")]


class Launch(NamedTuple):
    """What an emulated op returns: ``Launch(*ops().forward(...))``."""

    result: torch.Tensor
    pack: int  # channels per pack of the functor that ran (1: channels-first)
    most_items_per_thread: int
    first_in_place: bool  # the kernels read the first operand itself, not a copy
    second_in_place: bool


SANITIZERS = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all"]

# Run as a script: the setuptools build used when ninja is missing (argv: name, cflags, ldflags).
SETUP_SCRIPT = """
import sys
from setuptools import setup
from torch.utils.cpp_extension import BuildExtension, CppExtension
name, cflags, ldflags, include = sys.argv[1:5]
del sys.argv[1:5]
setup(name=name, ext_modules=[CppExtension(name, {sources!r}, include_dirs=[include],
      extra_compile_args=cflags.split(), extra_link_args=ldflags.split())],
      cmdclass={{"build_ext": BuildExtension.with_options(use_ninja=False)}})
"""


def _has_ninja() -> bool:
    try:
        cpp_extension.verify_ninja_availability()
        return True
    except RuntimeError:
        return False


@functools.lru_cache(maxsize=None)
def ops():
    name = "involution_cuda_emulated"
    cflags, ldflags = ["-O2"], []
    if os.environ.get("INVOLUTION_SANITIZE") == "1":
        name += "_sanitized"
        cflags, ldflags = ["-O1", "-g", "-fno-omit-frame-pointer", *SANITIZERS], SANITIZERS
    build = ROOT / "build" / name
    build.mkdir(parents=True, exist_ok=True)
    if _has_ninja():
        cpp_extension.load(name=name, sources=SOURCES, extra_include_paths=[str(ROOT / "csrc")],
                           extra_cflags=cflags, extra_ldflags=ldflags, build_directory=str(build),
                           is_python_module=False, verbose=False)
    else:
        subprocess.run([sys.executable, "-c", SETUP_SCRIPT.format(sources=SOURCES), name,
                        " ".join(cflags), " ".join(ldflags), str(ROOT / "csrc"), "build_ext",
                        "--force", "--build-lib", str(build), "--build-temp", str(build / "temp")],
                       check=True, capture_output=True, cwd=build)
        torch.ops.load_library(str(next(build.glob(f"{name}*.so"))))
    return torch.ops.involution_cuda_emulated
