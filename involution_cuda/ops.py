"""Registration of the compiled involution ops with PyTorch: fake kernels and autograd.

The three ops (schemas in csrc/ops.cpp) are bilinear, and each one's derivative is expressed with
the others, so gradients of any order need no further kernels:

    out = involution(x, w)            dx = grad_input(g, w)       dw = grad_weight(g, x)
    gx  = grad_input(g, w)            dg = involution(t, w)       dw = grad_weight(g, t)
    gw  = grad_weight(g, x)           dg = involution(x, t)       dx = grad_input(g, t)

(t is the incoming gradient of the op's result.) Every op carries its CUDA kernel choice
(``kernels``) and the backward of each passes it on unchanged, so a forward and its backward always
run the same kernel set, whatever any other call or thread chooses in between.
"""
from __future__ import annotations

import torch

from ._build_info import TORCH_VERSION as BUILT_AGAINST
from ._torch_version import require_build_torch

require_build_torch(BUILT_AGAINST)
from . import _C  # noqa: E402  (loads the shared library, which registers the ops)

ops = torch.ops.involution_cuda


def has_cuda_kernels() -> bool:
    """Whether this build of the extension contains the CUDA kernels."""
    return torch._C._dispatch_has_kernel_for_dispatch_key("involution_cuda::involution", "CUDA")


def cpu_capability() -> str:
    """The vector ISA level the CPU kernels run at: ``"avx512"``, ``"avx2"`` or ``"default"``.

    The best the CPU supports, capped by the ``ATEN_CPU_CAPABILITY`` environment variable
    (PyTorch's own setting, read once when the first op runs)."""
    return _C.cpu_capability()


# ---- fake kernels: the ops' own checks (csrc/checks.cpp) and the result's size and layout ----
# The checks run on symbolic sizes too, so compiled graphs with dynamic shapes guard on them
# instead of specialising.

def _empty_result(tensor, checked):
    size, channels_last = checked
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    return torch.empty(size, dtype=tensor.dtype, device=tensor.device, memory_format=memory_format)


@torch.library.register_fake("involution_cuda::involution")
def _involution_fake(input, weight, stride, padding, dilation, kernels="auto"):
    return _empty_result(input, _C.check_forward(input, weight, stride, padding, dilation, kernels))


@torch.library.register_fake("involution_cuda::involution_grad_input")
def _grad_input_fake(grad_output, weight, input_size, stride, padding, dilation, kernels="auto"):
    return _empty_result(grad_output, _C.check_grad_input(
        grad_output, weight, input_size, stride, padding, dilation, kernels))


@torch.library.register_fake("involution_cuda::involution_grad_weight")
def _grad_weight_fake(grad_output, input, groups, kernel_size, stride, padding, dilation,
                      kernels="auto"):
    return _empty_result(input, _C.check_grad_weight(
        grad_output, input, groups, kernel_size, stride, padding, dilation, kernels))


# ---- autograd -------------------------------------------------------------------------------

def _save(ctx, first, second):
    """Saves `first` if the second input needs a gradient and `second` if the first does."""
    ctx.save_for_backward(
        first if ctx.needs_input_grad[1] else None,
        second if ctx.needs_input_grad[0] else None,
    )


def _involution_setup(ctx, inputs, output):
    input, weight, stride, padding, dilation, kernels = inputs
    ctx.options = (stride, padding, dilation, kernels)
    ctx.input_size = list(input.shape[2:])
    ctx.groups = weight.shape[1]
    ctx.kernel_size = list(weight.shape[2:4])
    _save(ctx, input, weight)


def _involution_backward(ctx, grad):
    input, weight = ctx.saved_tensors
    grad_input = grad_weight = None
    if ctx.needs_input_grad[0]:
        grad_input = ops.involution_grad_input(grad, weight, ctx.input_size, *ctx.options)
    if ctx.needs_input_grad[1]:
        grad_weight = ops.involution_grad_weight(grad, input, ctx.groups, ctx.kernel_size, *ctx.options)
    return grad_input, grad_weight, None, None, None, None


def _grad_input_setup(ctx, inputs, output):
    grad_output, weight, input_size, stride, padding, dilation, kernels = inputs
    ctx.options = (stride, padding, dilation, kernels)
    ctx.groups = weight.shape[1]
    ctx.kernel_size = list(weight.shape[2:4])
    _save(ctx, grad_output, weight)


def _grad_input_backward(ctx, grad):
    grad_output, weight = ctx.saved_tensors
    d_grad_output = d_weight = None
    if ctx.needs_input_grad[0]:
        d_grad_output = ops.involution(grad, weight, *ctx.options)
    if ctx.needs_input_grad[1]:
        d_weight = ops.involution_grad_weight(grad_output, grad, ctx.groups, ctx.kernel_size, *ctx.options)
    return d_grad_output, d_weight, None, None, None, None, None


def _grad_weight_setup(ctx, inputs, output):
    grad_output, input, groups, kernel_size, stride, padding, dilation, kernels = inputs
    ctx.options = (stride, padding, dilation, kernels)
    ctx.input_size = list(input.shape[2:])
    _save(ctx, grad_output, input)


def _grad_weight_backward(ctx, grad):
    grad_output, input = ctx.saved_tensors
    d_grad_output = d_input = None
    if ctx.needs_input_grad[0]:
        d_grad_output = ops.involution(input, grad, *ctx.options)
    if ctx.needs_input_grad[1]:
        d_input = ops.involution_grad_input(grad_output, grad, ctx.input_size, *ctx.options)
    return d_grad_output, d_input, None, None, None, None, None, None


torch.library.register_autograd(
    "involution_cuda::involution", _involution_backward, setup_context=_involution_setup
)
torch.library.register_autograd(
    "involution_cuda::involution_grad_input", _grad_input_backward, setup_context=_grad_input_setup
)
torch.library.register_autograd(
    "involution_cuda::involution_grad_weight", _grad_weight_backward, setup_context=_grad_weight_setup
)
