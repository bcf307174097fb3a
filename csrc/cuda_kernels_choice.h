// Which CUDA kernels the ops run: the baseline kernels (the default, and the GPU tests' oracle)
// or the fast ones (csrc/cuda/fast_threads.h). Set from Python through
// involution_cuda.set_cuda_kernels; the CPU kernels do not depend on it.
#pragma once

namespace involution {

enum class CudaKernels { kBaseline, kFast };

CudaKernels cuda_kernels();
void set_cuda_kernels(CudaKernels choice);

}  // namespace involution
