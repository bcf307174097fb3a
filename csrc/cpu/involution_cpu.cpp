// CPU implementation of the three involution ops: checks (checks.h), allocation in the result's
// memory format, dtype dispatch, parallel launch of the kernels in kernels.h, registration. The
// kernels read and write through strides, so channels_last tensors need no copies.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>
#include <torch/types.h>

#include <type_traits>

#include "../checks.h"
#include "kernels.h"

namespace involution {
namespace {

template <typename T>
cpu::Rows4<T> rows_of(T* data, const at::Tensor& tensor) {
  return {data, tensor.stride(0), tensor.stride(1), tensor.stride(2), tensor.stride(3)};
}

template <typename T>
cpu::WeightRows<T> weight_rows_of(T* data, const at::Tensor& tensor) {
  return {data, {tensor.stride(0), tensor.stride(1), tensor.stride(2), tensor.stride(3),
                 tensor.stride(4), tensor.stride(5)}};
}

// Runs body(tile, begin, end) over the tasks [0, count) on the intra-op thread pool, where
// `tile` is the register tile width in bytes (an std::integral_constant): 32-byte tiles when a
// row of `row_length` accumulators fits in one (kernels.h: narrow), else 64-byte tiles.
template <typename scalar_t, typename Body>
void run_tasks(int64_t count, int64_t row_length, const Body& body) {
  const bool narrow = cpu::narrow<at::opmath_type<scalar_t>>(row_length);
  at::parallel_for(0, count, 1, [&](int64_t begin, int64_t end) {
    if (narrow) {
      body(std::integral_constant<int, 32>{}, begin, end);
    } else {
      body(std::integral_constant<int, 64>{}, begin, end);
    }
  });
}

#define INVOLUTION_DISPATCH_TYPES(dtype, name, ...) \
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, dtype, name, __VA_ARGS__)

at::Tensor involution_cpu(const at::Tensor& input, const at::Tensor& weight,
                          at::IntArrayRef stride, at::IntArrayRef padding,
                          at::IntArrayRef dilation, c10::string_view kernels) {
  const Checked checked = check_forward(input, weight, stride, padding, dilation, kernels);
  const Problem p = checked.problem();
  at::Tensor output = allocate_result(checked, input.options());
  INVOLUTION_DISPATCH_TYPES(input.scalar_type(), "involution_cpu", [&] {
    const auto x = rows_of(input.const_data_ptr<scalar_t>(), input);
    const auto w = weight_rows_of(weight.const_data_ptr<scalar_t>(), weight);
    const auto out = rows_of(output.mutable_data_ptr<scalar_t>(), output);
    run_tasks<scalar_t>(p.batch * p.groups * p.height.output_size, p.width.output_size,
                        [&](auto tile, int64_t begin, int64_t end) {
                          cpu::forward_tasks<scalar_t, decltype(tile)::value>(p, x, w, out, begin, end);
                        });
  });
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
  INVOLUTION_DISPATCH_TYPES(grad_output.scalar_type(), "involution_grad_input_cpu", [&] {
    const auto go = rows_of(grad_output.const_data_ptr<scalar_t>(), grad_output);
    const auto w = weight_rows_of(weight.const_data_ptr<scalar_t>(), weight);
    const auto gx = rows_of(grad_input.mutable_data_ptr<scalar_t>(), grad_input);
    // Rows are split by stride phase: a tile covers one phase of an input row.
    const int64_t phase_length = (p.width.input_size + p.width.stride - 1) / p.width.stride;
    run_tasks<scalar_t>(p.batch * p.groups * p.height.input_size, phase_length,
                        [&](auto tile, int64_t begin, int64_t end) {
                          cpu::grad_input_tasks<scalar_t, decltype(tile)::value>(p, go, w, gx, begin, end);
                        });
  });
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
  INVOLUTION_DISPATCH_TYPES(input.scalar_type(), "involution_grad_weight_cpu", [&] {
    const auto go = rows_of(grad_output.const_data_ptr<scalar_t>(), grad_output);
    const auto x = rows_of(input.const_data_ptr<scalar_t>(), input);
    const auto gw = weight_rows_of(grad_weight.mutable_data_ptr<scalar_t>(), grad_weight);
    run_tasks<scalar_t>(p.batch * p.groups * p.height.output_size, p.width.output_size,
                        [&](auto tile, int64_t begin, int64_t end) {
                          cpu::grad_weight_tasks<scalar_t, decltype(tile)::value>(p, go, x, gw, begin, end);
                        });
  });
  return grad_weight;
}

}  // namespace

TORCH_LIBRARY_IMPL(involution_cuda, CPU, m) {
  m.impl("involution", &involution_cpu);
  m.impl("involution_grad_input", &involution_grad_input_cpu);
  m.impl("involution_grad_weight", &involution_grad_weight_cpu);
}

}  // namespace involution
