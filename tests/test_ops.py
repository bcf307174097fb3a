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
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16], ids=str)
@pytest.mark.parametrize("width", range(1, 18), ids=lambda w: f"W{w}")
def test_row_tails_match_reference(width, dtype, device):
    """Rows of 1 .. 17 results: a partial last vector of every length at every ISA level (4, 8
    or 16 float lanes, half as many double ones), which the CPU kernels store a half vector at
    a time from registers."""
    check_against_reference(Problem(2, 6, 2, (3, width), (3, 3)), dtype, device)


# The float CPU kernels at AVX2 and AVX-512 with vectors along 16 channels (16 or 32 channels per
# group; the forward at any stride, grad_input at stride 1): rows that leave one tile of 1 .. 16
# pixels or several unequal ones (7 at most at AVX2; stage 4's rows of 7 are one tile), unit
# column stride and dilation with kernel widths 3, 5 and 7 (inputs shared across taps) and others,
# strides and dilations per axis, padding wider than the kernel needs or none, a single output
# row, an input whose last columns no tap reads, tasks of 14 rows and a shorter last one (enough
# tasks for up to 8 threads).
CHANNEL_VECTOR_PROBLEMS = [
    Problem(2, 32, 2, (9, 1), (3, 3)),
    Problem(8, 32, 2, (20, 9), (5, 3)),
    Problem(1, 16, 1, (11, 23), (7, 7)),
    Problem(2, 32, 2, (7, 7), (7, 7)),
    Problem(2, 64, 2, (6, 37), (5, 5), padding=(2, 4)),
    Problem(1, 32, 1, (8, 16), (3, 3), dilation=(2, 1)),
    Problem(1, 32, 2, (12, 17), (3, 5), padding=0, dilation=(1, 2)),
    Problem(2, 16, 1, (5, 9), (5, 3), padding=(4, 0), dilation=(1, 3)),
    Problem(1, 48, 3, (13, 12), (3, 7), stride=(2, 1)),
    Problem(2, 32, 2, (10, 19), (4, 3), stride=(1, 2), padding=(1, 0), dilation=(1, 2)),
    Problem(1, 16, 1, (1, 30), (1, 5), stride=(1, 3)),
    Problem(1, 16, 1, (7, 40), (3, 2), stride=(3, 1), padding=(0, 5), dilation=(3, 1)),
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last], ids=["nchw", "nhwc"])
@pytest.mark.parametrize("problem", CHANNEL_VECTOR_PROBLEMS, ids=str)
def test_channel_vectors_match_reference(problem, layout, dtype):
    """Output and gradients against the reference, the images in both layouts (transposed in and
    out of the channel vectors, or read and written as they are; bfloat16 widened on the way in
    and rounded on the way out)."""
    x, w = problem.tensors(dtype=dtype, seed=2)
    x = x.contiguous(memory_format=layout).requires_grad_()
    w.requires_grad_()
    out = involution_cuda.involution(x, w, **problem.options)
    assert out.is_contiguous(memory_format=layout)
    grad_out = torch.randn_like(out)
    grads = torch.autograd.grad(out, (x, w), grad_out)
    assert grads[0].is_contiguous(memory_format=layout)
    assert out.dtype == dtype and grads[0].dtype == dtype
    for actual, wanted in zip((out, *grads), reference_with_grads(problem, x, w, grad_out)):
        assert_close(actual, wanted, dtype)


# Non-finite weights at taps of the channel vectors' forward whose input is zero padding:
# (image, group, kernel row, kernel column, output row, output column), each with the value it
# gets. Kernel 5 x 7, padding (2, 3): a padding row only, a padding column only at either end, a
# padding corner, and a tap inside the image (Inf, not NaN, in the result).
PADDING_WEIGHTS = [((0, 1, 0, 3, 0, 4), float("nan")), ((1, 0, 2, 6, 3, -1), float("inf")),
                   ((1, 1, 2, 0, 5, 1), -float("inf")), ((0, 0, 4, 6, 5, 6), float("inf")),
                   ((1, 0, 2, 3, 2, 4), float("inf"))]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last], ids=["nchw", "nhwc"])
@pytest.mark.parametrize("width", [9, 7])
def test_channel_vectors_keep_nan_of_padding_weights(width, layout, dtype):
    """A NaN or Inf weight on the zero padding gives NaN for all 16 channels of its pixel and
    nowhere else, as the reference's weight * 0 does: a kernel that left the padding's taps out
    (a quarter of them at RedNet's 7 x 7 images) would lose it. Row lengths of 9 and 7 take the
    channel vectors at every level."""
    problem = Problem(2, 32, 2, (6, width), (5, 7))
    x, w = problem.tensors(dtype=dtype, seed=5)
    x = x.contiguous(memory_format=layout)
    for index, value in PADDING_WEIGHTS:
        w[index] = value
    got = involution_cuda.involution(x, w, **problem.options)
    wanted = reference.involution(x.double(), w.double(), **problem.options)
    assert int(wanted.isnan().sum()) == 4 * 16 and wanted.isinf().any()
    assert torch.equal(got.isnan(), wanted.isnan()) and torch.equal(got.isinf(), wanted.isinf())
    numbers = ~wanted.isnan()
    assert_close(got[numbers], wanted[numbers], dtype)


