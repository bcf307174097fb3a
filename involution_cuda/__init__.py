"""involution_cuda: the involution operator (Li et al., CVPR 2021) as compiled PyTorch ops.

    from involution_cuda import involution, Involution
"""
import torch  # noqa: F401  (must load before the compiled extension: it provides libc10)

from . import flops, reference  # flops registers the FLOP formulas
from .functional import involution
from .module import Involution
from .ops import has_cuda_kernels

__all__ = ["involution", "Involution", "reference", "has_cuda_kernels"]
__version__ = "0.1.0"
