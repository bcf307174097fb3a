"""Bad input raises a clear Python exception naming the argument, the same through every entry
point: the argument checks live in one place (csrc/checks.cpp) and every entry point runs them."""
import pytest
import torch
from hypothesis import given, strategies as st

import involution_cuda
from involution_cuda import decomposition, reference
from involution_cuda.ops import ops

PYTHON_ENTRY_POINTS = {
    "functional": involution_cuda.involution,
    "reference": reference.involution,
    "decomposition": decomposition.involution,
}


def good():
    """A valid (input, weight) pair: C 4, G 2, 7x9 input, 3x5 kernel, same padding (1, 2)."""
    return torch.randn(2, 4, 7, 9), torch.randn(2, 2, 3, 5, 7, 9)


SAME_PADDING = [1, 2]

# (name, (input, weight) from a good pair, options, exception type, start of the message). The
# options are given as the raw op takes them, so each case also runs through the raw op.
BAD_VALUES = [
    ("input 3-D", lambda x, w: (x[0], w), {}, ValueError,
     "input must be a 4-D tensor (batch, channels, height, width), got shape [4, 7, 9]"),
    ("weight 5-D", lambda x, w: (x, w[:, 0]), {}, ValueError,
     "weight must be a 6-D tensor (batch, groups, kernel_h, kernel_w, out_h, out_w)"),
    ("channels not divisible", lambda x, w: (x[:, :3], w), {}, ValueError,
     "the number of channels (3) must be divisible by the number of groups (2)"),
    ("zero groups", lambda x, w: (x, w[:, :0]), {}, ValueError, "groups must be >= 1, got 0"),
    ("zero kernel size", lambda x, w: (x, w[:, :, :0]), {}, ValueError,
     "weight's kernel size (shape[2:4]) must be >= 1"),
    ("weight spatial size", lambda x, w: (x, w[..., :8]), {}, ValueError,
     "weight must have spatial size (7, 9) = the output size for these options, got (7, 8)"),
    ("batch mismatch", lambda x, w: (x[:1], w), {}, ValueError,
     "input and weight must have the same batch size, got 1 and 2"),
    ("dtype mismatch", lambda x, w: (x.double(), w), {}, TypeError,
     "input and weight must have the same dtype"),
    ("devices differ", lambda x, w: (x, w.to("meta")), {}, ValueError,
     "input and weight must be on the same device, got cpu and meta"),
    ("integer dtype", lambda x, w: (x.int(), w.int()), {}, TypeError,
     "input must be float16, bfloat16, float32 or float64, got Int"),
    ("bool dtype", lambda x, w: (x > 0, w > 0), {}, TypeError, "input must be float16"),
    ("stride 0", lambda x, w: (x, w), {"stride": [0, 1]}, ValueError, "stride must be >= 1"),
    ("dilation 0", lambda x, w: (x, w), {"dilation": [1, 0]}, ValueError, "dilation must be >= 1"),
    ("negative padding", lambda x, w: (x, w), {"padding": [-1, 2]}, ValueError,
     "padding must be >= 0"),
    ("padding triple", lambda x, w: (x, w), {"padding": [1, 2, 3]}, ValueError,
     "padding must have 2 elements (height, width), got 3"),
    ("kernel too large", lambda x, w: (x[:, :, :2], torch.randn(2, 2, 3, 5, 1, 9)),
     {"padding": [0, 2]}, ValueError,
     "the dilated kernel extent 3 along height exceeds the padded input size 2"),
]


def raised(call):
    with pytest.raises(Exception) as info:
        call()
    return type(info.value), str(info.value).split("\n")[0]


@pytest.mark.parametrize("case", BAD_VALUES, ids=lambda case: case[0])
def test_every_entry_point_raises_the_same_error(case):
    _, make_args, options, error, message = case
    x, w = make_args(*good())
    raw = {"stride": [1, 1], "padding": SAME_PADDING, "dilation": [1, 1], **options}
    expected = raised(lambda: ops.involution(x, w, raw["stride"], raw["padding"], raw["dilation"]))
    assert expected[0] is error and expected[1].startswith(message), expected
    for name, entry in PYTHON_ENTRY_POINTS.items():
        assert raised(lambda: entry(x, w, **options)) == expected, name


def test_fake_kernels_raise_the_same_errors():
    """Compiled graphs check at trace time with the same code (the fake kernel)."""
    x, w = good()
    mode = torch._subclasses.FakeTensorMode()
    fake_x, fake_w = mode.from_tensor(x), mode.from_tensor(w[..., :8])
    with mode:
        got = raised(lambda: ops.involution(fake_x, fake_w, [1, 1], SAME_PADDING, [1, 1]))
    assert got == raised(lambda: ops.involution(x, w[..., :8], [1, 1], SAME_PADDING, [1, 1]))


