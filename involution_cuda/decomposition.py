"""Involution from standard PyTorch ops, without unfold: one multiply-add per kernel tap over
shifted, strided views of the zero-padded input.

It is what ``involution`` becomes during ONNX export (so the exported graph holds only standard
ONNX operators), and the best pure-PyTorch formulation the benchmarks compare against. It keeps
one full-size temporary per tap alive for backward, but no patch buffer.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from ._validation import IntPair, check_involution


def involution(
    input: torch.Tensor,
    weight: torch.Tensor,
    stride: IntPair = 1,
    padding: Optional[IntPair] = None,
    dilation: IntPair = 1,
) -> torch.Tensor:
    """Same arguments and result as :func:`involution_cuda.involution`."""
    (sh, sw), (ph, pw), (dh, dw) = check_involution(input, weight, stride, padding, dilation)
    batch, channels = input.shape[:2]
    groups, kernel_h, kernel_w, out_h, out_w = weight.shape[1:]
    padded = F.pad(input, (pw, pw, ph, ph))
    padded = padded.reshape(batch, groups, channels // groups, *padded.shape[2:])
    out = None
    for u in range(kernel_h):
        for v in range(kernel_w):
            shifted = padded[..., u * dh: u * dh + (out_h - 1) * sh + 1: sh,
                             v * dw: v * dw + (out_w - 1) * sw + 1: sw]
            term = weight[:, :, u, v].unsqueeze(2) * shifted
            out = term if out is None else out + term
    return out.reshape(batch, channels, out_h, out_w)
