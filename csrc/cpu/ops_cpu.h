// The CPU kernels of the three ops, each in its own translation unit (the kernels are compiled
// once per dtype and ISA level, so one unit per op lets the build run them in parallel).
// Arguments are checked and results allocated by the caller (involution_cpu.cpp).
#pragma once

#include <ATen/core/Tensor.h>

#include "../involution_index.h"

namespace involution {
namespace cpu {

void run_forward(const Problem& p, const at::Tensor& input, const at::Tensor& weight,
                 const at::Tensor& output);
void run_grad_input(const Problem& p, const at::Tensor& grad_output,
                    const at::Tensor& weight, const at::Tensor& grad_input);
void run_grad_weight(const Problem& p, const at::Tensor& grad_output,
                     const at::Tensor& input, const at::Tensor& grad_weight);

}  // namespace cpu
}  // namespace involution
