"""Bad input raises a clear Python exception naming the argument, through every entry point."""
import pytest
import torch

import involution_cuda
from involution_cuda import reference
from involution_cuda.ops import ops

ENTRY_POINTS = {"functional": involution_cuda.involution, "reference": reference.involution}


def good():
    """A valid (input, weight) pair: C 4, G 2, 7x9 input, 3x5 kernel, same padding."""
    return torch.randn(2, 4, 7, 9), torch.randn(2, 2, 3, 5, 7, 9)


# (name, arguments, exception type, fragment of the message)
BAD_CALLS = [
    ("input 3-D", lambda x, w: (x[0], w), {}, ValueError, "input must be a 4-D tensor"),
    ("weight 5-D", lambda x, w: (x, w[:, 0]), {}, ValueError, "weight must be a 6-D tensor"),
    ("input not a tensor", lambda x, w: (x.tolist(), w), {}, TypeError, "input must be a torch.Tensor"),
    ("channels not divisible", lambda x, w: (x[:, :3], w), {}, ValueError, "divisible by the number of groups"),
    ("weight spatial size", lambda x, w: (x, w[..., :8]), {}, ValueError, "weight's spatial size"),
    ("batch mismatch", lambda x, w: (x[:1], w), {}, ValueError, "same batch size"),
    ("dtype mismatch", lambda x, w: (x.double(), w), {}, TypeError, "same dtype"),
    ("integer dtype", lambda x, w: (x.int(), w.int()), {}, TypeError, "input must be float16"),
    ("bool dtype", lambda x, w: (x > 0, w > 0), {}, TypeError, "input must be float16"),
    ("stride 0", lambda x, w: (x, w), {"stride": 0}, ValueError, "stride must be >= 1"),
    ("dilation 0", lambda x, w: (x, w), {"dilation": (1, 0)}, ValueError, "dilation must be >= 1"),
    ("negative padding", lambda x, w: (x, w), {"padding": (-1, 2)}, ValueError, "padding must be >= 0"),
    ("stride not int", lambda x, w: (x, w), {"stride": 1.5}, TypeError, "stride must be an int"),
    ("padding triple", lambda x, w: (x, w), {"padding": (1, 2, 3)}, TypeError, "padding must be an int"),
    ("kernel too large", lambda x, w: (x[:, :, :2], torch.randn(2, 2, 3, 5, 1, 9)), {"padding": (0, 2)},
     ValueError, "exceeds the padded input"),
]


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize("case", BAD_CALLS, ids=lambda case: case[0])
def test_bad_input_raises(case, entry):
    _, make_args, options, error, message = case
    with pytest.raises(error, match=message):
        ENTRY_POINTS[entry](*make_args(*good()), **options)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_tensors_on_different_devices():
    x, w = good()
    with pytest.raises(ValueError, match="same device"):
        involution_cuda.involution(x, w.cuda())


def test_tensors_on_different_devices_meta():
    """Devices are compared before any kernel runs (the meta device stands in for a GPU)."""
    x, w = good()
    with pytest.raises(ValueError, match="same device"):
        involution_cuda.involution(x, w.to("meta"))


# The raw ops check what their kernels rely on, in C++, with the same kinds of exception.
RAW_BAD_CALLS = [
    ("forward weight size", lambda x, w: ops.involution(x, w[..., :8], [1, 1], [1, 2], [1, 1]),
     ValueError, "weight must have spatial size"),
    ("forward groups", lambda x, w: ops.involution(x[:, :3], w, [1, 1], [1, 2], [1, 1]),
     ValueError, "divisible"),
    ("forward stride", lambda x, w: ops.involution(x, w, [0, 1], [1, 2], [1, 1]),
     ValueError, "stride must be >= 1"),
    ("forward pair", lambda x, w: ops.involution(x, w, [1, 1, 1], [1, 2], [1, 1]),
     ValueError, "stride must have 2 elements"),
    ("forward dtype", lambda x, w: ops.involution(x.int(), w.int(), [1, 1], [1, 2], [1, 1]),
     TypeError, "input must be float16"),
    ("grad_input size", lambda x, w: ops.involution_grad_input(x, w, [7, 8], [1, 1], [1, 2], [1, 1]),
     ValueError, "weight must have spatial size"),
    ("grad_input padding", lambda x, w: ops.involution_grad_input(x, w, [7, 9], [1, 1], [-1, 2], [1, 1]),
     ValueError, "padding must be >= 0"),
    ("grad_weight groups", lambda x, w: ops.involution_grad_weight(x, x, 3, [3, 5], [1, 1], [1, 2], [1, 1]),
     ValueError, "divisible"),
    ("grad_weight channels", lambda x, w: ops.involution_grad_weight(x[:, :2], x, 2, [3, 5], [1, 1], [1, 2], [1, 1]),
     ValueError, "same number of channels"),
    ("grad_weight kernel", lambda x, w: ops.involution_grad_weight(x, x, 2, [3, 0], [1, 1], [1, 2], [1, 1]),
     ValueError, "kernel_size must be >= 1"),
]


@pytest.mark.parametrize("case", RAW_BAD_CALLS, ids=lambda case: case[0])
def test_raw_op_bad_input_raises(case):
    _, call, error, message = case
    with pytest.raises(error, match=message):
        call(*good())
