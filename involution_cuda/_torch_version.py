"""The compiled extension works only with the torch it was built against: check before loading
it, so that a mismatch is a clear ImportError rather than an undefined-symbol error."""
from __future__ import annotations

import torch

REBUILD = ("pip install --no-build-isolation --no-deps --force-reinstall involution-cuda "
           "(in a source checkout: pip install --no-build-isolation -e .)")


def require_build_torch(built_against: str, running: str = torch.__version__) -> None:
    if built_against != running:
        raise ImportError(
            f"involution_cuda was built against torch {built_against}, but torch {running} is "
            f"installed; rebuild it for this torch: {REBUILD}")
