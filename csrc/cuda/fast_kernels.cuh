// Launchers of the fast CUDA kernels (per-thread work in fast_threads.h).
//
// Same contract as the baseline launchers in involution_kernels.cuh: raw pointers, a
// cudaStream_t, explicit instantiations for float, double, __half and __nv_bfloat16, and the
// launch's cudaError_t. `layout` says how input-shaped and output-shaped tensors are laid out
// (contiguous NCHW, or channels_last NHWC); the weight is always contiguous (B, G, KH, KW, Ho, Wo).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

#include "fast_threads.h"

namespace involution {
namespace cuda {

template <typename scalar_t>
cudaError_t launch_fast_forward(const Problem& problem, fast::Layout layout, const scalar_t* input,
                                const scalar_t* weight, scalar_t* output, cudaStream_t stream);

template <typename scalar_t>
cudaError_t launch_fast_grad_input(const Problem& problem, fast::Layout layout,
                                   const scalar_t* grad_output, const scalar_t* weight,
                                   scalar_t* grad_input, cudaStream_t stream);

template <typename scalar_t>
cudaError_t launch_fast_grad_weight(const Problem& problem, fast::Layout layout,
                                    const scalar_t* grad_output, const scalar_t* input,
                                    scalar_t* grad_weight, cudaStream_t stream);

}  // namespace cuda
}  // namespace involution
