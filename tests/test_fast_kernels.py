"""The fast CUDA kernels, tested on the CPU through emulated launches and on a GPU when present.

The emulated ops (csrc/emulation/emulated_launch.cpp) run the fast kernels' per-thread code for
every thread of the very grid the CUDA launch uses, so these tests check the GPU's index math,
grid-stride loops, pack choice and pack alignment without a GPU. The GPU tests compare both
kernel choices with the reference.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import involution_cuda
from involution_cuda import reference
from involution_cuda._validation import normalize_options, to_pair

from conftest import CUDA_READY, GRADCHECK_PROBLEMS, REALISTIC_PROBLEMS, Problem, assert_close

emulated = torch.ops.involution_cuda_emulated
LAYOUTS = [torch.contiguous_format, torch.channels_last]
NO_GRID_LIMIT = 1 << 20  # the CUDA launch's block limit


def options_of(problem):
    stride, padding, dilation = normalize_options(to_pair(problem.kernel, "kernel"), problem.stride,
                                                  problem.padding, problem.dilation)
    return list(stride), list(padding), list(dilation)


def reference_results(problem, x, w, grad):
    """Forward, grad_input and grad_weight of the unfold reference (float64)."""
    x = x.detach().double().requires_grad_()
    w = w.detach().double().requires_grad_()
    out = reference.involution(x, w, **problem.options)
    grad_x, grad_w = torch.autograd.grad(out, (x, w), grad.double())
    return out.detach(), grad_x, grad_w


def emulated_results(problem, x, w, grad, max_blocks=NO_GRID_LIMIT):
    """The fast kernels' three results through emulated launches, and each launch's pack width."""
    stride, padding, dilation = options_of(problem)
    out, forward_pack = emulated.forward(x, w, stride, padding, dilation, max_blocks)
    grad_x, input_pack = emulated.grad_input(grad, w, list(x.shape[2:]), stride, padding, dilation,
                                             max_blocks)
    grad_w, weight_pack = emulated.grad_weight(grad, x, w.shape[1], list(w.shape[2:4]), stride,
                                               padding, dilation, max_blocks)
    return (out, grad_x, grad_w), (forward_pack, input_pack, weight_pack)


def random_problem_tensors(problem, dtype, layout, seed=0):
    x, w = problem.tensors(dtype=dtype, seed=seed)
    grad = torch.randn(problem.batch, problem.channels, *problem.output_size(),
                       generator=torch.Generator().manual_seed(seed + 1), dtype=torch.float64).to(dtype)
    return x.contiguous(memory_format=layout), w, grad.contiguous(memory_format=layout)


@pytest.mark.parametrize("layout", LAYOUTS, ids=["nchw", "nhwc"])
@pytest.mark.parametrize("problem", GRADCHECK_PROBLEMS, ids=str)
def test_emulated_float64_matches_reference(problem, layout):
    x, w, grad = random_problem_tensors(problem, torch.float64, layout)
    expected = reference_results(problem, x, w, grad)
    # A grid of at most 2 blocks makes every thread loop over several items.
    for max_blocks in (NO_GRID_LIMIT, 2):
        results, _ = emulated_results(problem, x, w, grad, max_blocks)
        for actual, wanted in zip(results, expected):
            torch.testing.assert_close(actual, wanted, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("layout", LAYOUTS, ids=["nchw", "nhwc"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("problem", REALISTIC_PROBLEMS, ids=str)
def test_emulated_realistic_sizes_match_reference(problem, dtype, layout):
    x, w, grad = random_problem_tensors(problem, dtype, layout)
    expected = reference_results(problem, x, w, grad)
    results, _ = emulated_results(problem, x, w, grad)
    for actual, wanted in zip(results, expected):
        assert actual.dtype == dtype
        assert_close(actual, wanted, dtype)


@pytest.mark.parametrize("dtype, wide", [(torch.float64, 2), (torch.float32, 4), (torch.float16, 8),
                                         (torch.bfloat16, 8)], ids=str)
def test_channels_last_takes_16_byte_packs_when_groups_allow(dtype, wide):
    problem = Problem(2, 32, 2, (9, 7), (3, 5), stride=(2, 1))  # 16 channels per group
    x, w, grad = random_problem_tensors(problem, dtype, torch.channels_last)
    results, packs = emulated_results(problem, x, w, grad)
    assert packs == (wide, wide, wide)
    for actual, wanted in zip(results, reference_results(problem, x, w, grad)):
        assert_close(actual, wanted, dtype)
    # Results come back in the input's layout (grad_weight always contiguous).
    assert results[0].is_contiguous(memory_format=torch.channels_last)
    assert results[1].is_contiguous(memory_format=torch.channels_last)
    assert results[2].is_contiguous()


def test_channels_last_falls_back_to_single_channels():
    # 6 channels per group: no 16-byte pack of float32 fits inside a group.
    problem = Problem(1, 12, 2, (6, 5), (3, 3))
    x, w, grad = random_problem_tensors(problem, torch.float32, torch.channels_last)
    results, packs = emulated_results(problem, x, w, grad)
    assert packs == (1, 1, 1)
    for actual, wanted in zip(results, reference_results(problem, x, w, grad)):
        assert_close(actual, wanted, torch.float32)


def test_misaligned_channels_last_storage_falls_back_to_single_channels():
    # A view that starts one element into its storage: 16-byte packs would be misaligned.
    problem = Problem(1, 16, 1, (5, 6), (3, 3))
    x, w, grad = random_problem_tensors(problem, torch.float32, torch.channels_last)
    storage = torch.empty(x.numel() + 1, dtype=torch.float32)
    shifted = storage[1:].as_strided(x.shape, x.stride())
    shifted.copy_(x)
    assert shifted.is_contiguous(memory_format=torch.channels_last) and shifted.data_ptr() % 16 != 0
    results, packs = emulated_results(problem, shifted, w, grad)
    assert packs[0] == 1 and packs[2] == 1
    for actual, wanted in zip(results, reference_results(problem, x, w, grad)):
        assert_close(actual, wanted, torch.float32)


@pytest.mark.parametrize("layout", LAYOUTS, ids=["nchw", "nhwc"])
@pytest.mark.parametrize("problem", [
    Problem(1, 40, 1, (6, 7), (3, 3)),              # 40 channels per group: chunks of 16, 16, 8
    Problem(2, 8, 2, (5, 13), (3, 11), padding=(1, 4)),  # 11 taps per row: tap chunks of 8 and 3
    Problem(1, 4, 4, (9, 9), (1, 9), dilation=(1, 2)),
], ids=str)
def test_emulated_chunk_remainders(problem, layout):
    x, w, grad = random_problem_tensors(problem, torch.float64, layout)
    results, _ = emulated_results(problem, x, w, grad, max_blocks=3)
    for actual, wanted in zip(results, reference_results(problem, x, w, grad)):
        torch.testing.assert_close(actual, wanted, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("layout", LAYOUTS, ids=["nchw", "nhwc"])
def test_emulated_padding_taps_propagate_nan_like_the_reference(layout):
    problem = Problem(1, 16, 1, (4, 5), (3, 3))
    x, w, grad = random_problem_tensors(problem, torch.float32, layout)
    w = w.clone()
    w[0, 0, 0, 0, 0, 0] = float("nan")  # the top-left tap of pixel (0, 0) reads the padding
    results, _ = emulated_results(problem, x, w, grad)
    expected = reference_results(problem, x, w, grad)
    assert torch.isnan(results[0][0, :, 0, 0]).all()
    for actual, wanted in zip(results, expected):
        torch.testing.assert_close(actual.double(), wanted, rtol=1e-4, atol=1e-4, equal_nan=True)


def test_emulated_ops_validate_their_arguments():
    problem = Problem(1, 4, 2, (5, 5), (3, 3))
    x, w, _ = random_problem_tensors(problem, torch.float32, torch.contiguous_format)
    stride, padding, dilation = options_of(problem)
    with pytest.raises(ValueError, match="max_blocks"):
        emulated.forward(x, w, stride, padding, dilation, 0)
    with pytest.raises(ValueError, match="weight"):
        emulated.forward(x, w[..., :-1], stride, padding, dilation, 1)


ROOT = Path(__file__).resolve().parent.parent
NVCC = shutil.which("nvcc", path=os.path.join(os.environ.get("CUDA_HOME", "/usr/local/cuda"), "bin")) \
    or shutil.which("nvcc")


@pytest.mark.skipif(NVCC is None, reason="needs nvcc (the CUDA toolkit), no GPU")
def test_cuda_half_types_on_the_host(tmp_path):
    """The GPU's own half types (__half, __nv_bfloat16) through the fast kernels' pair
    conversions and channels_last functors, compiled by nvcc and run on the host."""
    binary = tmp_path / "half_pack_check"
    # A separate program: it takes no preloaded runtime of a sanitized run of the suite.
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    subprocess.run([NVCC, "-std=c++17", "-O2", "-D__CUDA_NO_HALF_OPERATORS__",
                    "-D__CUDA_NO_HALF_CONVERSIONS__", "-D__CUDA_NO_BFLOAT16_CONVERSIONS__",
                    "-D__CUDA_NO_HALF2_OPERATORS__", "-Werror", "all-warnings", f"-I{ROOT / 'csrc'}",
                    str(ROOT / "tests" / "half_pack_check.cu"), "-o", str(binary)], check=True, env=env)
    result = subprocess.run([str(binary)], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "all half checks passed" in result.stdout


# ---- the switch -------------------------------------------------------------------------------

def test_kernel_choice_switch():
    start = involution_cuda.get_cuda_kernels()  # the suite may run with either as the default
    other = "fast" if start == "baseline" else "baseline"
    with involution_cuda.cuda_kernels(other):
        assert involution_cuda.get_cuda_kernels() == other
    assert involution_cuda.get_cuda_kernels() == start
    assert involution_cuda.set_cuda_kernels(other) == start
    assert involution_cuda.set_cuda_kernels(start) == other
    with pytest.raises(ValueError, match="kernels must be one of"):
        involution_cuda.set_cuda_kernels("quick")
    assert involution_cuda.get_cuda_kernels() == start


def test_kernel_choice_from_environment():
    code = "import involution_cuda; print(involution_cuda.get_cuda_kernels())"
    for value, expected in ((None, "baseline"), ("fast", "fast"), ("baseline", "baseline")):
        env = {k: v for k, v in os.environ.items() if k != "INVOLUTION_CUDA_KERNELS"}
        if value is not None:
            env["INVOLUTION_CUDA_KERNELS"] = value
        result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == expected
    env = dict(os.environ, INVOLUTION_CUDA_KERNELS="quick")
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert result.returncode != 0 and "INVOLUTION_CUDA_KERNELS must be one of" in result.stderr


@pytest.mark.parametrize("kernels", ["baseline", "fast"])
def test_cpu_results_do_not_depend_on_the_cuda_choice(kernels):
    problem = REALISTIC_PROBLEMS[1]
    x, w = problem.tensors(dtype=torch.float32)
    with involution_cuda.cuda_kernels(kernels):
        out = involution_cuda.involution(x, w, **problem.options)
    assert_close(out, reference.involution(x.double(), w.double(), **problem.options), torch.float32)


# ---- on a GPU: both kernel choices against the reference ----------------------------------------

needs_gpu = pytest.mark.skipif(not CUDA_READY, reason="needs a GPU and CUDA kernels")


@needs_gpu
@pytest.mark.parametrize("kernels", ["baseline", "fast"])
@pytest.mark.parametrize("layout", LAYOUTS, ids=["nchw", "nhwc"])
@pytest.mark.parametrize("problem", GRADCHECK_PROBLEMS, ids=str)
def test_cuda_gradcheck_both_kernels(problem, layout, kernels):
    x, w = problem.tensors(dtype=torch.float64, device="cuda", requires_grad=True)
    x = x.detach().contiguous(memory_format=layout).requires_grad_()
    with involution_cuda.cuda_kernels(kernels):
        assert torch.autograd.gradcheck(
            lambda a, b: involution_cuda.involution(a, b, **problem.options), (x, w))


@needs_gpu
@pytest.mark.parametrize("kernels", ["baseline", "fast"])
@pytest.mark.parametrize("layout", LAYOUTS, ids=["nchw", "nhwc"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("problem", REALISTIC_PROBLEMS, ids=str)
def test_cuda_both_kernels_match_reference(problem, dtype, layout, kernels):
    x, w, grad = random_problem_tensors(problem, dtype, layout)
    expected = reference_results(problem, x, w, grad)
    x, w, grad = (t.cuda() for t in (x, w, grad))
    stride, padding, dilation = options_of(problem)
    ops = torch.ops.involution_cuda
    with involution_cuda.cuda_kernels(kernels):
        out = ops.involution(x, w, stride, padding, dilation)
        grad_x = ops.involution_grad_input(grad, w, list(x.shape[2:]), stride, padding, dilation)
        grad_w = ops.involution_grad_weight(grad, x, w.shape[1], list(w.shape[2:4]), stride, padding,
                                            dilation)
    torch.cuda.synchronize()
    assert out.is_contiguous(memory_format=layout) and grad_x.is_contiguous(memory_format=layout)
    for actual, wanted in zip((out, grad_x, grad_w), expected):
        assert_close(actual, wanted, dtype)


@needs_gpu
@pytest.mark.parametrize("layout", LAYOUTS, ids=["nchw", "nhwc"])
def test_cuda_fast_kernels_agree_with_their_emulation(layout):
    # The GPU runs the same per-thread code as the emulation: float64 results agree to rounding.
    problem = REALISTIC_PROBLEMS[0]
    x, w, grad = random_problem_tensors(problem, torch.float64, layout)
    emulated_out = emulated_results(problem, x, w, grad)[0]
    stride, padding, dilation = options_of(problem)
    with involution_cuda.cuda_kernels("fast"):
        out = torch.ops.involution_cuda.involution(x.cuda(), w.cuda(), stride, padding, dilation)
    torch.testing.assert_close(out.cpu(), emulated_out[0], rtol=1e-13, atol=1e-13)
