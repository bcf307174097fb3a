"""Pure-PyTorch (unfold) involution: the ground truth of the tests and the benchmarks' baseline.

It materialises every input patch (a ``(B, C*KH*KW, Ho*Wo)`` buffer), which is exactly the memory
cost the compiled kernels avoid.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from ._validation import IntPair, check_involution, check_involution1d_args


def involution(
    input: torch.Tensor,
    weight: torch.Tensor,
    stride: IntPair = 1,
    padding: Optional[IntPair] = None,
    dilation: IntPair = 1,
) -> torch.Tensor:
    """Same arguments and result as :func:`involution_cuda.involution`, computed with unfold."""
    stride, padding, dilation = check_involution(input, weight, stride, padding, dilation)
    batch, channels = input.shape[:2]
    groups, kernel_h, kernel_w, out_h, out_w = weight.shape[1:]
    patches = F.unfold(input, (kernel_h, kernel_w), dilation=dilation, padding=padding, stride=stride)
    patches = patches.view(batch, groups, channels // groups, kernel_h * kernel_w, out_h, out_w)
    kernels = weight.reshape(batch, groups, 1, kernel_h * kernel_w, out_h, out_w)
    return (kernels * patches).sum(dim=3).view(batch, channels, out_h, out_w)


def involution1d(
    input: torch.Tensor,
    weight: torch.Tensor,
    stride: int = 1,
    padding: Optional[int] = None,
    dilation: int = 1,
    causal: bool = False,
) -> torch.Tensor:
    """Same arguments and result as :func:`involution_cuda.involution1d`, with ``Tensor.unfold``
    over the padded sequence (an independent formulation, not the 2-D path)."""
    stride, (left, right), dilation = check_involution1d_args(input, weight, stride, padding,
                                                              dilation, causal)
    padded = F.pad(input, (left, right))
    # The checks shared with the 2-D op (dtypes, devices, batch, groups), on height-1 views.
    check_involution(padded.unsqueeze(2), weight.unsqueeze(2).unsqueeze(4), [1, stride], [0, 0],
                     [1, dilation])
    batch, channels, _ = input.shape
    groups, kernel, out_length = weight.shape[1:]
    extent = dilation * (kernel - 1) + 1
    windows = padded.unfold(2, extent, stride)[..., ::dilation]
    windows = windows.reshape(batch, groups, channels // groups, out_length, kernel)
    kernels = weight.permute(0, 1, 3, 2).unsqueeze(2)  # (B, G, 1, Lo, K)
    return (windows * kernels).sum(-1).reshape(batch, channels, out_length)
