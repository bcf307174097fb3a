"""Pure-PyTorch (unfold) involution: the ground truth of the tests and the benchmarks' baseline.

It materialises every input patch (a ``(B, C*KH*KW, Ho*Wo)`` buffer), which is exactly the memory
cost the compiled kernels avoid.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from ._validation import IntPair, check_involution_args


def involution(
    input: torch.Tensor,
    weight: torch.Tensor,
    stride: IntPair = 1,
    padding: Optional[IntPair] = None,
    dilation: IntPair = 1,
) -> torch.Tensor:
    """Same arguments and result as :func:`involution_cuda.involution`, computed with unfold."""
    stride, padding, dilation = check_involution_args(input, weight, stride, padding, dilation)
    batch, channels = input.shape[:2]
    groups, kernel_h, kernel_w, out_h, out_w = weight.shape[1:]
    patches = F.unfold(input, (kernel_h, kernel_w), dilation=dilation, padding=padding, stride=stride)
    patches = patches.view(batch, groups, channels // groups, kernel_h * kernel_w, out_h, out_w)
    kernels = weight.reshape(batch, groups, 1, kernel_h * kernel_w, out_h, out_w)
    return (kernels * patches).sum(dim=3).view(batch, channels, out_h, out_w)
