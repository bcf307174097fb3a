"""The standard-op decomposition (ONNX export, benchmark baseline) against the reference."""
import pytest
import torch

from conftest import GRADCHECK_PROBLEMS
from involution_cuda import decomposition, reference


@pytest.mark.parametrize("problem", GRADCHECK_PROBLEMS, ids=str)
def test_decomposition_matches_reference(problem):
    x, w = problem.tensors(requires_grad=True)
    out = decomposition.involution(x, w, **problem.options)
    expected = reference.involution(x, w, **problem.options)
    torch.testing.assert_close(out, expected)
    grad_out = torch.randn_like(out)
    torch.testing.assert_close(torch.autograd.grad(out, (x, w), grad_out),
                               torch.autograd.grad(expected, (x, w), grad_out))
