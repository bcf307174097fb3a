// CPU implementation of the three involution ops: checks (checks.h), allocation in the result's
// memory format, dtype dispatch, parallel launch of the kernels in kernels.h at the ISA level of
// isa.h (dispatch.h), registration. The kernels read and write through strides, so
// channels_last tensors need no copies.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>
#include <torch/types.h>

#include <type_traits>

#include "../checks.h"
#include "dispatch.h"

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

// The tasks [begin, end) of one op with the tile shape for its row length; `run` is compiled
// once per ISA level (dispatch.h).
template <typename scalar_t, typename Tasks>
struct TaskRange {
  const Tasks& tasks;
  bool narrow;
  int64_t begin, end;
  template <typename Shapes>
  INVOLUTION_CPU_INLINE void run() const {
    tasks.template run<Shapes>(narrow, begin, end);
  }
};

// Runs tasks.run_shape<Shape>(begin, end) with the narrow or the wide shape of `Shapes`.
template <typename Shapes, typename Tasks>
INVOLUTION_CPU_INLINE void run_narrow_or_wide(const Tasks& tasks, bool narrow, int64_t begin,
                                              int64_t end) {
  if (narrow) {
    tasks.template run_shape<typename Shapes::Narrow>(begin, end);
  } else {
    tasks.template run_shape<typename Shapes::Wide>(begin, end);
  }
}

// Runs the tasks [0, count) on the intra-op thread pool at the chosen ISA level, with narrow
// tiles when a row of `row_length` accumulators fits in 32 bytes (kernels.h: narrow).
template <typename scalar_t, typename Tasks>
void run_tasks(int64_t count, int64_t row_length, const Tasks& tasks) {
  const bool narrow = cpu::narrow<at::opmath_type<scalar_t>>(row_length);
  const cpu::Isa level = cpu::isa();
  at::parallel_for(0, count, 1, [&](int64_t begin, int64_t end) {
    cpu::run_at(level, TaskRange<scalar_t, Tasks>{tasks, narrow, begin, end});
  });
}

// The kernels of kernels.h with their operands bound: run<Shape>(begin, end) runs tasks.
template <typename scalar_t>
struct ForwardTasks {
  const Problem& p;
  cpu::Rows4<const scalar_t> input;
  cpu::WeightRows<const scalar_t> weight;
  cpu::Rows4<scalar_t> output;
  int64_t block;  // output rows per task
  template <typename Shape>
  INVOLUTION_CPU_INLINE void run_shape(int64_t begin, int64_t end) const {
    cpu::forward_tasks<scalar_t, Shape>(p, input, weight, output, block, begin, end);
  }
  // Two-row tiles where consecutive output rows share input rows (kernels.h: forward_tasks).
  template <typename Shapes>
  INVOLUTION_CPU_INLINE void run(bool narrow, int64_t begin, int64_t end) const {
    if (p.height.stride != p.height.dilation) return run_narrow_or_wide<Shapes>(*this, narrow, begin, end);
    if (narrow) return run_shape<typename Shapes::PairNarrow>(begin, end);
    run_shape<typename Shapes::Pair>(begin, end);
  }
};

template <typename scalar_t>
struct GradInputTasks {
  const Problem& p;
  cpu::Rows4<const scalar_t> grad_output;
  cpu::WeightRows<const scalar_t> weight;
  cpu::Rows4<scalar_t> grad_input;
  template <typename Shape>
  INVOLUTION_CPU_INLINE void run_shape(int64_t begin, int64_t end) const {
    cpu::grad_input_tasks<scalar_t, Shape>(p, grad_output, weight, grad_input, begin, end);
  }
  template <typename Shapes>
  INVOLUTION_CPU_INLINE void run(bool narrow, int64_t begin, int64_t end) const {
    run_narrow_or_wide<Shapes>(*this, narrow, begin, end);
  }
};

template <typename scalar_t>
struct GradWeightTasks {
  const Problem& p;
  cpu::Rows4<const scalar_t> grad_output;
  cpu::Rows4<const scalar_t> input;
  cpu::WeightRows<scalar_t> grad_weight;
  int64_t block;  // output rows per task
  template <typename Shape>
  INVOLUTION_CPU_INLINE void run_shape(int64_t begin, int64_t end) const {
    cpu::grad_weight_tasks<scalar_t, Shape>(p, grad_output, input, grad_weight, block, begin, end);
  }
  template <typename Shapes>
  INVOLUTION_CPU_INLINE void run(bool narrow, int64_t begin, int64_t end) const {
    run_narrow_or_wide<Shapes>(*this, narrow, begin, end);
  }
};

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
    const int64_t block = cpu::task_block_rows(p, at::get_num_threads());
    const int64_t blocks = (p.height.output_size + block - 1) / block;
    run_tasks<scalar_t>(p.batch * p.groups * blocks, p.width.output_size,
                        ForwardTasks<scalar_t>{p, x, w, out, block});
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
                        GradInputTasks<scalar_t>{p, go, w, gx});
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
    const int64_t block = cpu::task_block_rows(p, at::get_num_threads());
    const int64_t blocks = (p.height.output_size + block - 1) / block;
    run_tasks<scalar_t>(p.batch * p.groups * blocks, p.width.output_size,
                        GradWeightTasks<scalar_t>{p, go, x, gw, block});
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
