"""involution1d and Involution1d: against the 1-D reference, the 2-D op, causality, errors."""
import pytest
import torch

import involution_cuda
from conftest import DEVICES, assert_close
from involution_cuda import Involution1d, involution1d, output_size, reference

# (batch, channels, groups, length, kernel, stride, padding, dilation, causal)
PROBLEMS = [
    (2, 4, 2, 13, 5, 1, None, 1, False),
    (1, 6, 3, 17, 3, 2, 0, 2, False),
    (2, 4, 4, 9, 4, 1, 3, 1, False),
    (2, 4, 1, 11, 4, 1, None, 1, True),
    (1, 6, 2, 16, 3, 3, None, 2, True),
    (1, 2, 2, 5, 7, 2, 3, 1, False),
]


def make(problem, dtype=torch.float64, device="cpu", seed=0):
    batch, channels, groups, length, kernel, stride, padding, dilation, causal = problem
    left = dilation * (kernel - 1) if causal else (dilation * (kernel - 1) // 2 if padding is None else padding)
    right = 0 if causal else left
    out_length = output_size(length + left + right, kernel, stride, 0, dilation)
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, channels, length, generator=generator, dtype=torch.float64)
    w = torch.randn(batch, groups, kernel, out_length, generator=generator, dtype=torch.float64)
    options = dict(stride=stride, padding=padding, dilation=dilation, causal=causal)
    return x.to(device, dtype).requires_grad_(), w.to(device, dtype).requires_grad_(), options


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("problem", PROBLEMS, ids=str)
def test_matches_reference_and_gradcheck(problem, device):
    x, w, options = make(problem, device=device)
    out = involution1d(x, w, **options)
    expected = reference.involution1d(x, w, **options)
    grad = torch.randn_like(out)
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(torch.autograd.grad(out, (x, w), grad), torch.autograd.grad(expected, (x, w), grad))
    assert torch.autograd.gradcheck(lambda x, w: involution1d(x, w, **options), (x, w))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_long_sequence_matches_reference(dtype, device):
    x, w, options = make((2, 64, 4, 1000, 7, 1, None, 1, True), dtype=dtype, device=device)
    expected = reference.involution1d(x.double(), w.double(), **options)
    assert_close(involution1d(x, w, **options), expected, dtype)


def test_equals_2d_op_with_height_one():
    x, w, options = make(PROBLEMS[1])
    two_d = involution_cuda.involution(x.unsqueeze(2), w[:, :, None, :, None], (1, 2), (0, 0), (1, 2))
    torch.testing.assert_close(involution1d(x, w, **options), two_d.squeeze(2))


@pytest.mark.parametrize("stride", [1, 2, 3])
def test_causal_op_ignores_the_future(stride):
    x, w, options = make((1, 4, 2, 20, 5, stride, None, 2, True))
    out = involution1d(x, w, **options)
    t = 4  # outputs up to t read inputs up to t * stride only
    x_changed = x.detach().clone()
    x_changed[..., t * stride + 1:] += 100.0
    torch.testing.assert_close(involution1d(x_changed, w, **options)[..., : t + 1], out[..., : t + 1])
    assert not torch.allclose(involution1d(x_changed, w, **options)[..., t + 1:], out[..., t + 1:])


@pytest.mark.parametrize("stride", [1, 2])
def test_causal_layer_ignores_the_future(stride):
    torch.manual_seed(0)
    layer = Involution1d(32, 4, stride=stride, group_channels=8, causal=True).train()
    x = torch.randn(3, 32, 30)
    out = layer(x)
    t = 6
    x_changed = x.clone()
    x_changed[..., t * stride + 1:] = torch.randn_like(x_changed[..., t * stride + 1:]) * 10
    torch.testing.assert_close(layer(x_changed)[..., : t + 1], out[..., : t + 1])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("causal", [False, True])
def test_layer_native_matches_reference_backend(causal, device):
    torch.manual_seed(0)
    native = Involution1d(32, 5, stride=2, group_channels=8, causal=causal).to(device, torch.float64)
    twin = Involution1d(32, 5, stride=2, group_channels=8, causal=causal, backend="reference").to(device, torch.float64)
    twin.load_state_dict(native.state_dict())
    x = torch.randn(2, 32, 25, dtype=torch.float64, device=device, requires_grad=True)
    out, expected = native(x), twin(x)
    assert out.shape == (2, 32, 13)
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(torch.autograd.grad(out.sum(), x), torch.autograd.grad(expected.sum(), x))


def test_autocast_and_compile():
    torch.manual_seed(0)
    layer = Involution1d(32, 5, group_channels=8, causal=True)
    x = torch.randn(2, 32, 40)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert layer(x).dtype == torch.bfloat16
    compiled = torch.compile(layer, fullgraph=True, backend="aot_eager")
    torch.testing.assert_close(compiled(x), layer(x))


# (what is wrong, arguments from a good (x, w), exception, message)
BAD = [
    ("input 4-D", lambda x, w: ((x.unsqueeze(2), w), {}), ValueError, "input must be a 3-D tensor"),
    ("weight length", lambda x, w: ((x, w[..., :-1]), {}), ValueError, r"weight.shape\[3\] must equal the output length"),
    ("causal padding", lambda x, w: ((x, w), {"padding": 1, "causal": True}), ValueError, "padding must be None when causal"),
    ("stride 0", lambda x, w: ((x, w), {"stride": 0}), ValueError, "stride must be >= 1"),
    ("float dilation", lambda x, w: ((x, w), {"dilation": 1.0}), TypeError, "dilation must be an int"),
    ("groups", lambda x, w: ((x[:, :3], w), {}), ValueError, "divisible"),
    ("dtypes", lambda x, w: ((x.float(), w), {}), TypeError, "same dtype"),
]


@pytest.mark.parametrize("case", BAD, ids=lambda case: case[0])
@pytest.mark.parametrize("function", [involution1d, reference.involution1d], ids=["native", "reference"])
def test_bad_input_raises(case, function):
    _, make_args, error, message = case
    x, w, _ = make((2, 4, 2, 13, 5, 1, None, 1, False))
    args, kwargs = make_args(x.detach(), w.detach())
    with pytest.raises(error, match=message):
        function(*args, **kwargs)


def test_layer_bad_options():
    with pytest.raises(ValueError, match="kernel_size must be odd unless causal"):
        Involution1d(16, 4)
    with pytest.raises(ValueError, match="input must have shape"):
        Involution1d(16, 3)(torch.randn(2, 8, 10))
