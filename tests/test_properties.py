"""Property-based tests: random problems (sizes, groups, kernels, options, dtypes), including
kernels that barely fit, against the float64 reference, forward and both gradients.

Profiles: "dev" (default, 100 examples) and "ci" (500, chosen when CI is set or with
HYPOTHESIS_PROFILE=ci). A failure prints the falsifying example and a reproduction blob.
"""
import os

import pytest
import torch

pytest.importorskip("hypothesis")  # machines without it (a bare GPU host) skip this module
from hypothesis import HealthCheck, example, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import involution_cuda  # noqa: E402
import emulation  # noqa: E402
from conftest import WEIGHT_LAYOUTS, assert_close, needs_gpu, weight_in_layout  # noqa: E402
from involution_cuda import reference  # noqa: E402

settings.register_profile("dev", max_examples=100, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("ci", settings.get_profile("dev"), max_examples=500)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))

DTYPES = [torch.float64, torch.float32, torch.bfloat16, torch.float16]


# Batch 1 or 2, and 0 (empty results only) for one value in twenty (a few percent of examples,
# where st.integers(0, 2) gave a third); it shrinks to 1. The explicit example BATCH_ZERO keeps
# batch 0 in every run.
BATCHES = st.integers(0, 19).map(lambda k: 0 if k == 19 else 1 + k % 2)


