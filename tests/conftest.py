"""Shared fixtures: the devices under test, per-dtype tolerances, random problem builders."""
from __future__ import annotations

import dataclasses
from typing import Optional, Tuple, Union

import pytest
import torch

import involution_cuda
from involution_cuda import output_size
from involution_cuda._validation import default_padding, to_pair

# CUDA tests run exactly when this build has CUDA kernels and a GPU is there; else they skip.
CUDA_READY = involution_cuda.has_cuda_kernels() and torch.cuda.is_available()
needs_gpu = pytest.mark.skipif(not CUDA_READY, reason="needs a GPU and a build with CUDA kernels")

TORCH_VERSION = tuple(int(part) for part in torch.__version__.split("+")[0].split(".")[:2])


def needs_torch(version, why: str):
    """Skips a test of a feature that torch releases before `version` lack (README, "Supported
    torch versions"); scripts/check_torch_versions.sh runs the suite on such releases."""
    return pytest.mark.skipif(TORCH_VERSION < version,
                              reason=f"needs torch >= {'.'.join(map(str, version))}: {why}")


# Every device-parametrised test runs on these.
DEVICES = ["cpu", pytest.param("cuda", marks=needs_gpu)]

# Tolerances (rtol, atol) of each dtype against the float64 reference (fed the same rounded
# inputs), in one place. Half types accumulate in float32, so their error is the rounding of the
# result: at most half an ulp, 2^-11 (float16) or 2^-8 (bfloat16) relative; measured on the
# REALISTIC and GRADCHECK problems (forward and both gradients) at most 4.6e-4 and 3.7e-3. The
# half tolerances are about twice that, tight enough that a sum rounded to half at every step
# fails them (tests/test_tolerances.py).
TOLERANCES = {
    torch.float64: (1e-10, 1e-10),
    torch.float32: (1e-4, 1e-4),
    torch.float16: (1e-3, 1e-3),
    torch.bfloat16: (8e-3, 8e-3),
}


@dataclasses.dataclass
class Problem:
    """One involution problem: shapes and options (ints or pairs, as a user passes them)."""

    batch: int
    channels: int
    groups: int
    size: Tuple[int, int]
    kernel: Tuple[int, int]
    stride: Union[int, Tuple[int, int]] = 1
    padding: Optional[Union[int, Tuple[int, int]]] = None
    dilation: Union[int, Tuple[int, int]] = 1

    @property
    def options(self):
        return dict(stride=self.stride, padding=self.padding, dilation=self.dilation)

    def pairs(self):
        """Kernel, stride, padding and dilation as (height, width) pairs, padding defaulted."""
        kernel, stride = to_pair(self.kernel, "kernel"), to_pair(self.stride, "stride")
        dilation = to_pair(self.dilation, "dilation")
        padding = default_padding(kernel, dilation) if self.padding is None else to_pair(self.padding, "padding")
        return kernel, stride, padding, dilation

    def output_size(self):
        return tuple(output_size(*axis) for axis in zip(self.size, *self.pairs()))

    def tensors(self, dtype=torch.float64, device="cpu", requires_grad=False, seed=0):
        """Random input (B, C, H, W) and weight (B, G, KH, KW, Ho, Wo)."""
        generator = torch.Generator().manual_seed(seed)
        out_h, out_w = self.output_size()
        x = torch.randn(self.batch, self.channels, *self.size, generator=generator, dtype=torch.float64)
        w = torch.randn(self.batch, self.groups, *self.kernel, out_h, out_w, generator=generator,
                        dtype=torch.float64)
        x, w = (t.to(device=device, dtype=dtype).requires_grad_(requires_grad) for t in (x, w))
        return x, w

    def __str__(self):
        return (f"B{self.batch}C{self.channels}G{self.groups}-{self.size[0]}x{self.size[1]}"
                f"-k{self.kernel}-s{self.stride}-p{self.padding}-d{self.dilation}")


