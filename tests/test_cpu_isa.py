"""The CPU kernels at every ISA level the host supports, chosen as PyTorch chooses its own
(ATEN_CPU_CAPABILITY caps the level), each against the reference in its own process."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

import involution_cuda

TESTS = Path(__file__).resolve().parent
LEVELS = ["default", "avx2", "avx512"]
# What each level runs: values and gradients of every dtype and problem against the reference,
# gradcheck, layouts, the channel-vector kernels' problems, the half tolerances, bfloat16's
# rounding bit for bit, and the property tests (random shapes and options).
KERNEL_TESTS = [
    str(TESTS / "test_ops.py"), str(TESTS / "test_tolerances.py"), str(TESTS / "test_properties.py"),
    "-k", "(cpu and (reference or gradcheck or empty_batch or non_contiguous or deterministic)) "
    "or channel_vectors or kernels_pass or random_problems_cpu or round_bfloat16 or rounds_bfloat16",
]


def host_level() -> str:
    flags = set()
    if Path("/proc/cpuinfo").exists():
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    if {"avx512f", "avx512bw", "avx512dq", "avx512vl", "avx2", "fma", "f16c", "bmi2"} <= flags:
        return "avx512"
    return "avx2" if {"avx2", "fma", "f16c", "bmi2"} <= flags else "default"


def run_at(level, *command):
    env = {**os.environ, "ATEN_CPU_CAPABILITY": level, "HYPOTHESIS_PROFILE": "dev"}
    return subprocess.run([sys.executable, *command], env=env, cwd=TESTS.parent, capture_output=True,
                          text=True, timeout=1200)


def capability_at(level):
    probe = run_at(level, "-c", "import involution_cuda; print(involution_cuda.cpu_capability())")
    assert probe.returncode == 0, probe.stderr
    return probe.stdout.strip().splitlines()[-1], probe.stderr


@pytest.mark.skipif("ATEN_CPU_CAPABILITY" in os.environ, reason="the environment caps the level")
def test_the_hosts_best_level_runs_by_default():
    assert involution_cuda.cpu_capability() == host_level()


@pytest.mark.parametrize("level", LEVELS)
def test_the_setting_caps_the_level(level):
    host = host_level()
    expected = LEVELS[min(LEVELS.index(level), LEVELS.index(host))]
    assert capability_at(level)[0] == expected


def test_an_unknown_setting_warns_and_runs_the_hosts_level():
    capability, stderr = capability_at("sse9")
    assert capability == host_level() and "ATEN_CPU_CAPABILITY=sse9" in stderr


@pytest.mark.parametrize("level", LEVELS)
def test_kernels_match_the_reference_at_every_level(level):
    if LEVELS.index(level) > LEVELS.index(host_level()):
        pytest.skip(f"this host cannot run {level}")
    assert capability_at(level)[0] == level
    result = run_at(level, "-m", "pytest", "-q", "-p", "no:cacheprovider", *KERNEL_TESTS)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert " passed" in result.stdout and " failed" not in result.stdout
