"""The compiled op against the reference: values, gradients, registration, layouts."""
import pytest
import torch

import involution_cuda
from conftest import DEVICES, GRADCHECK_PROBLEMS, REALISTIC_PROBLEMS, Problem, assert_close, needs_gpu
from involution_cuda import reference
from involution_cuda.ops import ops


def reference_with_grads(problem, x, w, grad_out):
    """Output and gradients of the float64 reference on CPU."""
    x64, w64 = (t.detach().double().cpu().requires_grad_() for t in (x, w))
    out = reference.involution(x64, w64, **problem.options)
    grad_x, grad_w = torch.autograd.grad(out, (x64, w64), grad_out.double().cpu())
    return out, grad_x, grad_w


def check_against_reference(problem, dtype, device):
    x, w = problem.tensors(dtype=dtype, device=device, requires_grad=True, seed=1)
    out = involution_cuda.involution(x, w, **problem.options)
    grad_out = torch.randn_like(out)
    grad_x, grad_w = torch.autograd.grad(out, (x, w), grad_out)
    assert out.dtype == dtype and grad_x.dtype == dtype and grad_w.dtype == dtype
    expected = reference_with_grads(problem, x, w, grad_out)
    for actual, wanted in zip((out, grad_x, grad_w), expected):
        assert_close(actual, wanted, dtype)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("problem", GRADCHECK_PROBLEMS, ids=str)
def test_float64_matches_reference(problem, device):
    check_against_reference(problem, torch.float64, device)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("problem", REALISTIC_PROBLEMS, ids=str)
def test_realistic_sizes_match_reference(problem, dtype, device):
    check_against_reference(problem, dtype, device)


# The CPU forward's blocks of up to 8 output rows and its two-row tiles (kernel row step equal
# to the stride): output heights that leave a single row or a short last block, channel counts
# per group that leave a partial channel chunk (4 or 8 per chunk), row steps 1 and 2, widths
# with a partial last tile.
ROW_BLOCK_PROBLEMS = [
    Problem(1, 5, 1, (1, 9), (3, 3)),
    Problem(2, 6, 2, (9, 11), (5, 3)),
    Problem(1, 9, 1, (17, 13), (7, 7)),
    Problem(2, 12, 3, (19, 20), (3, 5), stride=2, dilation=2),
    Problem(1, 16, 2, (23, 7), (3, 3), stride=(2, 1), dilation=(2, 3)),
    Problem(1, 8, 2, (10, 10), (3, 3), stride=(2, 1), dilation=1),
]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16], ids=str)
@pytest.mark.parametrize("problem", ROW_BLOCK_PROBLEMS, ids=str)
def test_row_blocks_match_reference(problem, dtype, device):
    check_against_reference(problem, dtype, device)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("size", [(0, 5), (4, 0)], ids=["no_rows", "no_columns"])
def test_input_with_no_rows_or_columns_and_padding(size, device):
    """An input of zero height or width still has outputs when the padding covers the kernel:
    every tap reads the zero padding, so the output and grad_weight are zero (the reference's
    unfold refuses empty inputs)."""
    problem = Problem(1, 4, 2, size, (3, 3), padding=2)
    x, w = problem.tensors(device=device, requires_grad=True)
    out = involution_cuda.involution(x, w, **problem.options)
    assert out.shape == (1, 4, *problem.output_size()) and out.numel() > 0
    grad_x, grad_w = torch.autograd.grad(out, (x, w), torch.randn_like(out))
    assert torch.equal(out, torch.zeros_like(out)) and torch.equal(grad_w, torch.zeros_like(w))
    assert grad_x.shape == x.shape


