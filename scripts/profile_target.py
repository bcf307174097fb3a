"""One forward + backward per CUDA kernel variant at the RedNet-50 stage-1 shape (batch 64), for
Nsight Compute (scripts/gpu_suite.sh profiles every involution kernel this launches).

Variants: the baseline kernels (NCHW), the fast kernels on NCHW and on channels_last inputs;
dtypes float32 and bfloat16. Prints one line per run, in launch order, so the profile's kernels
can be matched to variants.
"""
import sys

import torch

import involution_cuda

VARIANTS = [("baseline", torch.contiguous_format), ("fast", torch.contiguous_format),
            ("fast", torch.channels_last)]


def main() -> int:
    batch, channels, size, groups, kernel = 64, 64, 56, 4, 7
    for dtype in (torch.float32, torch.bfloat16):
        for kernels, memory_format in VARIANTS:
            x = torch.randn(batch, channels, size, size, device="cuda", dtype=dtype)
            x = x.contiguous(memory_format=memory_format).requires_grad_()
            w = torch.randn(batch, groups, kernel, kernel, size, size, device="cuda", dtype=dtype,
                            requires_grad=True)
            grad = torch.randn_like(x)  # keeps x's memory format
            out = involution_cuda.involution(x, w, kernels=kernels)
            torch.autograd.grad(out, (x, w), grad)
            torch.cuda.synchronize()
            layout = "nhwc" if memory_format == torch.channels_last else "nchw"
            print(f"profiled {kernels} {layout} {str(dtype).replace('torch.', '')}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
