// CPU implementation of the three involution ops: checks, allocation in the input's memory
// format, dtype dispatch, parallel launch of the kernels in kernels.h, and registration.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>
#include <torch/types.h>

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

// Runs tasks(begin, end) over [0, count) on the intra-op thread pool.
template <typename Tasks>
void run_tasks(int64_t count, const Tasks& tasks) {
  at::parallel_for(0, count, 1, [&](int64_t begin, int64_t end) { tasks(begin, end); });
}

at::Tensor involution_cpu(const at::Tensor& input, const at::Tensor& weight,
                          at::IntArrayRef stride, at::IntArrayRef padding,
                          at::IntArrayRef dilation) {
  const Problem p = check_forward(input, weight, stride, padding, dilation);
  at::Tensor output = at::empty({p.batch, p.channels, p.height.output_size, p.width.output_size},
                                input.options().memory_format(result_memory_format(input)));
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "involution_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const auto x = rows_of(input.const_data_ptr<scalar_t>(), input);
    const auto w = weight_rows_of(weight.const_data_ptr<scalar_t>(), weight);
    const auto out = rows_of(output.mutable_data_ptr<scalar_t>(), output);
    const bool narrow = cpu::narrow<acc_t>(p.width.output_size);
    run_tasks(p.batch * p.groups * p.height.output_size, [&](int64_t begin, int64_t end) {
      if (narrow) {
        cpu::forward_tasks<scalar_t, 32>(p, x, w, out, begin, end);
      } else {
        cpu::forward_tasks<scalar_t, 64>(p, x, w, out, begin, end);
      }
    });
  });
  return output;
}

at::Tensor involution_grad_input_cpu(const at::Tensor& grad_output, const at::Tensor& weight,
                                     at::IntArrayRef input_size, at::IntArrayRef stride,
                                     at::IntArrayRef padding, at::IntArrayRef dilation) {
  const Problem p = check_grad_input(grad_output, weight, input_size, stride, padding, dilation);
  at::Tensor grad_input = at::empty(
      {p.batch, p.channels, p.height.input_size, p.width.input_size},
      grad_output.options().memory_format(result_memory_format(grad_output)));
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, grad_output.scalar_type(), "involution_grad_input_cpu", [&] {
        using acc_t = at::opmath_type<scalar_t>;
        const auto go = rows_of(grad_output.const_data_ptr<scalar_t>(), grad_output);
        const auto w = weight_rows_of(weight.const_data_ptr<scalar_t>(), weight);
        const auto gx = rows_of(grad_input.mutable_data_ptr<scalar_t>(), grad_input);
        const bool narrow = cpu::narrow<acc_t>((p.width.input_size + p.width.stride - 1) / p.width.stride);
        run_tasks(p.batch * p.groups * p.height.input_size, [&](int64_t begin, int64_t end) {
          if (narrow) {
            cpu::grad_input_tasks<scalar_t, 32>(p, go, w, gx, begin, end);
          } else {
            cpu::grad_input_tasks<scalar_t, 64>(p, go, w, gx, begin, end);
          }
        });
      });
  return grad_input;
}

at::Tensor involution_grad_weight_cpu(const at::Tensor& grad_output, const at::Tensor& input,
                                      int64_t groups, at::IntArrayRef kernel_size,
                                      at::IntArrayRef stride, at::IntArrayRef padding,
                                      at::IntArrayRef dilation) {
  const Problem p =
      check_grad_weight(grad_output, input, groups, kernel_size, stride, padding, dilation);
  at::Tensor grad_weight =
      at::empty({p.batch, p.groups, p.height.kernel_size, p.width.kernel_size,
                 p.height.output_size, p.width.output_size},
                input.options().memory_format(at::MemoryFormat::Contiguous));
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, input.scalar_type(), "involution_grad_weight_cpu", [&] {
        using acc_t = at::opmath_type<scalar_t>;
        const auto go = rows_of(grad_output.const_data_ptr<scalar_t>(), grad_output);
        const auto x = rows_of(input.const_data_ptr<scalar_t>(), input);
        const auto gw = weight_rows_of(grad_weight.mutable_data_ptr<scalar_t>(), grad_weight);
        const bool narrow = cpu::narrow<acc_t>(p.width.output_size);
        run_tasks(p.batch * p.groups * p.height.output_size, [&](int64_t begin, int64_t end) {
          if (narrow) {
            cpu::grad_weight_tasks<scalar_t, 32>(p, go, x, gw, begin, end);
          } else {
            cpu::grad_weight_tasks<scalar_t, 64>(p, go, x, gw, begin, end);
          }
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