@pytest.mark.parametrize("device", DEVICES)
def test_infinite_weight_on_padding_gives_nan_as_reference(device):
    """A tap in the zero padding multiplies its weight by 0: an Inf weight there gives NaN."""
    x = torch.randn(1, 4, 9, 9, device=device)
    w = torch.randn(1, 1, 3, 3, 9, 9, device=device)
    w[0, 0, 0, 1, 0, 4] = float("inf")  # kernel row 0 of output row 0 reads the padding
    out = involution_cuda.involution(x, w, padding=1)
    expected = reference.involution(x.double(), w.double(), padding=1)
    assert torch.equal(out.isnan(), expected.isnan()) and out.isnan().sum() == 4
    finite = ~expected.isnan()
    assert_close(out[finite], expected[finite], torch.float32)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("problem", GRADCHECK_PROBLEMS, ids=str)
def test_gradcheck(problem, device):
    x, w = problem.tensors(device=device, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda x, w: involution_cuda.involution(x, w, **problem.options), (x, w)
    )


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("problem", GRADCHECK_PROBLEMS[:4], ids=str)
def test_gradgradcheck(problem, device):
    x, w = problem.tensors(device=device, requires_grad=True)
    assert torch.autograd.gradgradcheck(
        lambda x, w: involution_cuda.involution(x, w, **problem.options), (x, w)
    )


def raw_op_samples(problem, device, layout=torch.contiguous_format, requires_grad=True):
    """Arguments of the three raw ops for one problem (int lists, as the schemas take), the
    image-shaped tensors in `layout`."""
    x, w = problem.tensors(device=device)
    x = x.contiguous(memory_format=layout).requires_grad_(requires_grad)
    w.requires_grad_(requires_grad)
    _, stride, padding, dilation = problem.pairs()
    grad_out = torch.randn(problem.batch, problem.channels, *problem.output_size(),
                           dtype=torch.float64, device=device)
    grad_out = grad_out.contiguous(memory_format=layout).requires_grad_(requires_grad)
    return [
        (ops.involution, (x, w, stride, padding, dilation)),
        (ops.involution_grad_input, (grad_out, w, list(problem.size), stride, padding, dilation)),
        (ops.involution_grad_weight,
         (grad_out, x, problem.groups, list(problem.kernel), stride, padding, dilation)),
    ]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("requires_grad", [True, False], ids=["grad", "no_grad"])
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last], ids=["nchw", "nhwc"])
@pytest.mark.parametrize("problem", GRADCHECK_PROBLEMS[:3], ids=str)
def test_opcheck(problem, layout, requires_grad, device):
    for op, args in raw_op_samples(problem, device, layout, requires_grad):
        if layout == torch.channels_last:  # the sample really is channels_last (C > 1, H, W > 1)
            assert not args[0].is_contiguous() and args[0].is_contiguous(memory_format=layout)
        torch.library.opcheck(op, args)


@pytest.mark.parametrize("device", DEVICES)
def test_empty_batch(device):
    x, w = Problem(0, 4, 2, (5, 6), (3, 3)).tensors(device=device, requires_grad=True)
    out = involution_cuda.involution(x, w)
    assert out.shape == (0, 4, 5, 6)
    out.sum().backward()
    assert x.grad.shape == x.shape and w.grad.shape == w.shape


@pytest.mark.parametrize("device", DEVICES)
def test_non_contiguous_inputs(device):
    problem = Problem(2, 6, 3, (7, 5), (3, 5), stride=(2, 1))
    x, w = problem.tensors(device=device)
    # Same values, strided memory: a transposed copy transposed back, and a sliced weight.
    x_strided = x.transpose(2, 3).contiguous().transpose(2, 3)
    w_strided = torch.cat([w, w], dim=-1)[..., : w.shape[-1]]
    assert not x_strided.is_contiguous() and not w_strided.is_contiguous()
    torch.testing.assert_close(
        involution_cuda.involution(x_strided, w_strided, **problem.options),
        reference.involution(x, w, **problem.options),
    )


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("width", [5, 13, 20], ids=lambda w: f"W{w}")
def test_weight_rows_read_past_their_end_match_reference(width, dtype, device):
    """The CPU forward reads a row's last, partial weight tile in place, past the row's end:
    here that memory is NaN (the weight is a slice of a wider tensor), and no NaN may reach the
    output. Widths with a partial last tile at every ISA level (4, 8 or 16 lanes)."""
    problem = Problem(3, 8, 2, (6, width), (3, 3))
    x, w = problem.tensors(dtype=dtype, device=device)
    wide = torch.full((*w.shape[:-1], width + 7), float("nan"), dtype=dtype, device=device)
    wide[..., :width] = w
    sliced = wide[..., :width]
    assert sliced.stride(-1) == 1 and not sliced.is_contiguous()
    out = involution_cuda.involution(x, sliced)
    assert not out.isnan().any()
    assert_close(out, reference.involution(x.double(), w.double()), dtype)


