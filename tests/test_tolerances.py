"""The half tolerances (conftest.TOLERANCES) tell float32 accumulation from half accumulation:
the kernels pass them, the same sums rounded to half at every step fail them."""
import pytest
import torch
import torch.nn.functional as F

import involution_cuda
from conftest import GRADCHECK_PROBLEMS, REALISTIC_PROBLEMS, assert_close
from involution_cuda import reference

HALF_TYPES = [torch.float16, torch.bfloat16]


def half_accumulating(problem, x, w, grad):
    """Forward, grad_input and grad_weight with every product and every partial sum rounded to
    x's dtype (each step computed exactly in float64, then rounded): a kernel accumulating in
    half. Written with unfold and fold, independently of the reference and the kernels."""
    def rounded(t):
        return t.to(x.dtype).double()

    (kh, kw), stride, padding, dilation = problem.pairs()
    batch, channels, height, width = x.shape
    groups, taps, (out_h, out_w) = w.shape[1], kh * kw, problem.output_size()
    pixels = out_h * out_w
    patches = F.unfold(x.double(), (kh, kw), dilation, padding, stride)
    patches = patches.view(batch, groups, channels // groups, taps, pixels)
    w = w.double().reshape(batch, groups, 1, taps, pixels)
    grad = grad.double().reshape(batch, groups, channels // groups, 1, pixels)

    out = 0  # over taps
    for tap in range(taps):
        out = rounded(out + rounded(w[:, :, :, tap] * patches[:, :, :, tap]))
    grad_w = 0  # over the channels of a group
    for channel in range(channels // groups):
        grad_w = rounded(grad_w + rounded(grad[:, :, channel] * patches[:, :, channel]))
    grad_x = 0  # over taps: one tap's columns fold onto distinct input elements, no sum inside
    columns = rounded(w * grad)
    for tap in range(taps):
        one_tap = torch.zeros_like(columns)
        one_tap[:, :, :, tap] = columns[:, :, :, tap]
        folded = F.fold(one_tap.view(batch, -1, pixels), (height, width), (kh, kw), dilation,
                        padding, stride)
        grad_x = rounded(grad_x + folded)
    return (out.view(batch, channels, out_h, out_w), grad_x,
            grad_w.view(batch, groups, kh, kw, out_h, out_w))


def problem_tensors(problem, dtype):
    x, w = problem.tensors(dtype=dtype)
    grad = torch.randn(problem.batch, problem.channels, *problem.output_size(),
                       generator=torch.Generator().manual_seed(1), dtype=torch.float64).to(dtype)
    return x, w, grad


def reference_results(problem, x, w, grad):
    x, w = (t.detach().double().requires_grad_() for t in (x, w))
    out = reference.involution(x, w, **problem.options)
    return (out, *torch.autograd.grad(out, (x, w), grad.double()))


def kernel_results(problem, x, w, grad):
    x, w = (t.detach().requires_grad_() for t in (x, w))
    out = involution_cuda.involution(x, w, **problem.options)
    return (out, *torch.autograd.grad(out, (x, w), grad))


def passes(actual, expected, dtype):
    try:
        assert_close(actual, expected, dtype)
    except AssertionError:
        return False
    return True


@pytest.mark.parametrize("problem", GRADCHECK_PROBLEMS[:6] + REALISTIC_PROBLEMS[-2:], ids=str)
def test_half_accumulating_model_is_exact_without_rounding(problem):
    x, w, grad = problem_tensors(problem, torch.float64)
    for actual, wanted in zip(half_accumulating(problem, x, w, grad),
                              reference_results(problem, x, w, grad)):
        torch.testing.assert_close(actual, wanted, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", HALF_TYPES, ids=str)
@pytest.mark.parametrize("problem", GRADCHECK_PROBLEMS + REALISTIC_PROBLEMS, ids=str)
def test_kernels_pass_the_half_tolerances(problem, dtype):
    x, w, grad = problem_tensors(problem, dtype)
    for actual, wanted in zip(kernel_results(problem, x, w, grad),
                              reference_results(problem, x, w, grad)):
        assert actual.dtype == dtype
        assert_close(actual, wanted, dtype)


@pytest.mark.parametrize("dtype", HALF_TYPES, ids=str)
@pytest.mark.parametrize("problem", REALISTIC_PROBLEMS, ids=str)
def test_half_accumulation_fails_the_half_tolerances(problem, dtype):
    """Forward and grad_input (sums over taps) fail on every realistic problem, grad_weight (a
    sum over the channels of a group) wherever a group has more than one channel."""
    x, w, grad = problem_tensors(problem, dtype)
    results = half_accumulating(problem, x, w, grad)
    verdicts = [passes(a, e, dtype) for a, e in zip(results, reference_results(problem, x, w, grad))]
    summed_over_channels = problem.channels > problem.groups
    assert verdicts[:2] == [False, False]
    assert verdicts[2] is not summed_over_channels

