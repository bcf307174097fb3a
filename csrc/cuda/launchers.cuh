// The launchers of the CUDA kernels: the one entry point the torch glue (involution_cuda.cpp)
// calls for each op. No torch headers; defined and instantiated in launchers.cu.
//
// Contract:
//  - `set` picks the kernels (kernel_sets.h);
//  - input-shaped and output-shaped tensors are contiguous in `layout` (NCHW, or channels_last
//    NHWC); weight (B, G, KH, KW, Ho, Wo) is read through problem.weight's strides, grad_weight
//    is written contiguous;
//  - the baseline set runs channels-first tensors only: kBaseline with Layout::kChannelsLast is
//    a programming error of the caller and returns cudaErrorInvalidValue, launching nothing;
//  - raw device pointers and a cudaStream_t; instantiated for float, double, __half and
//    __nv_bfloat16;
//  - returns the launch's cudaError_t (cudaGetLastError after the launch), cudaSuccess for an
//    empty problem, which launches nothing. The glue turns errors into exceptions.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

#include "../involution_index.h"
#include "kernel_sets.h"
#include "plumbing.h"

namespace involution {
namespace cuda {

// output (B, C, Ho, Wo) from input (B, C, H, W) and weight (B, G, KH, KW, Ho, Wo).
template <typename T>
cudaError_t launch_forward(KernelSet set, Layout layout, const Problem& problem, const T* input,
                           const T* weight, T* output, cudaStream_t stream);

// grad_input (B, C, H, W) from grad_output (B, C, Ho, Wo) and weight.
template <typename T>
cudaError_t launch_grad_input(KernelSet set, Layout layout, const Problem& problem,
                              const T* grad_output, const T* weight, T* grad_input,
                              cudaStream_t stream);

// grad_weight (B, G, KH, KW, Ho, Wo) from grad_output and input.
template <typename T>
cudaError_t launch_grad_weight(KernelSet set, Layout layout, const Problem& problem,
                               const T* grad_output, const T* input, T* grad_weight,
                               cudaStream_t stream);

}  // namespace cuda
}  // namespace involution
