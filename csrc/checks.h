// Argument checks of the three involution ops: the one place where they and their messages live.
//
// Every entry point runs them: the CPU and CUDA kernels and the test-only emulated launches call
// them directly; the fake kernels (torch.compile, export), the reference and the decomposition
// call them through the Python module (csrc/python_module.cpp). Sizes that come from tensors are
// c10::SymInt, so the same code checks concrete tensors and the symbolic sizes of compiled
// graphs (comparisons on symbolic sizes become guards, never a specialisation to one size).
// Failures raise Python ValueError / TypeError naming the argument and what was expected.
#pragma once

#include <c10/core/SymInt.h>
#include <c10/util/string_view.h>
#include <torch/types.h>

#include <vector>

#include "involution_index.h"

namespace involution {

// Which CUDA kernels an op call asks for. CPU tensors always run the CPU kernels.
enum class KernelChoice { kAuto, kBaseline, kFast };

// The geometry of one spatial axis, sizes possibly symbolic.
struct SymAxis {
  c10::SymInt input_size, output_size, kernel_size;
  int64_t stride, padding, dilation;
};

// A checked call: its problem, the size and memory format of its result, its kernel choice.
struct Checked {
  c10::SymInt batch, channels, groups;
  SymAxis height, width;
  std::vector<c10::SymInt> result_size;
  at::MemoryFormat result_format;
  // Memory format of the image-shaped operands (input or grad_output): the layout the fast CUDA
  // kernels run in.
  at::MemoryFormat image_format;
  KernelChoice kernels;

  // The problem the kernels run, and the result's size (concrete sizes only).
  Problem problem() const;
  std::vector<int64_t> concrete_result_size() const;
};

// involution(input, weight, stride, padding, dilation, kernels)
Checked check_forward(const at::Tensor& input, const at::Tensor& weight, at::IntArrayRef stride,
                      at::IntArrayRef padding, at::IntArrayRef dilation,
                      c10::string_view kernels);

// involution_grad_input(grad_output, weight, input_size, stride, padding, dilation, kernels)
Checked check_grad_input(const at::Tensor& grad_output, const at::Tensor& weight,
                         c10::SymIntArrayRef input_size, at::IntArrayRef stride,
                         at::IntArrayRef padding, at::IntArrayRef dilation,
                         c10::string_view kernels);

// involution_grad_weight(grad_output, input, groups, kernel_size, stride, padding, dilation,
// kernels)
Checked check_grad_weight(const at::Tensor& grad_output, const at::Tensor& input,
                          const c10::SymInt& groups, c10::SymIntArrayRef kernel_size,
                          at::IntArrayRef stride, at::IntArrayRef padding,
                          at::IntArrayRef dilation, c10::string_view kernels);

// An empty result tensor for a checked call (concrete sizes), on `options`' device and dtype.
at::Tensor allocate_result(const Checked& checked, const at::TensorOptions& options);

}  // namespace involution
