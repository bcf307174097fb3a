"""The public functional API: ``involution`` (images) and ``involution1d`` (sequences)."""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from . import decomposition
from ._validation import IntPair, check_involution1d_args, normalize_options


def _exporting_to_onnx() -> bool:
    """``torch.onnx.is_in_onnx_export()``, asked only where an export can be running: while
    compiling (torch.export, which the dynamo-based exporter runs) or tracing (the TorchScript
    exporter). It imports two modules at every call, tens of microseconds when the caches are cold,
    as they are for a layer's call in a network."""
    return ((torch.compiler.is_compiling() or torch._C._get_tracing_state() is not None)
            and torch.onnx.is_in_onnx_export())

def involution(
    input: torch.Tensor,
    weight: torch.Tensor,
    stride: IntPair = 1,
    padding: Optional[IntPair] = None,
    dilation: IntPair = 1,
    kernels: str = "auto",
) -> torch.Tensor:
    r"""Involution of ``input`` with per-pixel, per-group kernels ``weight`` (compiled kernels).

    .. math::
        out[n, c, i, j] = \sum_{u, v} weight[n, g(c), u, v, i, j]\,
            input[n, c, i s_h - p_h + u d_h, j s_w - p_w + v d_w]

    with zero padding and ``g(c) = c // (C // G)`` (contiguous channel groups).

    Args:
        input: ``(B, C, H, W)``, float16/bfloat16/float32/float64, any memory format (the output
            keeps a channels_last input's format).
        weight: ``(B, G, KH, KW, Ho, Wo)`` with ``C % G == 0`` and ``(Ho, Wo)`` the output size;
            same dtype and device as ``input``. A span-conv output of shape
            ``(B, G*KH*KW, Ho, Wo)`` ``.view``\ s into it.
        stride, padding, dilation: an int or an (height, width) pair. ``padding`` defaults to
            ``dilation * (kernel - 1) // 2`` per axis ("same" at stride 1 for odd kernels).
        kernels: the CUDA kernels to run, ``"auto"``, ``"baseline"`` or ``"fast"`` (CPU tensors
            always run the CPU kernels). ``"auto"`` follows a fixed rule of the device alone (see
            the README); the backward of this call runs the same choice.

    Returns:
        ``(B, C, Ho, Wo)``, differentiable in ``input`` and ``weight`` (to any order).

    Under ``torch.autocast`` the op runs in the autocast dtype (its Autocast kernel casts every
    floating-point tensor but float64; kernels accumulate in float32). During ONNX export the
    operator is written with standard ops (:mod:`involution_cuda.decomposition`), so the
    exported graph needs no custom operator.
    """
    stride, padding, dilation = normalize_options(input, weight, stride, padding, dilation)
    return call_op(input, weight, stride, padding, dilation, kernels)


def call_op(input, weight, stride, padding, dilation, kernels) -> torch.Tensor:
    """The op with its options as pairs of ints (:func:`involution` after normalising them, or
    the layer with its own, checked when it was made); while exporting to ONNX, the standard-op
    formulation instead, so that the exported graph needs no custom operator."""
    if _exporting_to_onnx():
        return decomposition.involution(input, weight, stride, padding, dilation)
    return torch.ops.involution_cuda.involution(input, weight, stride, padding, dilation, kernels)


def involution1d(
    input: torch.Tensor,
    weight: torch.Tensor,
    stride: int = 1,
    padding: Optional[int] = None,
    dilation: int = 1,
    causal: bool = False,
    kernels: str = "auto",
) -> torch.Tensor:
    r"""Involution over sequences: :func:`involution` with height 1.

    .. math::
        out[n, c, t] = \sum_{k} weight[n, g(c), k, t]\, input[n, c, t s - p + k d]

    Args:
        input: ``(B, C, L)``.
        weight: ``(B, G, K, Lo)``, ``C % G == 0``, ``Lo`` the output length.
        stride, padding, dilation: ints; ``padding`` defaults to ``dilation * (K - 1) // 2``.
        causal: pad ``dilation * (K - 1)`` on the left only (and nothing on the right), so output
            ``t`` sees inputs up to ``t * stride`` and never later ones; ``padding`` must be None.
        kernels: the CUDA kernels, as in :func:`involution`.

    Returns:
        ``(B, C, Lo)``. Runs the 2-D kernels on height-1 views (same dtypes, gradients, AMP,
        ``torch.compile`` behaviour and errors).
    """
    stride, (left, right), dilation = check_involution1d_args(input, weight, stride, padding,
                                                              dilation, causal)
    if left != right:  # causal: the op pads symmetrically, so the left padding is made explicit
        input = F.pad(input, (left, right))
        left = 0
    return involution(input.unsqueeze(2), weight.unsqueeze(2).unsqueeze(4), (1, stride),
                      (0, left), (1, dilation), kernels).squeeze(2)
