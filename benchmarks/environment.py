"""What a benchmark result depends on, recorded beside it: the machine, its ISA, the software
versions, the source commit and the command's arguments."""
from __future__ import annotations

import datetime
import platform
import subprocess
import sys
from pathlib import Path
from typing import List, Optional

import torch

import involution_cuda

from measure import last_level_cache_bytes

ROOT = Path(__file__).resolve().parent.parent
# The x86 features that decide which vector code runs (AVX-512 sub-sets included).
ISA_FLAGS = ("avx512f", "avx512bw", "avx512vl", "avx512_bf16", "avx512_fp16", "avx2", "fma", "f16c")


def _cpuinfo() -> dict:
    info = {}
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                key, _, value = line.partition(":")
                info.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return info


def cpu_description() -> dict:
    """The CPU's model, its vector-ISA flags, and the level torch's own kernels run at."""
    info = _cpuinfo()
    flags = set(info.get("flags", "").split())
    capability = getattr(torch.backends.cpu, "get_cpu_capability", lambda: None)()
    return {"cpu_model": info.get("model name", platform.processor() or platform.machine()),
            "cpu_family_model": f"family {info.get('cpu family', '?')} model {info.get('model', '?')}",
            "isa_flags": [flag for flag in ISA_FLAGS if flag in flags],
            "torch_cpu_capability": capability,
            "kernel_cpu_capability": involution_cuda.cpu_capability()}


def _git(*args: str) -> Optional[str]:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                              check=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def _cuda_driver() -> Optional[str]:
    try:
        return subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                              capture_output=True, text=True, check=True, timeout=20).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def _cupy_version() -> Optional[str]:
    try:
        import cupy
    except Exception:  # absent, or present without a usable CUDA: either way not in this run
        return None
    return cupy.__version__


def environment(device: torch.device, argv: Optional[List[str]] = None) -> dict:
    commit = _git("rev-parse", "HEAD")
    # results being written (this run's, or an earlier run's of a series) are not source changes
    dirty = bool(_git("status", "--porcelain", "--untracked-files=no", "--", ".", ":!benchmarks/results"))
    info = {
        "device_type": device.type,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "python": platform.python_version(),
        "commit": (commit + ("-dirty" if dirty else "")) if commit else None,
        "argv": list(sys.argv[1:] if argv is None else argv),
        "last_level_cache_mb": last_level_cache_bytes(device) / 2**20,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        **cpu_description(),
    }
    if device.type == "cuda":
        info.update(device=torch.cuda.get_device_name(device), cuda_driver=_cuda_driver(),
                    cupy=_cupy_version())
    else:
        info["device"] = f"{info['cpu_model']}, {info['cpu_family_model']}"
    return info
