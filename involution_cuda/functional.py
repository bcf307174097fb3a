"""The public functional API: ``involution(input, weight, stride, padding, dilation)``."""
from __future__ import annotations

from typing import Optional

import torch

from . import ops
from ._validation import IntPair, check_involution_args


def involution(
    input: torch.Tensor,
    weight: torch.Tensor,
    stride: IntPair = 1,
    padding: Optional[IntPair] = None,
    dilation: IntPair = 1,
) -> torch.Tensor:
    r"""Involution of ``input`` with per-pixel, per-group kernels ``weight`` (compiled kernels).

    .. math::
        out[n, c, i, j] = \sum_{u, v} weight[n, g(c), u, v, i, j]\,
            input[n, c, i s_h - p_h + u d_h, j s_w - p_w + v d_w]

    with zero padding and ``g(c) = c // (C // G)`` (contiguous channel groups).

    Args:
        input: ``(B, C, H, W)``, float16/bfloat16/float32/float64.
        weight: ``(B, G, KH, KW, Ho, Wo)`` with ``C % G == 0`` and ``(Ho, Wo)`` the output size;
            same dtype and device as ``input``. A span-conv output of shape
            ``(B, G*KH*KW, Ho, Wo)`` ``.view``\ s into it.
        stride, padding, dilation: an int or an (height, width) pair. ``padding`` defaults to
            ``dilation * (kernel - 1) // 2`` per axis ("same" at stride 1 for odd kernels).

    Returns:
        ``(B, C, Ho, Wo)``, differentiable in ``input`` and ``weight`` (to any order).
    """
    stride, padding, dilation = check_involution_args(input, weight, stride, padding, dilation)
    return ops.ops.involution(input, weight, list(stride), list(padding), list(dilation))
