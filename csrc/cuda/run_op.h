// The steps every torch-facing entry of the CUDA kernels takes, written once for the CUDA glue
// (involution_cuda.cpp) and the test-only emulated launches (tests/csrc): the kernel set of a
// checked call, its operands in the layout that set reads, the result allocated in it, the dtype
// dispatch, and the result back in the memory format the op promises.
//
// Layouts: the baseline set reads and writes NCHW; the fast set the image-shaped operands' own
// layout (NCHW or channels_last). A weight operand is read in place through its strides (no
// copy: in a channels_last model it is a view of a channels_last convolution output, 3× the
// input's size); a weight-shaped result is written contiguous.
#pragma once

#include <ATen/Dispatch.h>
#include <torch/types.h>

#include "../checks.h"
#include "kernel_sets.h"

namespace involution {
namespace cuda {

// Whether an operand or result is image-shaped (B, C, H, W) or weight-shaped.
enum class Shape { kImage, kWeight };

// The kernel-choice rule. "baseline" and "fast" are taken as asked; "auto" depends on nothing but
// the device (an op and its backward ops, on the same device, always agree): the baseline set on
// every GPU until a committed GPU result shows the fast set correct and faster
// (benchmarks/CUDA_KERNELS.md).
inline KernelSet kernel_set(KernelChoice choice) {
  return choice == KernelChoice::kFast ? KernelSet::kFast : KernelSet::kBaseline;
}

// Runs a checked op on `first` and `second`: calls launch(set, layout, problem, first, second,
// result) with pointers of Element<scalar_t>::type, the kernels' element type for each dtype.
template <template <typename> class Element, typename Launch>
at::Tensor run_op(const Checked& checked, const at::Tensor& first, Shape first_shape,
                  const at::Tensor& second, Shape second_shape, Shape result_shape,
                  const Launch& launch) {
  const KernelSet set = kernel_set(checked.kernels);
  const at::MemoryFormat image_format =
      set == KernelSet::kFast ? checked.image_format : at::MemoryFormat::Contiguous;
  const auto format_of = [&](Shape shape) {
    return shape == Shape::kImage ? image_format : at::MemoryFormat::Contiguous;
  };
  Problem problem = checked.problem();
  // Image-shaped operands in the set's layout (a no-op when already in it); a weight as it is.
  const auto operand = [&](const at::Tensor& tensor, Shape shape) {
    if (shape == Shape::kImage) return tensor.contiguous(format_of(shape));
    const at::IntArrayRef s = tensor.strides();
    problem.weight = WeightStrides{s[0], s[1], s[2], s[3], s[4], s[5]};
    return tensor;
  };
  const at::Tensor first_in = operand(first, first_shape);
  const at::Tensor second_in = operand(second, second_shape);
  at::Tensor result = at::empty(checked.concrete_result_size(),
                                first.options().memory_format(format_of(result_shape)));
  const Layout layout = image_format == at::MemoryFormat::ChannelsLast ? Layout::kChannelsLast
                                                                       : Layout::kChannelsFirst;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, first.scalar_type(), "run_op", [&] {
    using element_t = typename Element<scalar_t>::type;
    launch(set, layout, problem, reinterpret_cast<const element_t*>(first_in.const_data_ptr()),
           reinterpret_cast<const element_t*>(second_in.const_data_ptr()),
           reinterpret_cast<element_t*>(result.mutable_data_ptr()));
  });
  return result.contiguous(checked.result_format);
}

}  // namespace cuda
}  // namespace involution