@st.composite
def problems(draw):
    """A valid involution problem; `fit` draws input sizes from the smallest that the dilated
    kernel fits in upward, so kernels that barely fit are frequent."""
    groups = draw(st.integers(1, 4))
    channels = groups * draw(st.integers(1, 5))
    kernel = (draw(st.integers(1, 5)), draw(st.integers(1, 5)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = (draw(st.integers(0, 3)), draw(st.integers(0, 3)))
    size = tuple(max(1, d * (k - 1) + 1 - 2 * p) + draw(st.integers(0, 6))
                 for k, d, p in zip(kernel, dilation, padding))
    out = tuple(involution_cuda.output_size(*axis) for axis in zip(size, kernel, stride, padding, dilation))
    return dict(batch=draw(BATCHES), channels=channels, groups=groups, size=size,
                kernel=kernel, out=out, options=dict(stride=stride, padding=padding, dilation=dilation))


# An empty batch with strides that differ per dimension: an explicit example of every property.
BATCH_ZERO = dict(batch=0, channels=4, groups=2, size=(7, 6), kernel=(3, 5), out=(4, 6),
                  options=dict(stride=(2, 1), padding=(1, 2), dilation=(1, 1)))


def run_against_reference(problem, dtype, device, seed, kernels="auto", layout=torch.contiguous_format):
    generator = torch.Generator().manual_seed(seed)
    x64 = torch.randn(problem["batch"], problem["channels"], *problem["size"], generator=generator, dtype=torch.float64)
    x64 = x64.contiguous(memory_format=layout)
    w64 = torch.randn(problem["batch"], problem["groups"], *problem["kernel"], *problem["out"], generator=generator,
                      dtype=torch.float64)
    g64 = torch.randn(problem["batch"], problem["channels"], *problem["out"], generator=generator, dtype=torch.float64)
    x = x64.to(device, dtype).requires_grad_()
    w = w64.to(device, dtype).requires_grad_()
    out = involution_cuda.involution(x, w, **problem["options"], kernels=kernels)
    grads = torch.autograd.grad(out, (x, w), g64.to(device, dtype), allow_unused=True)
    # the reference sees the same (rounded) values, in float64
    x_ref, w_ref = x.detach().double().cpu().requires_grad_(), w.detach().double().cpu().requires_grad_()
    expected = reference.involution(x_ref, w_ref, **problem["options"])
    expected_grads = torch.autograd.grad(expected, (x_ref, w_ref), g64.to(dtype).double(), allow_unused=True)
    assert out.shape == expected.shape
    for actual, wanted in zip((out, *grads), (expected, *expected_grads)):
        assert actual.shape == wanted.shape  # batch 0 included: empty results of the right shape
        assert_close(actual, wanted, dtype)


@given(problem=problems(), dtype=st.sampled_from(DTYPES), seed=st.integers(0, 2**31 - 1),
       per_group=st.sampled_from([None, 16, 32]), channels_last=st.booleans())
@example(problem=BATCH_ZERO, dtype=torch.float32, seed=0, per_group=None, channels_last=False)
def test_random_problems_cpu(problem, dtype, seed, per_group, channels_last):
    """per_group 16 or 32: the float forward's 16-channel vectors at AVX-512."""
    if per_group is not None:
        problem = dict(problem, channels=problem["groups"] * per_group)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    run_against_reference(problem, dtype, "cpu", seed, layout=layout)


@needs_gpu
@given(problem=problems(), dtype=st.sampled_from(DTYPES), seed=st.integers(0, 2**31 - 1),
       kernels=st.sampled_from(["baseline", "fast"]))
@example(problem=BATCH_ZERO, dtype=torch.float32, seed=0, kernels="fast")
def test_random_problems_cuda(problem, dtype, seed, kernels):
    run_against_reference(problem, dtype, "cuda", seed, kernels)


@given(problem=problems(), dtype=st.sampled_from(DTYPES), seed=st.integers(0, 2**31 - 1),
       channels_last=st.booleans(), per_group=st.sampled_from([None, 8, 16]),
       max_blocks=st.sampled_from([1, 3, 1 << 20]), kernels=st.sampled_from(["baseline", "fast"]),
       weight_layout=st.sampled_from(WEIGHT_LAYOUTS))
@example(problem=BATCH_ZERO, dtype=torch.float32, seed=0, channels_last=True, per_group=8,
         max_blocks=1, kernels="fast", weight_layout="conv_nhwc_view")
def test_random_problems_emulated_cuda_kernels(problem, dtype, seed, channels_last, per_group,
                                               max_blocks, kernels, weight_layout):
    """The CUDA kernels' per-thread code, run on the CPU for every thread of the CUDA grid
    (shrunk to max_blocks so threads loop); per_group 8 / 16 makes 16-byte packs possible. The
    weight comes contiguous, as a channels_last layer makes it, or strided: read in place."""
    if per_group is not None:
        problem = dict(problem, channels=problem["groups"] * per_group)
    generator = torch.Generator().manual_seed(seed)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.randn(problem["batch"], problem["channels"], *problem["size"], generator=generator,
                    dtype=torch.float64).to(dtype).contiguous(memory_format=layout)
    w = weight_in_layout(torch.randn(problem["batch"], problem["groups"], *problem["kernel"],
                                     *problem["out"], generator=generator,
                                     dtype=torch.float64).to(dtype), weight_layout)
    g = torch.randn(problem["batch"], problem["channels"], *problem["out"], generator=generator,
                    dtype=torch.float64).to(dtype).contiguous(memory_format=layout)
    options = problem["options"]
    stride, padding, dilation = (list(options[k]) for k in ("stride", "padding", "dilation"))
    emulated = emulation.ops()
    forward = emulation.Launch(*emulated.forward(x, w, stride, padding, dilation, kernels,
                                                 max_blocks))
    backward = emulation.Launch(*emulated.grad_input(g, w, list(problem["size"]), stride, padding,
                                                     dilation, kernels, max_blocks))
    grad_w = emulated.grad_weight(g, x, problem["groups"], list(problem["kernel"]), stride,
                                  padding, dilation, kernels, max_blocks)[0]
    assert forward.second_in_place and backward.second_in_place  # the weight is never copied
    out, grad_x = forward.result, backward.result
    x_ref, w_ref = x.double().requires_grad_(), w.double().requires_grad_()
    expected = reference.involution(x_ref, w_ref, **options)
    expected_grads = torch.autograd.grad(expected, (x_ref, w_ref), g.double())
    for actual, wanted in zip((out, grad_x, grad_w), (expected, *expected_grads)):
        assert actual.shape == wanted.shape
        assert_close(actual, wanted, dtype)
