"""``Involution``: the paper's layer (§3.2), kernels generated from the input itself."""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from . import reference
from ._validation import IntPair, check_layer_input, default_padding, exact_pair
from .functional import call_op

BACKENDS = ("native", "reference")


class ConvModule(nn.Module):
    """Convolution with optional BatchNorm and ReLU; attribute names follow mmcv's ConvModule
    (``conv``, ``bn``) so that official RedNet checkpoints load unchanged. The convolution has a
    bias only without BatchNorm (mmcv's ``bias="auto"``)."""

    def __init__(self, in_channels: int, out_channels: int, norm: bool = True,
                 activation: bool = True, kernel_size: int = 1, stride: int = 1, padding: int = 0):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, bias=not norm)
        self.bn = nn.BatchNorm2d(out_channels) if norm else None
        self.activate = nn.ReLU(inplace=True) if activation else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        if self.activate is not None:
            x = self.activate(x)
        return x


class CeilAvgPool(nn.Module):
    """``nn.AvgPool2d(stride, stride, ceil_mode=True)``: the mean over the in-bounds part of each
    stride-sized window, so odd sizes give ``ceil(size / stride)`` outputs.

    Computed as an exact-fit pool of the input zero-padded to a multiple of the stride, rescaled
    by each window's in-bounds count: same values, but no partial windows for a compiler to
    differentiate (torch.compile's inductor in torch 2.13 returns wrong input gradients for
    ``ceil_mode`` pooling with overhanging windows), and no branch on the input size, so a graph
    compiled with dynamic shapes serves every size.
    """

    def __init__(self, stride):
        super().__init__()
        self.stride = tuple(stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (sh, sw), (height, width) = self.stride, x.shape[-2:]
        # Floor division, not %: inductor (torch 2.13) fails on a modulo of symbolic sizes.
        pad_h, pad_w = (height + sh - 1) // sh * sh - height, (width + sw - 1) // sw * sw - width
        padded = F.pad(x, (0, pad_w, 0, pad_h))
        sums = F.avg_pool2d(padded, self.stride, self.stride) * (sh * sw)
        rows = (height - torch.arange(0, height, sh, device=x.device)).clamp(max=sh)
        cols = (width - torch.arange(0, width, sw, device=x.device)).clamp(max=sw)
        return sums / (rows[:, None] * cols[None, :]).to(sums.dtype)


class Involution(nn.Module):
    """Involution layer: ``weight = span(ReLU(BN(reduce(pool(x)))))``, then the involution op.

    Args:
        channels: input (and output) channels; a multiple of ``group_channels``.
        kernel_size: odd int or (height, width) pair of odd ints.
        stride: int or pair; the kernel generator sees a stride-sized average pool of the input
            that keeps partial windows (``ceil_mode=True``), so odd input sizes work.
        group_channels: channels sharing one generated kernel; ``G = channels // group_channels``.
        reduction_ratio: the bottleneck of the kernel generator has ``channels // reduction_ratio``
            channels.
        dilation: int or pair; padding is ``dilation * (kernel - 1) // 2`` ("same" at stride 1).
        backend: ``"native"`` (compiled kernels) or ``"reference"`` (pure PyTorch, unfold).
        kernels: the CUDA kernels of the native backend (see :func:`involution_cuda.involution`).

    Sub-module names (``conv1.conv``, ``conv1.bn``, ``conv2.conv``) follow the official code.
    """

    def __init__(
        self,
        channels: int,
        kernel_size: IntPair = 7,
        stride: IntPair = 1,
        group_channels: int = 16,
        reduction_ratio: int = 4,
        dilation: IntPair = 1,
        backend: str = "native",
        kernels: str = "auto",
    ):
        super().__init__()
        for name, value in (("channels", channels), ("group_channels", group_channels),
                            ("reduction_ratio", reduction_ratio)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if channels % group_channels != 0:
            raise ValueError(
                f"channels ({channels}) must be divisible by group_channels ({group_channels})"
            )
        if channels // reduction_ratio < 1:
            raise ValueError(
                f"channels // reduction_ratio must be >= 1, got {channels} // {reduction_ratio}"
            )
        self.kernel_size = exact_pair(kernel_size, "kernel_size")
        self.stride = exact_pair(stride, "stride")
        self.dilation = exact_pair(dilation, "dilation")
        if any(k < 1 or k % 2 == 0 for k in self.kernel_size):
            raise ValueError(f"kernel_size must be odd and positive, got {kernel_size!r}")
        if min(self.stride) < 1 or min(self.dilation) < 1:
            raise ValueError(f"stride and dilation must be >= 1, got {stride!r} and {dilation!r}")
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        self.kernels = kernels  # checked by the op (csrc/checks.cpp), as every argument of it
        self.channels = channels
        self.group_channels = group_channels
        self.groups = channels // group_channels
        self.padding = tuple(default_padding(self.kernel_size, self.dilation))
        self.backend = backend
        self.conv1 = ConvModule(channels, channels // reduction_ratio, norm=True, activation=True)
        self.conv2 = ConvModule(
            channels // reduction_ratio,
            self.kernel_size[0] * self.kernel_size[1] * self.groups,
            norm=False,
            activation=False,
        )
        self.avgpool: Optional[nn.Module] = CeilAvgPool(self.stride) if max(self.stride) > 1 else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_layer_input(x, self.channels, f"(batch, {self.channels}, height, width)")
        pooled = x if self.avgpool is None else self.avgpool(x)
        weight = self.conv2(self.conv1(pooled))
        batch, _, out_h, out_w = weight.shape
        weight = weight.view(batch, self.groups, self.kernel_size[0], self.kernel_size[1], out_h, out_w)
        if self.backend == "reference":
            return reference.involution(x, weight, self.stride, self.padding, self.dilation)
        # options checked and normalised when the layer was made (each check costs microseconds
        # per call when the caches are cold, as they are for most layers of a network)
        return call_op(x, weight, self.stride, self.padding, self.dilation, self.kernels)

    def extra_repr(self) -> str:
        return (
            f"{self.channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
            f"groups={self.groups}, dilation={self.dilation}, backend={self.backend!r}, "
            f"kernels={self.kernels!r}"
        )
