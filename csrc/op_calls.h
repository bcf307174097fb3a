// Calls of the three involution ops through the dispatcher, for the kernels that wrap them
// (autocast/, autograd/): each call runs from the current dispatch state down, so a wrapper
// that has excluded its own key reaches the next one.
#pragma once

#include <ATen/core/Tensor.h>
#include <ATen/core/dispatch/Dispatcher.h>

#include <utility>

namespace involution {

inline at::Tensor call_involution(const at::Tensor& input, const at::Tensor& weight,
                                  at::IntArrayRef stride, at::IntArrayRef padding,
                                  at::IntArrayRef dilation, c10::string_view kernels) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("involution_cuda::involution", "")
                       .typed<at::Tensor(const at::Tensor&, const at::Tensor&, at::IntArrayRef,
                                         at::IntArrayRef, at::IntArrayRef, c10::string_view)>();
  return op.call(input, weight, stride, padding, dilation, kernels);
}

inline at::Tensor call_grad_input(const at::Tensor& grad_output, const at::Tensor& weight,
                                  c10::SymIntArrayRef input_size, at::IntArrayRef stride,
                                  at::IntArrayRef padding, at::IntArrayRef dilation,
                                  c10::string_view kernels) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("involution_cuda::involution_grad_input", "")
                       .typed<at::Tensor(const at::Tensor&, const at::Tensor&, c10::SymIntArrayRef,
                                         at::IntArrayRef, at::IntArrayRef, at::IntArrayRef,
                                         c10::string_view)>();
  return op.call(grad_output, weight, input_size, stride, padding, dilation, kernels);
}

inline at::Tensor call_grad_weight(const at::Tensor& grad_output, const at::Tensor& input,
                                   c10::SymInt groups, c10::SymIntArrayRef kernel_size,
                                   at::IntArrayRef stride, at::IntArrayRef padding,
                                   at::IntArrayRef dilation, c10::string_view kernels) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("involution_cuda::involution_grad_weight", "")
                       .typed<at::Tensor(const at::Tensor&, const at::Tensor&, c10::SymInt,
                                         c10::SymIntArrayRef, at::IntArrayRef, at::IntArrayRef,
                                         at::IntArrayRef, c10::string_view)>();
  return op.call(grad_output, input, std::move(groups), kernel_size, stride, padding, dilation,
                 kernels);
}

}  // namespace involution
