// Argument validation shared by every backend of the three involution ops.
//
// Each function checks what the kernels rely on for memory safety and correctness and returns
// the Problem the kernels run; failures raise Python ValueError / TypeError naming the argument.
#pragma once

#include <torch/types.h>

#include "involution_index.h"

namespace involution {

// involution(input, weight, stride, padding, dilation)
Problem check_forward(const at::Tensor& input, const at::Tensor& weight, at::IntArrayRef stride,
                      at::IntArrayRef padding, at::IntArrayRef dilation);

// involution_grad_input(grad_output, weight, input_size, stride, padding, dilation)
Problem check_grad_input(const at::Tensor& grad_output, const at::Tensor& weight,
                         at::IntArrayRef input_size, at::IntArrayRef stride,
                         at::IntArrayRef padding, at::IntArrayRef dilation);

// involution_grad_weight(grad_output, input, groups, kernel_size, stride, padding, dilation)
Problem check_grad_weight(const at::Tensor& grad_output, const at::Tensor& input, int64_t groups,
                          at::IntArrayRef kernel_size, at::IntArrayRef stride,
                          at::IntArrayRef padding, at::IntArrayRef dilation);

// Memory format of a result computed from `tensor`: channels_last when `tensor` is
// channels_last-contiguous (and not also plain contiguous), else contiguous. The fake kernels
// (involution_cuda/ops.py) apply the same rule, so compiled graphs see the real strides.
at::MemoryFormat result_memory_format(const at::Tensor& tensor);

}  // namespace involution