def test_forward_and_grad_input_round_bfloat16_as_torch_does():
    """bfloat16 goes through the same float arithmetic as float32, widened on the way in and
    rounded to nearest even on the way out (channel vectors at AVX2 and AVX-512, row tiles at
    the baseline level): the op's bfloat16 results are its float32 results of the same values,
    rounded by torch, bit for bit (NaN payloads aside; Inf included)."""
    problem = Problem(2, 32, 2, (9, 21), (3, 5))
    x, w = problem.tensors(dtype=torch.bfloat16, seed=4)
    x[0, 0, 0, :4] = torch.tensor([float("nan"), float("inf"), -float("inf"), 1.0])
    w[1, 1, 1, 4, 8, 5:8] = torch.tensor([float("nan"), float("inf"), 3.0])
    grad_out = torch.randn(2, 32, 9, 21).to(torch.bfloat16)
    results = ops.involution(x, w, [1, 1], [1, 2], [1, 1], "auto"), ops.involution_grad_input(
        grad_out, w, [9, 21], [1, 1], [1, 2], [1, 1], "auto")
    wide = ops.involution(x.float(), w.float(), [1, 1], [1, 2], [1, 1], "auto"), \
        ops.involution_grad_input(grad_out.float(), w.float(), [9, 21], [1, 1], [1, 2], [1, 1], "auto")
    for got, exact in zip(results, wide):
        assert exact.isnan().any() and exact.isinf().any()
        rounded = exact.to(torch.bfloat16)
        assert torch.equal(got.isnan(), rounded.isnan())
        numbers = ~rounded.isnan()
        assert torch.equal(got[numbers].view(torch.int16), rounded[numbers].view(torch.int16))


@pytest.mark.parametrize("stride", [1, 2], ids=["plane_tiles", "row_tiles"])
def test_grad_weight_rounds_bfloat16_as_torch_does(stride):
    """grad_weight in bfloat16 sums in float as float32 does and rounds each result to nearest
    even as it is stored (a vector at a time): its results are the float32 results of the same
    values rounded by torch, bit for bit, ties and infinities included, NaN where they are NaN."""
    x = torch.randn(2, 32, 9, 14).to(torch.bfloat16)
    grad_out = torch.randn(2, 32, (9 - 1) // stride + 1, (14 - 1) // stride + 1).to(torch.bfloat16)
    # image 0: sums of 1 + 3 * 2^-8 (group 0) and 1 + 2^-8 (group 1), each halfway between two
    # bfloat16 values: to even is up for the first, down for the second
    x[0], grad_out[0] = 0.0, 0.0
    x[0, [0, 16]], x[0, 1], x[0, 17] = 1.0, 3 * 2.0 ** -8, 2.0 ** -8
    grad_out[0, [0, 1, 16, 17]] = 1.0
    x[1, 0, 3, :3] = torch.tensor([float("nan"), float("inf"), -float("inf")])
    args = (2, [5, 3], [stride, stride], [2, 1], [1, 1], "auto")
    got = ops.involution_grad_weight(grad_out, x, *args)
    exact = ops.involution_grad_weight(grad_out.float(), x.float(), *args)
    assert exact.isnan().any() and exact.isinf().any()
    rounded = exact.to(torch.bfloat16)
    ties = exact[0, 0] == 1 + 3 * 2.0 ** -8, exact[0, 1] == 1 + 2.0 ** -8
    assert ties[0].any() and ties[1].any()
    assert (rounded[0, 0][ties[0]] == 1 + 2.0 ** -6).all() and (rounded[0, 1][ties[1]] == 1).all()
    assert torch.equal(got.isnan(), rounded.isnan())
    numbers = ~rounded.isnan()
    assert torch.equal(got[numbers].view(torch.int16), rounded[numbers].view(torch.int16))


def test_channel_vectors_take_bfloat16_weights_in_any_layout():
    """The forward reads bfloat16 weights in place, widened in the tile, where a row of them is
    contiguous along the width (AVX2, AVX-512), and from a float copy otherwise (and at the
    baseline level): the same float arithmetic either way, so the same bits."""
    problem = Problem(2, 32, 2, (9, 11), (5, 7), stride=(2, 1))
    x, w = problem.tensors(dtype=torch.bfloat16, seed=6)
    w[1, 0, 2, 3, 1, 4] = float("inf")
    strided = w.transpose(-1, -2).contiguous().transpose(-1, -2)
    assert strided.stride(-1) != 1 and torch.equal(strided, w)
    options = [2, 1], [2, 3], [1, 1]
    got = ops.involution(x, w, *options, "auto")
    assert got.isinf().any()
    assert torch.equal(got, ops.involution(x, strided, *options, "auto"))
    assert_close(got, reference.involution(x.double(), w.double(), **problem.options), torch.bfloat16)


def test_channel_vectors_read_strided_planes():
    """Image rows that are not back to back (a column slice) and channels that are neither
    planes nor pixels: transposed row by row, or gathered element by element (the forward's
    input, grad_input's grad_output)."""
    problem = Problem(2, 32, 2, (9, 21), (3, 5))
    x, w = problem.tensors(dtype=torch.float32, seed=3)
    grad_out = torch.randn(2, 32, 9, 21)
    expected = reference_with_grads(problem, x, w, grad_out)
    for image in (x, grad_out):
        wide = torch.full((2, 32, 9, 30), float("nan"))
        wide[..., 4:25] = image
        column_slice = wide[..., 4:25]
        odd_strides = image.permute(2, 0, 3, 1).contiguous().permute(1, 3, 0, 2)
        for strided in (column_slice, odd_strides):
            assert not strided.is_contiguous()
            assert not strided.is_contiguous(memory_format=torch.channels_last)
            if image is x:
                assert_close(involution_cuda.involution(strided, w), expected[0], torch.float32)
            else:
                grad_x = ops.involution_grad_input(strided, w, list(x.shape[2:]), [1, 1], [1, 2],
                                                   [1, 1], "auto")
                assert_close(grad_x, expected[1], torch.float32)


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


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16], ids=str)
@pytest.mark.parametrize("kernel_width", [1, 3, 5, 7, 9, 13, 15])
def test_cpu_grad_weight_plane_tiles_every_kernel_width_match_reference(kernel_width, dtype):
    """grad_weight's plane tiles (unit strides, "same" width, rows not a whole number of vectors)
    at every width of a pass over kernel columns (1 to 8, and 8 followed by 1, 5 or 7), where
    some of each tile's taps are loaded and some shuffled out of them: rows of 7 and 13 pixels
    put the tiles' first reads at every place in a vector."""
    for width in (7, 13):
        problem = Problem(2, 6, 2, (5, width), (3, kernel_width))
        x, w = problem.tensors(dtype=dtype, seed=kernel_width)
        grad_out = torch.randn(2, 6, *problem.output_size(), dtype=dtype)
        kernel, stride, padding, dilation = problem.pairs()
        assert problem.output_size()[1] == width
        got = ops.involution_grad_weight(grad_out, x, problem.groups, list(kernel), list(stride), list(padding),
                                         list(dilation))
        _, _, expected = reference_with_grads(problem, x, w, grad_out)
        assert_close(got, expected, dtype)


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
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16], ids=str)
@pytest.mark.parametrize("problem", [Problem(2, 6, 2, (5, 7), (3, 5)), Problem(1, 16, 1, (9, 19), (5, 3)),
                                     Problem(1, 4, 1, (4, 6), (3, 3), dilation=(1, 2))], ids=str)
