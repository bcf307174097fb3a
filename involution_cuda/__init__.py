"""involution_cuda: the involution operator (Li et al., CVPR 2021) as compiled PyTorch ops.

    from involution_cuda import involution, Involution          # images (B, C, H, W)
    from involution_cuda import involution1d, Involution1d      # sequences (B, C, L)
    involution_cuda.models.rednet50()                            # RedNet (imported on first use)
"""
import torch  # noqa: F401  (must load before the compiled extension: it provides libc10)

from . import flops, reference  # flops registers the FLOP formulas
from ._validation import output_size
from .functional import involution, involution1d
from .module import Involution
from .module1d import Involution1d
from .ops import cpu_capability, has_cuda_kernels

__all__ = [
    "involution", "involution1d", "Involution", "Involution1d", "reference", "has_cuda_kernels",
    "cpu_capability", "output_size",
]
__version__ = "0.1.0"


def __getattr__(name):
    # involution_cuda.models is imported on first use, so that importing the op stays light.
    if name == "models":
        import importlib

        return importlib.import_module(".models", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
