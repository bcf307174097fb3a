"""NaN/Inf propagation, extreme shapes, 64-bit indexing, memory over many calls, threads."""
import concurrent.futures
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

import involution_cuda
from conftest import DEVICES, Problem
from involution_cuda import reference

ROOT = Path(__file__).resolve().parents[1]


def nan_pattern(tensor):
    return torch.isnan(tensor), torch.isposinf(tensor), torch.isneginf(tensor)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("where", ["input", "weight", "grad_output"])
def test_nan_and_inf_propagate_as_in_reference(where, device):
    """Non-finite values anywhere, padding taps included, give the reference's NaN/Inf pattern."""
    problem = Problem(2, 6, 3, (7, 9), (3, 5), stride=(1, 2), padding=(2, 1), dilation=(2, 1))
    x, w = problem.tensors()
    grad = torch.randn(2, 6, *problem.output_size(), dtype=torch.float64)
    target = {"input": x, "weight": w, "grad_output": grad}[where]
    flat = target.view(-1)
    flat[:: max(1, flat.numel() // 7)] = float("nan")
    flat[3 :: max(1, flat.numel() // 5)] = float("inf")
    flat[5 :: max(1, flat.numel() // 6)] = -float("inf")
    results = []
    for function, dev in ((involution_cuda.involution, device), (reference.involution, "cpu")):
        xd, wd = x.to(dev).requires_grad_(), w.to(dev).requires_grad_()
        out = function(xd, wd, **problem.options)
        results.append((out, *torch.autograd.grad(out, (xd, wd), grad.to(dev))))
    for actual, expected in zip(*results):
        for mask, wanted in zip(nan_pattern(actual.cpu()), nan_pattern(expected)):
            assert torch.equal(mask, wanted)
        finite = torch.isfinite(expected)
        torch.testing.assert_close(actual.cpu()[finite], expected[finite])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(
    "problem",
    [
        Problem(2, 3, 3, (5, 4), (1, 1)),                       # kernel size 1
        Problem(2, 4, 2, (3, 5), (3, 5), padding=0),            # output 1x1
        Problem(1, 6, 6, (6, 7), (3, 3)),                       # one channel per group
        Problem(1, 96, 1, (5, 6), (3, 3)),                      # one group of 96 channels
        Problem(1, 2, 1, (1, 1), (3, 3), padding=1),            # 1x1 input, all but one tap padding
        Problem(1, 2, 2, (2, 40), (1, 9), stride=(1, 4)),       # long thin rows, big stride
    ],
    ids=str,
)
def test_extreme_shapes(problem, device):
    x, w = problem.tensors(device=device, requires_grad=True)
    out = involution_cuda.involution(x, w, **problem.options)
    grad = torch.randn_like(out)
    x_ref, w_ref = x.detach().cpu().requires_grad_(), w.detach().cpu().requires_grad_()
    expected = reference.involution(x_ref, w_ref, **problem.options)
    torch.testing.assert_close(out.cpu(), expected)
    torch.testing.assert_close([g.cpu() for g in torch.autograd.grad(out, (x, w), grad)],
                               list(torch.autograd.grad(expected, (x_ref, w_ref), grad.cpu())))


@pytest.mark.skipif(shutil.which("g++") is None, reason="needs a C++ compiler")
def test_index_math_is_64_bit(tmp_path):
    """The shared index functions (the very header the kernels include), driven at offsets past
    2**31 by a small C++ program: no 32-bit overflow anywhere."""
    binary = tmp_path / "index_math_check"
    subprocess.run(["g++", "-std=c++17", "-O2", "-Wall", "-Werror", f"-I{ROOT / 'csrc'}",
                    str(ROOT / "tests" / "index_math_check.cpp"), "-o", str(binary)], check=True)
    result = subprocess.run([str(binary)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "all index checks passed" in result.stdout


@pytest.mark.skipif(shutil.which("g++") is None, reason="needs a C++ compiler")
def test_bfloat16_rounding_matches_c10_for_every_float(tmp_path):
    """The kernels' vector rounding to bfloat16 (the very header they include), at 16 bytes,
    against c10's rounding for all 2**32 float bit patterns, NaNs, infinities and ties included."""
    from torch.utils.cpp_extension import include_paths
    binary = tmp_path / "bfloat16_rounding_check"
    subprocess.run(["g++", "-std=c++17", "-O2", "-Wall", "-Werror", f"-I{ROOT / 'csrc'}",
                    *(f"-I{path}" for path in include_paths()),
                    str(ROOT / "tests" / "bfloat16_rounding_check.cpp"), "-o", str(binary)],
                   check=True)
    result = subprocess.run([str(binary)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "all bfloat16 roundings match" in result.stdout


@pytest.mark.slow
def test_tensor_past_2_31_elements():
    """A real run whose input has more than 2**31 elements (about 11 GB of memory in all)."""
    height = width = 32769  # 2 * 32769**2 > 2**31
    x = torch.empty(1, 2, height, width, dtype=torch.float16).uniform_(-1, 1)
    w = torch.empty(1, 1, 1, 1, height, width, dtype=torch.float16).uniform_(-1, 1)
    out = involution_cuda.involution(x, w, padding=0)
    for c, i, j in [(0, 0, 0), (1, height - 1, width - 1), (1, height // 2, 12345), (0, 32768, 1)]:
        assert out[0, c, i, j] == (x[0, c, i, j].float() * w[0, 0, 0, 0, i, j].float()).half()


def resident_mb():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:")) / 1024


def test_memory_stays_flat_over_many_calls():
    problem = Problem(2, 16, 4, (14, 14), (7, 7))
    x, w = problem.tensors(dtype=torch.float32, requires_grad=True)

    def calls(count):
        for _ in range(count):
            out = involution_cuda.involution(x, w)
            torch.autograd.grad(out, (x, w), torch.ones_like(out))

    calls(100)
    before = resident_mb()
    calls(1000)
    assert resident_mb() - before < 10  # each call allocates ~1 MB: a leak would show


@pytest.mark.parametrize("device", DEVICES)
def test_concurrent_calls_from_threads(device):
    problems = [Problem(2, 8 * (k + 1), 2, (9 + k, 11), (3, 5), stride=(1 + k % 2, 1)) for k in range(6)]
    inputs = [p.tensors(device=device, seed=k) for k, p in enumerate(problems)]

    def run(k):
        x, w = inputs[k]
        return involution_cuda.involution(x, w, **problems[k].options)

    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        outputs = list(pool.map(run, list(range(6)) * 4))
    for k, out in enumerate(outputs):
        x, w = inputs[k % 6]
        torch.testing.assert_close(out.cpu(), reference.involution(x.cpu(), w.cpu(), **problems[k % 6].options))