def test_grad_weight_padding_taps_follow_reference(problem, dtype, device):
    """grad_weight where the kernel's columns reach into the padding: Inf in the input's first and
    last columns (the pixels next to another row's padding) and in grad_output at the border give
    NaN exactly where the reference's grad_output * 0 and Inf * grad_output do, and nothing else."""
    x, w = problem.tensors(dtype=dtype, device=device, seed=3)
    grad_out = torch.randn(x.shape[0], x.shape[1], *problem.output_size(), dtype=dtype, device=device)
    x[:, :, 1:, 0] = float("inf")
    x[:, :, :-1, -1] = -float("inf")
    grad_out[0, 0, 2, 0] = float("inf")
    grad_out[-1, -1, 0, -1] = float("nan")
    kernel, stride, padding, dilation = problem.pairs()
    got = ops.involution_grad_weight(grad_out, x, problem.groups, list(kernel), list(stride), list(padding),
                                     list(dilation))
    _, _, expected = reference_with_grads(problem, x, w, grad_out)
    assert expected.isnan().any() and not expected.isnan().all()
    assert torch.equal(got.isnan().cpu(), expected.isnan())
    assert torch.equal(got.isinf().cpu(), expected.isinf())
    finite = expected.isfinite()
    assert_close(got.cpu()[finite], expected[finite], dtype)


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
@pytest.mark.parametrize("problem", [Problem(4, 32, 2, (9, 14), (7, 7)), Problem(6, 16, 1, (7, 7), (3, 5))], ids=str)
def test_any_split_of_the_batch_gives_the_same_bits(problem, device):
    """Each image's results do not depend on the rest of the batch (task blocks are chosen from
    the batch size), so data-parallel runs split a batch without changing this op's rounding."""
    x, w = problem.tensors(dtype=torch.float32, device=device, seed=4)
    grad_out = torch.randn(x.shape[0], x.shape[1], *problem.output_size(), device=device)
    kernel, stride, padding, dilation = (list(pair) for pair in problem.pairs())

    def run(part):
        return (ops.involution(x[part], w[part], stride, padding, dilation),
                ops.involution_grad_input(grad_out[part], w[part], list(problem.size), stride, padding, dilation),
                ops.involution_grad_weight(grad_out[part], x[part], problem.groups, kernel, stride, padding,
                                           dilation))

    whole = run(slice(None))
    half = x.shape[0] // 2
    for part in (slice(0, half), slice(half, None), slice(1, 2)):
        assert all(torch.equal(a[part], b) for a, b in zip(whole, run(part)))


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
