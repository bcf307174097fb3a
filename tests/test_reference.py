"""The reference itself against a literal loop over the operator's definition (README, Usage)."""
import itertools

import pytest
import torch

from conftest import GRADCHECK_PROBLEMS
from involution_cuda import reference


def involution_by_definition(x, w, problem):
    batch, channels, height, width = x.shape
    groups, kernel_h, kernel_w, out_h, out_w = w.shape[1:]
    _, (sh, sw), (ph, pw), (dh, dw) = problem.pairs()
    out = torch.zeros(batch, channels, out_h, out_w, dtype=x.dtype)
    for n, c, i, j, u, v in itertools.product(range(batch), range(channels), range(out_h), range(out_w),
                                              range(kernel_h), range(kernel_w)):
        h, col = i * sh - ph + u * dh, j * sw - pw + v * dw
        if 0 <= h < height and 0 <= col < width:
            out[n, c, i, j] += w[n, c // (channels // groups), u, v, i, j] * x[n, c, h, col]
    return out


@pytest.mark.parametrize("problem", GRADCHECK_PROBLEMS[:6], ids=str)
def test_reference_matches_definition(problem):
    x, w = problem.tensors()
    expected = involution_by_definition(x, w, problem)
    torch.testing.assert_close(reference.involution(x, w, **problem.options), expected)


def test_span_conv_output_views_into_weight():
    """Channel g*KH*KW + u*KW + v of the generated kernels is weight[:, g, u, v] (official layout)."""
    batch, groups, kernel, size = 2, 3, (3, 5), (6, 7)
    span = torch.randn(batch, groups * kernel[0] * kernel[1], *size, dtype=torch.float64)
    weight = span.view(batch, groups, *kernel, *size)
    g, u, v = 2, 1, 3
    assert torch.equal(weight[:, g, u, v], span[:, g * kernel[0] * kernel[1] + u * kernel[1] + v])


def test_default_padding_is_same_for_odd_kernels():
    x = torch.randn(1, 4, 9, 13, dtype=torch.float64)
    w = torch.randn(1, 2, 5, 3, 9, 13, dtype=torch.float64)
    assert reference.involution(x, w).shape == (1, 4, 9, 13)
