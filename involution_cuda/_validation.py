"""Argument checks shared by every Python entry point (functional API, reference, fake kernels).

Each check raises ``TypeError`` or ``ValueError`` whose message names the argument and says what
was expected. The compiled ops repeat the checks that protect memory (csrc/checks.cpp).
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple, Union

import torch

IntPair = Union[int, Sequence[int]]
Pair = Tuple[int, int]

FLOATING_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def to_pair(value: IntPair, name: str) -> Pair:
    """``3`` -> ``(3, 3)``; a sequence of two ints is kept. Anything else is a TypeError."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}")
    if isinstance(value, int):
        return (value, value)
    if isinstance(value, (tuple, list, torch.Size)):
        if len(value) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}")
        return (int(value[0]), int(value[1]))
    raise TypeError(f"{name} must be an int or a pair of ints, got {type(value).__name__}")


def output_size(input_size: int, kernel_size: int, stride: int, padding: int, dilation: int) -> int:
    return (input_size + 2 * padding - (dilation * (kernel_size - 1) + 1)) // stride + 1


def check_tensor(tensor, name: str, ndim: int, layout: str) -> None:
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(tensor).__name__}")
    if tensor.dim() != ndim:
        raise ValueError(f"{name} must be a {ndim}-D tensor {layout}, got shape {tuple(tensor.shape)}")
    if tensor.dtype not in FLOATING_DTYPES:
        raise TypeError(
            f"{name} must be float16, bfloat16, float32 or float64, got {tensor.dtype}"
        )


def check_same(a: torch.Tensor, a_name: str, b: torch.Tensor, b_name: str) -> None:
    if a.dtype != b.dtype:
        raise TypeError(f"{a_name} and {b_name} must have the same dtype, got {a.dtype} and {b.dtype}")
    if a.device != b.device:
        raise ValueError(
            f"{a_name} and {b_name} must be on the same device, got {a.device} and {b.device}"
        )
    if a.shape[0] != b.shape[0]:
        raise ValueError(
            f"{a_name} and {b_name} must have the same batch size, got {a.shape[0]} and {b.shape[0]}"
        )


def normalize_options(
    kernel_size: Pair,
    stride: IntPair,
    padding: Optional[IntPair],
    dilation: IntPair,
) -> Tuple[Pair, Pair, Pair]:
    """Pairs for stride, padding and dilation; padding defaults to ``dilation*(kernel-1)//2``."""
    stride = to_pair(stride, "stride")
    dilation = to_pair(dilation, "dilation")
    if min(stride) < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    if min(dilation) < 1:
        raise ValueError(f"dilation must be >= 1, got {dilation}")
    if padding is None:
        padding = tuple(d * (k - 1) // 2 for k, d in zip(kernel_size, dilation))
    padding = to_pair(padding, "padding")
    if min(padding) < 0:
        raise ValueError(f"padding must be >= 0, got {padding}")
    return stride, padding, dilation


def output_shape(
    input_hw: Pair, kernel_size: Pair, stride: Pair, padding: Pair, dilation: Pair
) -> Pair:
    """Output (height, width); a ValueError when the dilated kernel exceeds the padded input."""
    sizes = []
    for axis, in_size, k, s, p, d in zip(("height", "width"), input_hw, kernel_size, stride, padding, dilation):
        extent = d * (k - 1) + 1
        if extent > in_size + 2 * p:
            raise ValueError(
                f"the dilated kernel extent {extent} along {axis} exceeds the padded input size "
                f"{in_size + 2 * p} (input {in_size}, padding {p})"
            )
        sizes.append(output_size(in_size, k, s, p, d))
    return sizes[0], sizes[1]


def check_groups(channels: int, groups: int) -> None:
    if groups < 1:
        raise ValueError(f"weight.shape[1] (groups) must be >= 1, got {groups}")
    if channels % groups != 0:
        raise ValueError(
            f"the number of input channels ({channels}) must be divisible by the number of "
            f"groups weight.shape[1] ({groups})"
        )


def check_involution_args(
    input: torch.Tensor,
    weight: torch.Tensor,
    stride: IntPair,
    padding: Optional[IntPair],
    dilation: IntPair,
) -> Tuple[Pair, Pair, Pair]:
    """Validates the arguments of ``involution`` and returns normalised (stride, padding, dilation)."""
    check_tensor(input, "input", 4, "(batch, channels, height, width)")
    check_tensor(weight, "weight", 6, "(batch, groups, kernel_h, kernel_w, out_h, out_w)")
    check_same(input, "input", weight, "weight")
    check_groups(input.shape[1], weight.shape[1])
    kernel_size = (weight.shape[2], weight.shape[3])
    if min(kernel_size) < 1:
        raise ValueError(f"weight's kernel size (shape[2:4]) must be >= 1, got {kernel_size}")
    stride, padding, dilation = normalize_options(kernel_size, stride, padding, dilation)
    expected = output_shape(tuple(input.shape[2:]), kernel_size, stride, padding, dilation)
    if tuple(weight.shape[4:]) != expected:
        raise ValueError(
            f"weight's spatial size (shape[4:6]) must equal the output size {expected} for input "
            f"size {tuple(input.shape[2:])}, kernel {kernel_size}, stride {stride}, padding "
            f"{padding}, dilation {dilation}; got {tuple(weight.shape[4:])}"
        )
    return stride, padding, dilation


def to_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {value!r}")
    return value


def check_involution1d_args(input, weight, stride, padding, dilation, causal: bool):
    """Validates the 1-D arguments and returns (stride, padding as (left, right), dilation)."""
    check_tensor(input, "input", 3, "(batch, channels, length)")
    check_tensor(weight, "weight", 4, "(batch, groups, kernel, out_length)")
    check_same(input, "input", weight, "weight")
    check_groups(input.shape[1], weight.shape[1])
    stride, dilation = to_int(stride, "stride"), to_int(dilation, "dilation")
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    if dilation < 1:
        raise ValueError(f"dilation must be >= 1, got {dilation}")
    if weight.shape[2] < 1:
        raise ValueError(f"weight's kernel size (shape[2]) must be >= 1, got {weight.shape[2]}")
    reach = dilation * (weight.shape[2] - 1)
    if causal:
        if padding is not None:
            raise ValueError("padding must be None when causal=True (the causal padding is "
                             f"dilation * (kernel - 1) = {reach} on the left), got {padding!r}")
        left, right = reach, 0
    else:
        padding = reach // 2 if padding is None else to_int(padding, "padding")
        if padding < 0:
            raise ValueError(f"padding must be >= 0, got {padding}")
        left = right = padding
    padded = input.shape[2] + left + right
    if reach + 1 > padded:
        raise ValueError(f"the dilated kernel extent {reach + 1} exceeds the padded input length "
                         f"{padded} (input {input.shape[2]}, padding ({left}, {right}))")
    out_length = (padded - reach - 1) // stride + 1
    if weight.shape[3] != out_length:
        raise ValueError(f"weight.shape[3] must equal the output length {out_length} for input "
                         f"length {input.shape[2]}, kernel {weight.shape[2]}, stride {stride}, "
                         f"padding ({left}, {right}), dilation {dilation}; got {weight.shape[3]}")
    return stride, (left, right), dilation


def check_layer_input(x, channels: int, layout: str) -> None:
    """A layer's input: a floating-point tensor of shape `layout` with `channels` channels."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"input must be a torch.Tensor, got {type(x).__name__}")
    ndim = layout.count(",") + 1
    if x.dim() != ndim or x.shape[1] != channels:
        raise ValueError(f"input must have shape {layout}, got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"input must be a floating-point tensor, got {x.dtype}")
