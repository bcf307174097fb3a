"""Formulations a user could run instead of this extension (benchmark baselines), each at its best.

- ``unfold``: ``involution_cuda.reference.involution``, the formulation most code uses.
- ``shift_add``: one broadcast multiply-add per kernel tap over shifted views of the padded input,
  with a hand-written backward that accumulates in place. Plain autograd through the same loop
  materialises a zero tensor the size of the whole weight and of the padded input per tap
  (the backward of indexing), which made it ~8x slower than its forward.
- ``shift_add_compiled``: ``torch.compile`` (inductor) of the plain formulation
  (``involution_cuda.decomposition.involution``); inductor fuses those per-tap zeros away.
  ``CompiledShiftAdd`` compiles once per benchmark case and counts the graphs it compiled, so a
  silent fallback to eager code cannot be timed under that name.
- ``depthwise_conv``: a depthwise convolution of the same kernel size, a yardstick only (its
  weight is static, so it moves ~2.5x fewer bytes than involution; it is never a speed-up).
- ``official_cupy``: the paper's CuPy op, loaded from a user's checkout of d-li14/involution.
"""
from __future__ import annotations

import importlib.util
import os
import sys
import types

import torch
import torch.nn.functional as F

from involution_cuda._validation import check_involution
from involution_cuda.decomposition import involution as shift_add_autograd


def _window(padded, u, v, out_hw, stride, dilation):
    """The view of ``padded`` (..., Hp, Wp) that tap (u, v) reads for every output pixel."""
    (out_h, out_w), (sh, sw), (dh, dw) = out_hw, stride, dilation
    return padded[..., u * dh: u * dh + (out_h - 1) * sh + 1: sh,
                  v * dw: v * dw + (out_w - 1) * sw + 1: sw]


class _ShiftAdd(torch.autograd.Function):
    """Shift-and-add with a backward that writes each gradient once, in place, tap by tap."""

    @staticmethod
    def forward(ctx, input, weight, stride, padding, dilation):
        batch, channels, height, width = input.shape
        groups, kernel_h, kernel_w, out_h, out_w = weight.shape[1:]
        (ph, pw), per_group = padding, channels // groups
        padded = F.pad(input, (pw, pw, ph, ph)).view(batch, groups, per_group, height + 2 * ph, width + 2 * pw)
        out = input.new_zeros(batch, groups, per_group, out_h, out_w)
        for u in range(kernel_h):
            for v in range(kernel_w):
                window = _window(padded, u, v, (out_h, out_w), stride, dilation)
                out.addcmul_(weight[:, :, u, v].unsqueeze(2), window)
        ctx.save_for_backward(input, weight)
        ctx.options = stride, padding, dilation
        return out.view(batch, channels, out_h, out_w)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        input, weight = ctx.saved_tensors
        stride, (ph, pw), dilation = ctx.options
        batch, channels, height, width = input.shape
        groups, kernel_h, kernel_w, out_h, out_w = weight.shape[1:]
        per_group = channels // groups
        grad = grad_out.reshape(batch, groups, per_group, out_h, out_w)
        padded_shape = (batch, groups, per_group, height + 2 * ph, width + 2 * pw)
        grad_input = grad_weight = None
        if ctx.needs_input_grad[0]:
            grad_padded = input.new_zeros(padded_shape)
            for u in range(kernel_h):
                for v in range(kernel_w):
                    window = _window(grad_padded, u, v, (out_h, out_w), stride, dilation)
                    window.addcmul_(grad, weight[:, :, u, v].unsqueeze(2))
            grad_input = grad_padded[..., ph: ph + height, pw: pw + width].reshape(input.shape)
        if ctx.needs_input_grad[1]:
            padded = F.pad(input, (pw, pw, ph, ph)).view(padded_shape)
            grad_weight = torch.empty_like(weight, memory_format=torch.contiguous_format)
            for u in range(kernel_h):
                for v in range(kernel_w):
                    window = _window(padded, u, v, (out_h, out_w), stride, dilation)
                    torch.sum(grad * window, dim=2, out=grad_weight[:, :, u, v])
        return grad_input, grad_weight, None, None, None


def shift_add(input, weight, stride=1, padding=None, dilation=1):
    """Shift-and-add involution with a hand-written backward (same arguments as the op)."""
    stride, padding, dilation = check_involution(input, weight, stride, padding, dilation)
    return _ShiftAdd.apply(input, weight, stride, padding, dilation)


class CompiledShiftAdd:
    """``torch.compile`` of the plain shift-and-add formulation, fresh for one benchmark case.

    Every graph dynamo hands to inductor is counted in ``compiles``: a case that runs inference
    (no grad) and training compiles exactly two, and any other count means something ran
    uncompiled or recompiled, which the benchmark reports as a failure.
    """

    def __init__(self):
        from torch._inductor.compile_fx import compile_fx

        torch._dynamo.reset()  # no cache shared with an earlier case: each case compiles its own
        self.compiles = 0

        def counting_inductor(graph, example_inputs):
            self.compiles += 1
            return compile_fx(graph, example_inputs)

        self._compiled = torch.compile(shift_add_autograd, backend=counting_inductor, dynamic=False)

    def __call__(self, input, weight, **options):
        return self._compiled(input, weight, **options)


def depthwise_conv(input, weight_conv, stride=1, padding=None, dilation=1):
    """A depthwise convolution with the same kernel size (yardstick, see the module docstring)."""
    kernel = weight_conv.shape[-2:]
    if padding is None:
        padding = tuple(dilation * (k - 1) // 2 for k in kernel)
    return F.conv2d(input, weight_conv, stride=stride, padding=padding, dilation=dilation,
                    groups=input.shape[1])


def _cupy_compile_shim(cupy) -> None:
    """CuPy 13 removed ``cupy.cuda.compile_with_cache``, which the official file calls to build
    its kernels; ``cupy.RawModule`` builds the same source (with CuPy's own cache) and its
    ``get_function`` returns the launchable function the file expects."""
    if not hasattr(cupy.cuda, "compile_with_cache"):
        cupy.cuda.compile_with_cache = lambda source, **_: cupy.RawModule(code=source)


def load_official_cupy(checkout: str):
    """The paper's CuPy op (float32 / float64, CUDA only), from ``checkout`` (never vendored).

    Its file imports mmcv for the layer class only; a stand-in module is provided when mmcv is
    absent, since the op itself does not use it.
    """
    path = os.path.join(checkout, "cls", "mmcls", "models", "utils", "involution_cuda.py")
    if not os.path.exists(path):
        raise FileNotFoundError(f"--official-checkout: {path} not found")
    import cupy

    _cupy_compile_shim(cupy)
    try:
        import mmcv.cnn  # noqa: F401
    except ImportError:
        sys.modules.setdefault("mmcv", types.ModuleType("mmcv"))
        sys.modules["mmcv.cnn"] = types.SimpleNamespace(ConvModule=None)
    spec = importlib.util.spec_from_file_location("official_involution_cuda", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    def official(x, w, stride=1, padding=None, dilation=1):
        pad = dilation * (w.shape[2] - 1) // 2 if padding is None else padding
        return module._involution_cuda(x, w, stride=stride, padding=pad, dilation=dilation)

    return official


__all__ = ["shift_add", "shift_add_autograd", "CompiledShiftAdd", "depthwise_conv", "load_official_cupy"]
