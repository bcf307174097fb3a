"""Builds involution_cuda._C: CPU kernels always, CUDA kernels when torch has CUDA and nvcc exists.

INVOLUTION_BUILD=cpu|cuda forces one (default: auto). TORCH_CUDA_ARCH_LIST defaults to 8.0;9.0.
INVOLUTION_SANITIZE=1 builds the host code with AddressSanitizer and UndefinedBehaviorSanitizer
(for scripts/check_sanitizers.sh).
"""
import glob
import os
import shutil
from pathlib import Path

from setuptools import setup

# torch's guess from `which nvcc` is wrong when nvcc is a wrapper outside the toolkit: prefer the
# standard toolkit location when it exists and the user has not chosen one.
if not os.environ.get("CUDA_HOME") and os.path.exists("/usr/local/cuda/bin/nvcc"):
    os.environ["CUDA_HOME"] = "/usr/local/cuda"
os.environ.setdefault("TORCH_CUDA_ARCH_LIST", "8.0;9.0")

import torch  # noqa: E402
from torch.utils.cpp_extension import (  # noqa: E402
    CUDA_HOME,
    BuildExtension,
    CppExtension,
    CUDAExtension,
)


MINIMUM_TORCH = (2, 4)  # as pyproject.toml declares (torch>=2.4); README: "Supported torch versions"
if tuple(int(part) for part in torch.__version__.split("+")[0].split(".")[:2]) < MINIMUM_TORCH:
    raise RuntimeError(f"involution_cuda needs torch >= 2.4 to build, found torch {torch.__version__}")


# The torch this build compiles against, checked at import (involution_cuda/_torch_version.py):
# an extension built for one torch fails under another with an unreadable undefined symbol.
Path(__file__).with_name("involution_cuda").joinpath("_build_info.py").write_text(
    '"""Written by setup.py at build time: the torch the extension was compiled against."""\n'
    f"TORCH_VERSION = {torch.__version__!r}\n"
)


def want_cuda() -> bool:
    choice = os.environ.get("INVOLUTION_BUILD", "auto").lower()
    if choice not in ("auto", "cpu", "cuda"):
        raise ValueError(f"INVOLUTION_BUILD must be auto, cpu or cuda, got {choice!r}")
    available = torch.version.cuda is not None and CUDA_HOME is not None and (
        os.path.exists(os.path.join(CUDA_HOME, "bin", "nvcc")) or shutil.which("nvcc")
    )
    if choice == "cuda" and not available:
        raise RuntimeError(
            "INVOLUTION_BUILD=cuda needs a CUDA build of torch and the CUDA toolkit "
            f"(torch.version.cuda={torch.version.cuda}, CUDA_HOME={CUDA_HOME})"
        )
    return choice == "cuda" or (choice == "auto" and bool(available))


def extension():
    sources = (["csrc/ops.cpp", "csrc/checks.cpp", "csrc/python_module.cpp"]
               + sorted(glob.glob("csrc/cpu/*.cpp")) + sorted(glob.glob("csrc/autocast/*.cpp"))
               + sorted(glob.glob("csrc/autograd/*.cpp")))
    # OpenMP: at::parallel_for. No psabi notes: the wide-vector helpers are always inlined
    # (csrc/cpu/tiles.h), so the calling convention they warn about is never used. No debug
    # information (-g0 overrides the -g of Python's own flags): it doubles the compile time of
    # the files that include torch's headers and makes the library ten times larger.
    cxx_flags = ["-O3", "-g0", "-fopenmp", "-Wno-psabi"]
    link_flags = ["-fopenmp"]
    if os.environ.get("INVOLUTION_SANITIZE") == "1":
        sanitize = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all"]
        cxx_flags = ["-O1", "-g", "-fno-omit-frame-pointer", "-fopenmp"] + sanitize
        link_flags += sanitize
    if not want_cuda():
        return CppExtension(
            "involution_cuda._C", sources,
            extra_compile_args={"cxx": cxx_flags}, extra_link_args=link_flags,
        )
    sources += sorted(glob.glob("csrc/cuda/*.cpp")) + sorted(glob.glob("csrc/cuda/**/*.cu", recursive=True))
    return CUDAExtension(
        "involution_cuda._C", sources,
        extra_compile_args={"cxx": cxx_flags, "nvcc": ["-O3", "--expt-relaxed-constexpr"]},
        extra_link_args=link_flags,
    )


setup(ext_modules=[extension()], cmdclass={"build_ext": BuildExtension})
