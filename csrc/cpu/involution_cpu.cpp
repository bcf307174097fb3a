// CPU implementation of the three involution ops: checks (checks.h), allocation in the result's
// memory format, the kernels (ops_cpu.h: one translation unit per op), registration. The
// kernels read and write through strides, so channels_last tensors need no copies.
#include <torch/library.h>
#include <torch/types.h>

#include "../checks.h"
#include "ops_cpu.h"

namespace involution {
namespace {

at::Tensor involution_cpu(const at::Tensor& input, const at::Tensor& weight,
                          at::IntArrayRef stride, at::IntArrayRef padding,
                          at::IntArrayRef dilation, c10::string_view kernels) {
  const Checked checked = check_forward(input, weight, stride, padding, dilation, kernels);
  const Problem p = checked.problem();
  at::Tensor output = allocate_result(checked, input.options());
  cpu::run_forward(p, input, weight, output);
  return output;
}

at::Tensor involution_grad_input_cpu(const at::Tensor& grad_output, const at::Tensor& weight,
                                     c10::SymIntArrayRef input_size, at::IntArrayRef stride,
                                     at::IntArrayRef padding, at::IntArrayRef dilation,
                                     c10::string_view kernels) {
  const Checked checked =
      check_grad_input(grad_output, weight, input_size, stride, padding, dilation, kernels);
  const Problem p = checked.problem();
  at::Tensor grad_input = allocate_result(checked, grad_output.options());
  cpu::run_grad_input(p, grad_output, weight, grad_input);
  return grad_input;
}

at::Tensor involution_grad_weight_cpu(const at::Tensor& grad_output, const at::Tensor& input,
                                      c10::SymInt groups, c10::SymIntArrayRef kernel_size,
                                      at::IntArrayRef stride, at::IntArrayRef padding,
                                      at::IntArrayRef dilation, c10::string_view kernels) {
  const Checked checked = check_grad_weight(grad_output, input, groups, kernel_size, stride,
                                            padding, dilation, kernels);
  const Problem p = checked.problem();
  at::Tensor grad_weight = allocate_result(checked, input.options());
  cpu::run_grad_weight(p, grad_output, input, grad_weight);
  return grad_weight;
}

}  // namespace

TORCH_LIBRARY_IMPL(involution_cuda, CPU, m) {
  m.impl("involution", &involution_cpu);
  m.impl("involution_grad_input", &involution_grad_input_cpu);
  m.impl("involution_grad_weight", &involution_grad_weight_cpu);
}

}  // namespace involution
