// Emulated launches of the fast CUDA kernels on the CPU, for the tests.
//
// The ops of the `involution_cuda_emulated` library run the functors of csrc/cuda/fast_threads.h
// for every (block, thread) of the grid the CUDA launch uses (fast::blocks_for), one thread
// after another. The kernels use no shared memory, barriers or warp shuffles, so this is exact:
// the CPU tests check the very per-thread code, grid-stride loops, pack choice and alignment
// (a misaligned pack access throws) that the GPU runs. `max_blocks` shrinks the grid so that
// the tests also cover threads that loop over several items.
#include <ATen/Dispatch.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>
#include <torch/library.h>
#include <torch/types.h>

#include "../checks.h"
#include "../cuda/fast_layout.h"

namespace involution {
namespace fast {

// torch's host half types: exact widening, round-to-nearest-even narrowing (as the GPU's).
template <> struct Arith<c10::Half> {
  using acc_t = float;
  static float to_acc(c10::Half value) { return static_cast<float>(value); }
  static c10::Half from_acc(float value) { return c10::Half(value); }
};
template <> struct Arith<c10::BFloat16> {
  using acc_t = float;
  static float to_acc(c10::BFloat16 value) { return static_cast<float>(value); }
  static c10::BFloat16 from_acc(float value) { return c10::BFloat16(value); }
};

}  // namespace fast

namespace {

// Runs a functor for every thread of its grid, as `run_items<<<blocks, threads>>>` would.
struct EmulatedLaunch {
  int64_t max_blocks;
  int pack = 0;  // channels per pack of the functor that ran (1 for channels-first kernels)

  template <typename Functor>
  void operator()(const Functor& functor) {
    pack = pack_of(functor);
    const int64_t blocks = fast::blocks_for(functor.items(), max_blocks);
    for (int64_t block = 0; block < blocks; ++block) {
      for (int64_t lane = 0; lane < fast::kThreadsPerBlock; ++lane) {
        functor(fast::Thread{block, lane, blocks, fast::kThreadsPerBlock});
      }
    }
  }

  template <template <typename, int> class Kernel, typename T, int N>
  static int pack_of(const Kernel<T, N>&) { return N; }
  template <typename Functor>
  static int pack_of(const Functor&) { return 1; }
};

void check_max_blocks(int64_t max_blocks) {
  TORCH_CHECK_VALUE(max_blocks >= 1, "max_blocks must be at least 1, got ", max_blocks);
}

std::tuple<at::Tensor, int64_t> forward(const at::Tensor& input, const at::Tensor& weight,
                                        at::IntArrayRef stride, at::IntArrayRef padding,
                                        at::IntArrayRef dilation, int64_t max_blocks) {
  const Problem p = check_forward(input, weight, stride, padding, dilation);
  check_max_blocks(max_blocks);
  const at::MemoryFormat format = result_memory_format(input);
  const at::Tensor input_c = input.contiguous(format);
  const at::Tensor weight_c = weight.contiguous();
  at::Tensor output = at::empty({p.batch, p.channels, p.height.output_size, p.width.output_size},
                                input.options().memory_format(format));
  EmulatedLaunch launch{max_blocks};
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "emulated_forward", [&] {
    fast::forward(p, fast::layout_of(format), input_c.const_data_ptr<scalar_t>(),
                  weight_c.const_data_ptr<scalar_t>(), output.mutable_data_ptr<scalar_t>(), launch);
  });
  return {output, launch.pack};
}

std::tuple<at::Tensor, int64_t> grad_input(const at::Tensor& grad_output, const at::Tensor& weight,
                                           at::IntArrayRef input_size, at::IntArrayRef stride,
                                           at::IntArrayRef padding, at::IntArrayRef dilation,
                                           int64_t max_blocks) {
  const Problem p = check_grad_input(grad_output, weight, input_size, stride, padding, dilation);
  check_max_blocks(max_blocks);
  const at::MemoryFormat format = result_memory_format(grad_output);
  const at::Tensor grad_output_c = grad_output.contiguous(format);
  const at::Tensor weight_c = weight.contiguous();
  at::Tensor grad_input = at::empty({p.batch, p.channels, p.height.input_size, p.width.input_size},
                                    grad_output.options().memory_format(format));
  EmulatedLaunch launch{max_blocks};
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grad_output.scalar_type(), "emulated_grad_input", [&] {
    fast::grad_input(p, fast::layout_of(format), grad_output_c.const_data_ptr<scalar_t>(),
                     weight_c.const_data_ptr<scalar_t>(), grad_input.mutable_data_ptr<scalar_t>(),
                     launch);
  });
  return {grad_input, launch.pack};
}

std::tuple<at::Tensor, int64_t> grad_weight(const at::Tensor& grad_output, const at::Tensor& input,
                                            int64_t groups, at::IntArrayRef kernel_size,
                                            at::IntArrayRef stride, at::IntArrayRef padding,
                                            at::IntArrayRef dilation, int64_t max_blocks) {
  const Problem p =
      check_grad_weight(grad_output, input, groups, kernel_size, stride, padding, dilation);
  check_max_blocks(max_blocks);
  const at::MemoryFormat format = result_memory_format(input);
  const at::Tensor grad_output_c = grad_output.contiguous(format);
  const at::Tensor input_c = input.contiguous(format);
  at::Tensor grad_weight = at::empty({p.batch, p.groups, p.height.kernel_size, p.width.kernel_size,
                                      p.height.output_size, p.width.output_size},
                                     input.options().memory_format(at::MemoryFormat::Contiguous));
  EmulatedLaunch launch{max_blocks};
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "emulated_grad_weight", [&] {
    fast::grad_weight(p, fast::layout_of(format), grad_output_c.const_data_ptr<scalar_t>(),
                      input_c.const_data_ptr<scalar_t>(), grad_weight.mutable_data_ptr<scalar_t>(),
                      launch);
  });
  return {grad_weight, launch.pack};
}

}  // namespace

// Each op returns its result and the channels per pack of the kernel that ran.
TORCH_LIBRARY(involution_cuda_emulated, m) {
  m.def(
      "forward(Tensor input, Tensor weight, int[2] stride, int[2] padding, int[2] dilation,"
      " int max_blocks) -> (Tensor, int)");
  m.def(
      "grad_input(Tensor grad_output, Tensor weight, int[2] input_size, int[2] stride,"
      " int[2] padding, int[2] dilation, int max_blocks) -> (Tensor, int)");
  m.def(
      "grad_weight(Tensor grad_output, Tensor input, int groups, int[2] kernel_size,"
      " int[2] stride, int[2] padding, int[2] dilation, int max_blocks) -> (Tensor, int)");
}

TORCH_LIBRARY_IMPL(involution_cuda_emulated, CPU, m) {
  m.impl("forward", &forward);
  m.impl("grad_input", &grad_input);
  m.impl("grad_weight", &grad_weight);
}

}  // namespace involution
