"""A small CUDA forward + backward per dtype, kernel choice and layout, checked against the
float64 reference on CPU.

Run under compute-sanitizer by scripts/gpu_suite.sh; exits non-zero on a wrong result.
"""
import sys

import torch

import involution_cuda
from involution_cuda import reference

TOLERANCE = {torch.float64: 1e-10, torch.float32: 1e-4, torch.float16: 2e-2, torch.bfloat16: 8e-2}


def check(kernels, memory_format, x64, w64, g64, options) -> int:
    """Runs forward + backward of every dtype with `kernels` on `memory_format` inputs."""
    x_ref, w_ref = x64.clone().requires_grad_(), w64.clone().requires_grad_()
    expected = reference.involution(x_ref, w_ref, **options)
    expected_grads = torch.autograd.grad(expected, (x_ref, w_ref), g64)
    failures = 0
    layout = "nhwc" if memory_format == torch.channels_last else "nchw"
    for dtype, tolerance in TOLERANCE.items():
        x = x64.to("cuda", dtype).contiguous(memory_format=memory_format).requires_grad_()
        w = w64.to("cuda", dtype).requires_grad_()
        out = involution_cuda.involution(x, w, **options, kernels=kernels)
        grad = g64.to("cuda", dtype).contiguous(memory_format=memory_format)
        grads = torch.autograd.grad(out, (x, w), grad)
        torch.cuda.synchronize()
        for name, actual, wanted in zip(("output", "grad_input", "grad_weight"),
                                        (out, *grads), (expected, *expected_grads)):
            error = (actual.double().cpu() - wanted.detach()).abs().max().item()
            scale = wanted.abs().max().item()
            ok = error <= tolerance * max(1.0, scale)
            failures += not ok
            print(f"{kernels:8} {layout} C{x64.shape[1]:<3} {str(dtype):16} {name:12} "
                  f"max error {error:.2e} {'ok' if ok else 'WRONG'}")
    return failures


# (channels, groups, kernel, options, output size) on 9 x 11 inputs: 2 channels per group
# (single-channel packs) and 16 (16-byte packs in channels_last) at a width stride of 2, which
# takes the one-pixel kernels; then unit width stride with a 3 x 7 kernel, which takes the row
# kernels (channels_last, and channels-first float32/float64) and the shared-memory tile kernels
# (channels-first float16/bfloat16: racecheck sees their fill, barrier and compute).
PROBLEMS = [
    (6, 3, (3, 5), dict(stride=(1, 2), padding=(1, 3), dilation=(2, 1)), (7, 7)),
    (32, 2, (3, 5), dict(stride=(1, 2), padding=(1, 3), dilation=(2, 1)), (7, 7)),
    (32, 2, (3, 7), dict(stride=1, padding=(1, 3), dilation=(2, 1)), (7, 11)),
]


def main() -> int:
    failures = 0
    generator = torch.Generator().manual_seed(0)
    for channels, groups, kernel, options, output in PROBLEMS:
        x64 = torch.randn(2, channels, 9, 11, dtype=torch.float64, generator=generator)
        w64 = torch.randn(2, groups, *kernel, *output, dtype=torch.float64, generator=generator)
        g64 = torch.randn(2, channels, *output, dtype=torch.float64, generator=generator)
        for kernels in ("baseline", "fast"):
            for memory_format in (torch.contiguous_format, torch.channels_last):
                failures += check(kernels, memory_format, x64, w64, g64, options)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
