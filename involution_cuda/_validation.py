"""Argument handling of the Python entry points.

The checks of the ops' tensors and options live in one place, C++ (``csrc/checks.cpp``): the
kernels run them, and the Python entry points that run no kernel (fake kernels, reference,
decomposition) call the very same code through ``_C``, so every entry point raises the same
``ValueError`` / ``TypeError`` with the same message. What is left here is what only Python
callers have: values that must be tensors, ints or pairs where a raw op's schema would reject
them, the default padding, the 1-D signature, and the layers' input check.
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple, Union

import torch

from . import _C

IntPair = Union[int, Sequence[int]]


def _is_int(value) -> bool:
    return isinstance(value, (int, torch.SymInt)) and not isinstance(value, bool)


def output_size(input_size, kernel_size, stride: int, padding: int, dilation: int):
    """Output positions along one axis: ``(in + 2p - (d(k-1) + 1)) // s + 1``.

    The Python twin of ``output_size`` in ``csrc/involution_index.h`` (the kernels' and the
    checks' formula), for tests, benchmarks and the 1-D layer; ``tests/test_errors.py`` checks
    that the two agree."""
    return (input_size + 2 * padding - (dilation * (kernel_size - 1) + 1)) // stride + 1


def default_padding(kernel_size, dilation) -> List[int]:
    """``dilation * (kernel - 1) // 2`` per axis: "same" at stride 1 for odd kernels."""
    if len(kernel_size) == 2 and len(dilation) == 2:  # no comprehension: every call pays it cold
        return [dilation[0] * (kernel_size[0] - 1) // 2, dilation[1] * (kernel_size[1] - 1) // 2]
    return [d * (k - 1) // 2 for k, d in zip(kernel_size, dilation)]


def to_pair(value: IntPair, name: str) -> List[int]:
    """``3`` -> ``[3, 3]``; a sequence of ints is kept (the ops check that it has two). Anything
    else is a TypeError naming the argument."""
    if type(value) is int:  # the common case, without a call: cold, each one costs microseconds
        return [value, value]
    if _is_int(value):
        return [value, value]
    if isinstance(value, (tuple, list, torch.Size)) and all(_is_int(v) for v in value):
        return list(value)
    raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}")


def exact_pair(value: IntPair, name: str) -> Tuple[int, int]:
    """:func:`to_pair` for arguments that no op checks later (the layers' options)."""
    pair = to_pair(value, name)
    if len(pair) != 2:
        raise ValueError(f"{name} must have 2 elements (height, width), got {len(pair)}")
    return pair[0], pair[1]


def require_tensor(value, name: str) -> None:
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")


def normalize_options(input, weight, stride: IntPair, padding: Optional[IntPair],
                      dilation: IntPair) -> Tuple[List[int], List[int], List[int]]:
    """(stride, padding, dilation) as the ops take them; padding defaults to
    ``dilation * (kernel - 1) // 2`` per axis, the kernel size read from ``weight``."""
    require_tensor(input, "input")
    require_tensor(weight, "weight")
    stride, dilation = to_pair(stride, "stride"), to_pair(dilation, "dilation")
    if padding is None:
        # A weight of the wrong rank gets a placeholder; the op's checks then name the problem.
        kernel_size = weight.shape[2:4] if weight.dim() == 6 else (1, 1)
        return stride, default_padding(kernel_size, dilation), dilation
    return stride, to_pair(padding, "padding"), dilation


def check_involution(input, weight, stride, padding,
                     dilation) -> Tuple[List[int], List[int], List[int]]:
    """The checks of ``involution`` (the op's own, from C++), for entry points that compute the
    result without the op; returns the options as :func:`normalize_options`. Compiled code skips
    the C++ checks: the compiler sees no call it can trace."""
    stride, padding, dilation = normalize_options(input, weight, stride, padding, dilation)
    if not torch.compiler.is_compiling():
        _C.check_forward(input, weight, stride, padding, dilation, "auto")
    return stride, padding, dilation


def to_int(value, name: str) -> int:
    if not _is_int(value):
        raise TypeError(f"{name} must be an int, got {value!r}")
    return value


def check_involution1d_args(input, weight, stride, padding, dilation, causal: bool):
    """The 1-D signature's own checks (ranks, ints, causal padding, output length); the checks
    shared with the 2-D op (dtypes, devices, batch, groups) run in the op. Returns (stride,
    padding as (left, right), dilation)."""
    for tensor, name, layout in ((input, "input", "(batch, channels, length)"),
                                 (weight, "weight", "(batch, groups, kernel, out_length)")):
        require_tensor(tensor, name)
        if tensor.dim() != layout.count(",") + 1:
            raise ValueError(f"{name} must be a {layout.count(',') + 1}-D tensor {layout}, "
                             f"got shape {tuple(tensor.shape)}")
    stride, dilation = to_int(stride, "stride"), to_int(dilation, "dilation")
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    if dilation < 1:
        raise ValueError(f"dilation must be >= 1, got {dilation}")
    kernel = weight.shape[2]
    if kernel < 1:
        raise ValueError(f"weight's kernel size (shape[2]) must be >= 1, got {kernel}")
    reach = dilation * (kernel - 1)
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
    out_length = output_size(padded, kernel, stride, 0, dilation)
    if weight.shape[3] != out_length:
        raise ValueError(f"weight.shape[3] must equal the output length {out_length} for input "
                         f"length {input.shape[2]}, kernel {kernel}, stride {stride}, "
                         f"padding ({left}, {right}), dilation {dilation}; got {weight.shape[3]}")
    return stride, (left, right), dilation


def check_layer_input(x, channels: int, layout: str) -> None:
    """A layer's input: a floating-point tensor of shape `layout` with `channels` channels."""
    require_tensor(x, "input")
    ndim = layout.count(",") + 1
    if x.dim() != ndim or x.shape[1] != channels:
        raise ValueError(f"input must have shape {layout}, got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"input must be a floating-point tensor, got {x.dtype}")