@pytest.mark.parametrize("device", DEVICES)
def test_backward_is_deterministic(device):
    problem = REALISTIC_PROBLEMS[1]
    x, w = problem.tensors(dtype=torch.float32, device=device, requires_grad=True)
    out = involution_cuda.involution(x, w, **problem.options)
    grad_out = torch.randn_like(out)
    first = torch.autograd.grad(out, (x, w), grad_out, retain_graph=True)
    second = torch.autograd.grad(out, (x, w), grad_out)
    assert all(torch.equal(a, b) for a, b in zip(first, second))


@pytest.mark.parametrize("device", DEVICES)
def test_span_conv_output_as_weight(device):
    """The module's usage: a (B, G*KH*KW, Ho, Wo) conv output viewed as the weight."""
    x = torch.randn(2, 8, 9, 11, dtype=torch.float64, device=device)
    span = torch.randn(2, 2 * 3 * 5, 9, 11, dtype=torch.float64, device=device)
    weight = span.view(2, 2, 3, 5, 9, 11)
    torch.testing.assert_close(involution_cuda.involution(x, weight), reference.involution(x, weight))


def test_torch_compile_fullgraph():
    problem = Problem(2, 8, 2, (9, 7), (3, 5), stride=(1, 2), dilation=(2, 1))
    x, w = problem.tensors(dtype=torch.float32, requires_grad=True)

    def f(x, w):
        return involution_cuda.involution(x, w, **problem.options).square().sum()

    compiled = torch.compile(f, fullgraph=True, backend="aot_eager")
    torch.testing.assert_close(compiled(x, w), f(x, w))
    torch.testing.assert_close(torch.autograd.grad(compiled(x, w), (x, w)),
                               torch.autograd.grad(f(x, w), (x, w)))


@needs_gpu
@pytest.mark.parametrize("kernels", ["baseline", "fast"])
def test_cuda_kernels_run_on_the_current_stream(kernels):
    """The inputs are written on a side stream behind a long GPU sleep and the ops are called on
    that stream with no synchronisation: a kernel queued on any other stream would run at once
    and read the inputs' NaN poison instead of their values."""
    problem = REALISTIC_PROBLEMS[0]
    x_values, w_values = problem.tensors(dtype=torch.float32, device="cuda")
    grad_values = torch.randn(problem.batch, problem.channels, *problem.output_size(), device="cuda")
    x, w, grad = (torch.full_like(t, float("nan")) for t in (x_values, w_values, grad_values))
    _, stride, padding, dilation = problem.pairs()
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())  # the poison is written before the sleep
    with torch.cuda.stream(stream):
        torch.cuda._sleep(200_000_000)  # about 0.1 s of this stream's time
        for target, values in ((x, x_values), (w, w_values), (grad, grad_values)):
            target.copy_(values)
        results = (ops.involution(x, w, stride, padding, dilation, kernels),
                   ops.involution_grad_input(grad, w, list(problem.size), stride, padding, dilation,
                                             kernels),
                   ops.involution_grad_weight(grad, x, problem.groups, list(problem.kernel), stride,
                                              padding, dilation, kernels))
    stream.synchronize()
    x_ref, w_ref = x_values.double().requires_grad_(), w_values.double().requires_grad_()
    expected = reference.involution(x_ref, w_ref, **problem.options)
    expected = (expected, *torch.autograd.grad(expected, (x_ref, w_ref), grad_values.double()))
    for actual, wanted in zip(results, expected):
        assert_close(actual, wanted, torch.float32)
