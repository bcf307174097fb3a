"""involution_cuda: the involution operator (Li et al., CVPR 2021) as compiled PyTorch ops.

    from involution_cuda import involution, Involution          # images (B, C, H, W)
    from involution_cuda import involution1d, Involution1d      # sequences (B, C, L)
"""
import torch  # noqa: F401  (must load before the compiled extension: it provides libc10)

from . import flops, reference  # flops registers the FLOP formulas
from ._validation import output_size
from .functional import involution, involution1d
from .module import Involution
from .module1d import Involution1d
from .ops import has_cuda_kernels

__all__ = [
    "involution", "involution1d", "Involution", "Involution1d", "reference", "has_cuda_kernels",
    "output_size",
]
__version__ = "0.1.0"
