"""The Involution layer: shapes, both backends agree, official parameter names, bad options."""
import pytest
import torch

from conftest import DEVICES
from involution_cuda import Involution
from involution_cuda.module import CeilAvgPool
from official import official_forward


def twin_modules(device, **kwargs):
    """The same layer (same parameters) on the native and the reference backend."""
    torch.manual_seed(0)
    native = Involution(**kwargs).to(device=device, dtype=torch.float64)
    twin = Involution(**kwargs, backend="reference").to(device=device, dtype=torch.float64)
    twin.load_state_dict(native.state_dict())
    return native, twin


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(
    "kwargs, size, expected",
    [
        (dict(channels=32, kernel_size=7, stride=2), (7, 7), (4, 4)),
        (dict(channels=32, kernel_size=7, stride=2), (15, 9), (8, 5)),
        (dict(channels=16, kernel_size=3, stride=1, group_channels=4), (11, 6), (11, 6)),
        (dict(channels=24, kernel_size=(3, 5), stride=(2, 1), group_channels=8, dilation=(1, 2)),
         (9, 13), (5, 13)),
        (dict(channels=16, kernel_size=5, stride=3, group_channels=16, reduction_ratio=2), (10, 8), (4, 3)),
    ],
)
def test_native_matches_reference_backend(kwargs, size, expected, device):
    native, twin = twin_modules(device, **kwargs)
    x = torch.randn(2, kwargs["channels"], *size, dtype=torch.float64, device=device, requires_grad=True)
    out = native(x)
    assert out.shape == (2, kwargs["channels"], *expected)
    grad_out = torch.randn_like(out)
    grads = torch.autograd.grad(out, [x, *native.parameters()], grad_out)
    twin_out = twin(x)
    twin_grads = torch.autograd.grad(twin_out, [x, *twin.parameters()], grad_out)
    torch.testing.assert_close(out, twin_out)
    for grad, twin_grad in zip(grads, twin_grads):
        torch.testing.assert_close(grad, twin_grad)


@pytest.mark.parametrize("backend", ["native", "reference"])
@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("kwargs, size", [
    (dict(channels=32, kernel_size=7, stride=1), (9, 7)),
    (dict(channels=32, kernel_size=7, stride=2), (15, 9)),
    (dict(channels=16, kernel_size=3, stride=2, group_channels=4), (7, 11)),
    (dict(channels=24, kernel_size=(3, 5), stride=(2, 1), group_channels=8, dilation=(1, 2)), (9, 13)),
], ids=str)
def test_layer_matches_literal_official_forward(kwargs, size, train, backend):
    torch.manual_seed(0)
    layer = Involution(**kwargs, backend=backend).double().train(train)
    with torch.no_grad():  # running statistics and affine BatchNorm that are not the defaults
        layer.conv1.bn.running_mean.normal_()
        layer.conv1.bn.running_var.uniform_(0.5, 2)
        layer.conv1.bn.weight.normal_()
        layer.conv1.bn.bias.normal_()
    x = torch.randn(3, kwargs["channels"], *size, dtype=torch.float64, requires_grad=True)
    expected, running_mean, running_var = official_forward(layer, x)
    out = layer(x)
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(layer.conv1.bn.running_mean, running_mean, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(layer.conv1.bn.running_var, running_var, rtol=1e-12, atol=1e-12)
    grad_out = torch.randn_like(out)
    inputs = [x, *layer.parameters()]
    for grad, wanted in zip(torch.autograd.grad(out, inputs, grad_out),
                            torch.autograd.grad(expected, inputs, grad_out)):
        torch.testing.assert_close(grad, wanted, rtol=1e-10, atol=1e-10)


def test_official_state_dict_names():
    layer = Involution(64, kernel_size=7, stride=2)
    shapes = {key: tuple(value.shape) for key, value in layer.state_dict().items()}
    assert shapes == {
        "conv1.conv.weight": (16, 64, 1, 1),
        "conv1.bn.weight": (16,),
        "conv1.bn.bias": (16,),
        "conv1.bn.running_mean": (16,),
        "conv1.bn.running_var": (16,),
        "conv1.bn.num_batches_tracked": (),
        "conv2.conv.weight": (7 * 7 * 4, 16, 1, 1),
        "conv2.conv.bias": (7 * 7 * 4,),
    }


def test_gradcheck_through_layer():
    native, _ = twin_modules("cpu", channels=8, kernel_size=(3, 5), stride=(1, 2), group_channels=4)
    native.eval()  # BatchNorm with running statistics keeps the function deterministic
    x = torch.randn(1, 8, 5, 7, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(native, (x,))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(channels=30, group_channels=16), "divisible by group_channels"),
        (dict(channels=16, kernel_size=4), "kernel_size must be odd"),
        (dict(channels=16, stride=0), "stride and dilation must be >= 1"),
        (dict(channels=16, reduction_ratio=32), "channels // reduction_ratio"),
        (dict(channels=0), "channels must be a positive int"),
        (dict(channels=16, backend="cupy"), "backend must be one of"),
    ],
)
def test_bad_options_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Involution(**kwargs)


def test_wrong_channel_count_raises():
    layer = Involution(16, kernel_size=3)
    with pytest.raises(ValueError, match=r"input must have shape \(batch, 16, height, width\)"):
        layer(torch.randn(1, 8, 5, 5))


@pytest.mark.parametrize("stride", [(2, 2), (3, 2), (2, 1)])
@pytest.mark.parametrize("size", [(7, 7), (15, 9), (12, 10), (1, 5)])
def test_ceil_avg_pool_matches_avg_pool2d_ceil_mode(size, stride):
    x = torch.randn(2, 3, *size, dtype=torch.float64, requires_grad=True)
    expected = torch.nn.AvgPool2d(stride, stride, ceil_mode=True)(x)
    out = CeilAvgPool(stride)(x)
    torch.testing.assert_close(out, expected)
    grad = torch.randn_like(out)
    torch.testing.assert_close(torch.autograd.grad(out, x, grad), torch.autograd.grad(expected, x, grad))