# Values a raw op's schema cannot take, which only the Python entry points meet.
BAD_PYTHON_VALUES = [
    ("input not a tensor", lambda x, w: (x.tolist(), w), {}, "input must be a torch.Tensor, got list"),
    ("weight not a tensor", lambda x, w: (x, None), {}, "weight must be a torch.Tensor, got NoneType"),
    ("stride not int", lambda x, w: (x, w), {"stride": 1.5}, "stride must be an int or a pair of ints"),
    ("bool padding", lambda x, w: (x, w), {"padding": True}, "padding must be an int or a pair"),
    ("float dilation pair", lambda x, w: (x, w), {"dilation": (1, 2.0)}, "dilation must be an int"),
]


@pytest.mark.parametrize("entry", PYTHON_ENTRY_POINTS)
@pytest.mark.parametrize("case", BAD_PYTHON_VALUES, ids=lambda case: case[0])
def test_python_entry_points_reject_non_tensors_and_non_ints(case, entry):
    _, make_args, options, message = case
    with pytest.raises(TypeError, match=message):
        PYTHON_ENTRY_POINTS[entry](*make_args(*good()), **options)


def test_unknown_kernel_choice_is_an_error_on_cpu_too():
    x, w = good()
    for call in (lambda: involution_cuda.involution(x, w, kernels="quick"),
                 lambda: ops.involution(x, w, [1, 1], SAME_PADDING, [1, 1], "quick")):
        assert raised(call) == (ValueError, "kernels must be 'auto', 'baseline' or 'fast', got 'quick'")


# The backward ops check what their kernels rely on with the same code.
RAW_BAD_CALLS = [
    ("grad_input size", lambda x, w: ops.involution_grad_input(x, w, [7, 8], [1, 1], [1, 2], [1, 1]),
     ValueError, "weight must have spatial size"),
    ("grad_input padding", lambda x, w: ops.involution_grad_input(x, w, [7, 9], [1, 1], [-1, 2], [1, 1]),
     ValueError, "padding must be >= 0"),
    ("grad_input grad_output size", lambda x, w: ops.involution_grad_input(
        x[..., :8], w, [7, 9], [1, 1], [1, 2], [1, 1]), ValueError, "grad_output must have spatial size"),
    ("grad_input negative size", lambda x, w: ops.involution_grad_input(x, w, [7, -9], [1, 1], [1, 2], [1, 1]),
     ValueError, "input_size must be >= 0"),
    ("grad_weight groups", lambda x, w: ops.involution_grad_weight(x, x, 3, [3, 5], [1, 1], [1, 2], [1, 1]),
     ValueError, "divisible"),
    ("grad_weight zero groups", lambda x, w: ops.involution_grad_weight(x, x, 0, [3, 5], [1, 1], [1, 2], [1, 1]),
     ValueError, "groups must be >= 1"),
    ("grad_weight channels", lambda x, w: ops.involution_grad_weight(x[:, :2], x, 2, [3, 5], [1, 1], [1, 2], [1, 1]),
     ValueError, "grad_output and input must have the same number of channels"),
    ("grad_weight kernel", lambda x, w: ops.involution_grad_weight(x, x, 2, [3, 0], [1, 1], [1, 2], [1, 1]),
     ValueError, "kernel_size must be >= 1"),
    ("grad_weight batch", lambda x, w: ops.involution_grad_weight(x[:1], x, 2, [3, 5], [1, 1], [1, 2], [1, 1]),
     ValueError, "grad_output and input must have the same batch size"),
]


@pytest.mark.parametrize("case", RAW_BAD_CALLS, ids=lambda case: case[0])
def test_backward_ops_bad_input_raises(case):
    _, call, error, message = case
    with pytest.raises(error, match=message):
        call(*good())


@given(size=st.integers(1, 40), kernel=st.integers(1, 9), stride=st.integers(1, 4),
       padding=st.integers(0, 5), dilation=st.integers(1, 4))
def test_python_output_size_is_the_kernels_formula(size, kernel, stride, padding, dilation):
    """involution_cuda.output_size (tests, benchmarks, the 1-D layer) against the C++ formula the
    checks and kernels use, read from the op's result shape on meta tensors."""
    if dilation * (kernel - 1) + 1 > size + 2 * padding:
        return
    expected = involution_cuda.output_size(size, kernel, stride, padding, dilation)
    x = torch.empty(1, 1, size, 3, device="meta")
    w = torch.empty(1, 1, kernel, 1, expected, 3, device="meta")
    out = ops.involution(x, w, [stride, 1], [padding, 0], [dilation, 1])
    assert out.shape[2] == expected
