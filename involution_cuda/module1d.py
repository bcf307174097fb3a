"""``Involution1d``: the involution layer for sequences (B, C, L), with an optional causal mode."""
from __future__ import annotations

import torch
from torch import nn

from . import reference
from ._validation import check_layer_input
from .functional import involution1d
from .module import CeilAvgPool

BACKENDS = ("native", "reference")


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channels of each position of a (B, C, L) sequence: its statistics
    never mix positions, so it is safe in causal models."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = nn.LayerNorm(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.transpose(1, 2)).transpose(1, 2)


class Involution1d(nn.Module):
    """Involution over sequences: per-position, per-group kernels generated from the input.

    ``weight = span(ReLU(norm(reduce(x_s))))`` with 1×1 convolutions over the sequence, where
    ``x_s`` is the input at the output positions' stride. Then :func:`involution1d`.

    Args:
        channels: input (and output) channels; a multiple of ``group_channels``.
        kernel_size: taps per kernel.
        stride, dilation: ints; non-causal padding is ``dilation * (kernel_size - 1) // 2``.
        group_channels, reduction_ratio: as in :class:`involution_cuda.Involution`.
        causal: output ``t`` depends only on inputs up to position ``t * stride``. The kernel
            generator then sees the input subsampled at the output positions (not a pooled
            window, which would include later positions) and normalises each position over its
            channels (LayerNorm); the non-causal layer uses BatchNorm and stride-sized average
            pooling, like the 2-D layer.
        backend: ``"native"`` (compiled kernels) or ``"reference"``.
        kernels: the CUDA kernels of the native backend (see :func:`involution_cuda.involution`).
    """

    def __init__(self, channels: int, kernel_size: int, stride: int = 1, group_channels: int = 16,
                 reduction_ratio: int = 4, dilation: int = 1, causal: bool = False,
                 backend: str = "native", kernels: str = "auto"):
        super().__init__()
        for name, value in (("channels", channels), ("kernel_size", kernel_size),
                            ("stride", stride), ("group_channels", group_channels),
                            ("reduction_ratio", reduction_ratio), ("dilation", dilation)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if channels % group_channels != 0:
            raise ValueError(f"channels ({channels}) must be divisible by group_channels ({group_channels})")
        if channels // reduction_ratio < 1:
            raise ValueError(f"channels // reduction_ratio must be >= 1, got {channels} // {reduction_ratio}")
        if not causal and kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd unless causal=True, got {kernel_size}")
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        self.kernels = kernels  # checked by the op (csrc/checks.cpp), as every argument of it
        self.channels, self.kernel_size, self.stride = channels, kernel_size, stride
        self.dilation, self.causal, self.backend = dilation, causal, backend
        self.groups = channels // group_channels
        hidden = channels // reduction_ratio
        self.reduce = nn.Conv1d(channels, hidden, 1, bias=False)
        self.norm = ChannelLayerNorm(hidden) if causal else nn.BatchNorm1d(hidden)
        self.activate = nn.ReLU(inplace=True)
        self.span = nn.Conv1d(hidden, kernel_size * self.groups, 1)
        # AvgPool1d(stride, ceil_mode=True) semantics on a height-1 view, compile-safe (CeilAvgPool).
        self.pool = None if causal or stride == 1 else CeilAvgPool((1, stride))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_layer_input(x, self.channels, f"(batch, {self.channels}, length)")
        if self.causal:
            context = x[..., :: self.stride]
        else:
            context = x if self.pool is None else self.pool(x.unsqueeze(2)).squeeze(2)
        weight = self.span(self.activate(self.norm(self.reduce(context))))
        batch, _, out_length = weight.shape
        weight = weight.view(batch, self.groups, self.kernel_size, out_length)
        # padding None: "same" (dilation * (kernel - 1) // 2), or the causal left padding.
        if self.backend == "reference":
            return reference.involution1d(x, weight, self.stride, None, self.dilation, self.causal)
        return involution1d(x, weight, self.stride, None, self.dilation, self.causal, self.kernels)