# Small odd, non-square problems for float64 gradcheck. Together they cover stride (1,2)/(2,1),
# dilation (1,2)/(2,1), rectangular and even kernels, zero / unequal / oversized padding,
# G = 1 and G = C, output 1x1.
GRADCHECK_PROBLEMS = [
    Problem(2, 4, 2, (7, 9), (3, 5), stride=(1, 2), dilation=(2, 1)),
    Problem(1, 6, 3, (9, 11), (3, 5), stride=(2, 1), padding=0, dilation=(1, 2)),
    Problem(2, 3, 1, (5, 8), (3, 3), padding=0),
    Problem(1, 4, 4, (6, 5), (5, 3), stride=2, padding=(1, 2)),
    Problem(2, 2, 2, (8, 5), (1, 3), stride=(1, 2), padding=(0, 1)),
    Problem(1, 4, 2, (11, 6), (3, 2), stride=(2, 1), padding=(2, 0), dilation=(2, 3)),
    Problem(1, 3, 3, (5, 5), (2, 2), padding=(1, 0)),
    Problem(2, 4, 1, (4, 7), (4, 3), stride=(3, 2), padding=(3, 1), dilation=(1, 2)),
    Problem(1, 2, 1, (3, 3), (3, 3), padding=0),
    Problem(1, 8, 2, (10, 9), (7, 7), stride=2),
    Problem(1, 2, 2, (2, 3), (3, 3), padding=(2, 2), dilation=(2, 1)),
    Problem(1, 5, 5, (7, 4), (3, 1), stride=(2, 3), padding=(1, 0), dilation=(3, 1)),
]

# Realistic shapes for float32 / half comparisons against the reference; widths cover several
# CPU tiles with a tail, and rows narrow enough for the half-width tiles.
REALISTIC_PROBLEMS = [
    Problem(2, 64, 4, (28, 28), (7, 7)),
    Problem(2, 32, 2, (29, 17), (3, 5), stride=(1, 2), dilation=(2, 1)),
    Problem(1, 48, 3, (15, 33), (5, 3), stride=(2, 1), padding=(1, 2), dilation=(1, 3)),
    Problem(3, 16, 16, (14, 9), (7, 7), stride=2),
    Problem(3, 64, 4, (7, 7), (7, 7)),  # rows of <= 8 floats take the half-width CPU tiles
    Problem(2, 24, 3, (6, 8), (3, 5), dilation=(2, 1)),
]


# Layouts a weight (B, G, KH, KW, Ho, Wo) can come in; the CUDA kernels read each in place.
WEIGHT_LAYOUTS = ["contiguous", "conv_nhwc_view", "strided"]


def weight_in_layout(weight, layout):
    """The same values as `weight` in `layout`:
    contiguous;
    conv_nhwc_view: the Involution layer's weight in a channels_last model, a view of a
        channels_last convolution output (B, G*KH*KW, Ho, Wo);
    strided: every dimension permuted, with gaps and a storage offset (a slice of a bigger tensor).
    """
    if layout == "contiguous":
        return weight.contiguous()
    b, g, kh, kw, ho, wo = weight.shape
    if layout == "conv_nhwc_view":
        conv_shaped = weight.reshape(b, g * kh * kw, ho, wo)
        return conv_shaped.contiguous(memory_format=torch.channels_last).view(weight.shape)
    assert layout == "strided", layout
    base = torch.empty(wo, kh, b, kw + 1, g, 2 * ho, dtype=weight.dtype, device=weight.device)
    view = base.permute(2, 4, 1, 3, 5, 0)[:, :, :, 1:, ::2]
    return view.copy_(weight)


def assert_close(actual, expected, dtype):
    rtol, atol = TOLERANCES[dtype]
    torch.testing.assert_close(actual.double().cpu(), expected.double().cpu(), rtol=rtol, atol=atol)
