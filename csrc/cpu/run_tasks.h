// What the CPU ops' translation units share (forward_cpu.cpp, grad_input_cpu.cpp,
// grad_weight_cpu.cpp): tensors as row views, and the parallel launch of an op's tasks at the
// ISA level of isa.h (dispatch.h), with the tile shape for the row length.
#pragma once

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>

#include "dispatch.h"

namespace involution {
namespace cpu {

template <typename T>
Rows4<T> rows_of(T* data, const at::Tensor& tensor) {
  return {data, tensor.stride(0), tensor.stride(1), tensor.stride(2), tensor.stride(3)};
}

template <typename T>
WeightRows<T> weight_rows_of(T* data, const at::Tensor& tensor) {
  int64_t extent = tensor.numel() > 0 ? 1 : 0;  // strides are never negative
  for (int64_t d = 0; d < tensor.dim() && extent > 0; ++d) {
    extent += (tensor.size(d) - 1) * tensor.stride(d);
  }
  return {data,
          {tensor.stride(0), tensor.stride(1), tensor.stride(2), tensor.stride(3),
           tensor.stride(4), tensor.stride(5)},
          extent};
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

// Runs the tasks [0, count) on the intra-op thread pool at the chosen ISA level, with narrow
// tiles when a row of `row_length` accumulators fits in 32 bytes (kernels.h: narrow).
template <typename scalar_t, typename Tasks>
void run_tasks(int64_t count, int64_t row_length, const Tasks& tasks) {
  const bool narrow = cpu::narrow<at::opmath_type<scalar_t>>(row_length);
  const Isa level = isa();
  at::parallel_for(0, count, 1, [&](int64_t begin, int64_t end) {
    run_at(level, TaskRange<scalar_t, Tasks>{tasks, narrow, begin, end});
  });
}

#define INVOLUTION_DISPATCH_TYPES(dtype, name, ...) \
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, dtype, name, __VA_ARGS__)

}  // namespace cpu
}  // namespace involution
