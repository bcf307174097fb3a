// Launchers of the baseline CUDA kernels of the three involution ops.
//
// No torch headers: raw pointers to contiguous tensors, a cudaStream_t, and explicit
// instantiations for float, double, __half and __nv_bfloat16 in involution_kernels.cu. Each
// launcher returns the launch's cudaError_t (cudaSuccess for an empty problem, which launches
// nothing); the torch-facing glue in involution_cuda.cpp turns errors into exceptions.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

#include "../involution_index.h"

namespace involution {
namespace cuda {

// output (B, C, Ho, Wo) from input (B, C, H, W) and weight (B, G, KH, KW, Ho, Wo).
template <typename scalar_t>
cudaError_t launch_forward(const Problem& problem, const scalar_t* input, const scalar_t* weight,
                           scalar_t* output, cudaStream_t stream);

// grad_input (B, C, H, W) from grad_output (B, C, Ho, Wo) and weight.
template <typename scalar_t>
cudaError_t launch_grad_input(const Problem& problem, const scalar_t* grad_output,
                              const scalar_t* weight, scalar_t* grad_input, cudaStream_t stream);

// grad_weight (B, G, KH, KW, Ho, Wo) from grad_output and input.
template <typename scalar_t>
cudaError_t launch_grad_weight(const Problem& problem, const scalar_t* grad_output,
                               const scalar_t* input, scalar_t* grad_weight, cudaStream_t stream);

}  // namespace cuda
}  // namespace involution
