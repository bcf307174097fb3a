"""The compiled involution ops as PyTorch sees them from Python: the library is loaded (its
schemas, kernels, Autocast and autograd kernels register from C++: csrc/ops.cpp, csrc/autograd/)
and the fake kernels, which compiled graphs trace, are registered here.

The three ops are bilinear, and each one's derivative is expressed with the others
(csrc/autograd/involution_autograd.cpp), so gradients of any order need no further kernels.
Every op carries its CUDA kernel choice (``kernels``) and the backward of each passes it on
unchanged, so a forward and its backward always run the same kernel set, whatever any other call
or thread chooses in between.
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
