// Emulated launches of the CUDA kernels on the CPU: a test instrument, built by the tests
// (tests/emulation.py), never part of the installed package.
//
// The ops of the `involution_cuda_emulated` library take the same arguments as the real ops plus
// `max_blocks` and `threads_limit`, and run the kernel functors of csrc/cuda (the set and functor
// chosen by kernel_sets.h, as on the GPU) for every (block, thread) of the grid the CUDA launch
// uses (blocks_for), one thread after another, through the same steps as the CUDA glue
// (run_op.h); a tile kernel's block runs every thread's fill, then every thread's compute, as its
// barrier orders them. The kernels use no warp shuffles, so this is exact: the
// CPU tests check the very per-thread code, grid-stride loops, pack choice and pack alignment (a
// misaligned pack access throws) that the GPU runs. `max_blocks` stands for the blocks a GPU
// holds at once (blocks_for's `resident`): small, threads loop over several items;
// `threads_limit` (tests of the instrument itself) runs only
// the first that many threads of the grid, the others return at once.
//
// The result buffer is filled with NaN before the kernels run, so an element no thread writes
// comes back NaN and fails every comparison with the reference. Each op returns its result, the
// channels per pack of the functor that ran (1 for channels-first functors), the most items one
// thread handled, and whether the kernels read the first and the second operand in place (the
// pointers they got are the operands' own: no copy was made).
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>
#include <c10/util/accumulate.h>
#include <torch/library.h>

#include <algorithm>
#include <limits>
#include <optional>
#include <type_traits>
#include <vector>

#include "checks.h"
#include "cuda/run_op.h"

namespace involution {
namespace cuda {

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
template <> struct fast::IsBfloat16<c10::BFloat16> { static constexpr bool value = true; };

}  // namespace cuda

namespace {

template <typename T> struct SameType { using type = T; };

// Runs a functor for every thread of its grid, as `run_items<<<blocks, threads>>>` would.
struct EmulatedLaunch {
  int64_t max_blocks;
  int64_t threads_limit;  // threads of the grid that run (the first ones)
  int64_t pack = 0;
  int64_t most_items_per_thread = 0;

  template <typename Functor>
  void operator()(const Functor& functor) {
    pack = channels_first_rows<Functor>(0) ? 1 : pack_of(functor);
    if constexpr (cuda::SharedTiles<Functor>::value) {
      run_tiles(functor);
    } else {
      run_threads(functor);
    }
  }

  // Every thread of the grid, one after another.
  template <typename Functor>
  void run_threads(const Functor& functor) {
    const int64_t items = functor.items();
    if (items == 0) return;  // the CUDA launcher launches nothing
    const int64_t blocks = cuda::blocks_for(items, max_blocks);
    const int64_t threads = blocks * cuda::kThreadsPerBlock;
    most_items_per_thread = (items + threads - 1) / threads;  // the grid-stride loop's trips
    for (int64_t block = 0; block < blocks; ++block) {
      for (int64_t lane = 0; lane < cuda::kThreadsPerBlock; ++lane) {
        if (block * cuda::kThreadsPerBlock + lane >= threads_limit) return;
        functor(cuda::Thread{block, lane, blocks, cuda::kThreadsPerBlock});
      }
    }
  }

  // A tile kernel: each block takes its tiles in turn; per tile its shared memory is poisoned
  // with NaN (a value no fill wrote then reaches the results), every thread fills, then every
  // thread computes. Most items per thread: the tiles of block 0.
  template <typename Functor>
  void run_tiles(const Functor& functor) {
    const int64_t tiles = functor.tiles();
    if (tiles == 0) return;
    const int64_t blocks = cuda::blocks_for_tiles(tiles, max_blocks);
    most_items_per_thread = (tiles + blocks - 1) / blocks;
    std::vector<float> shared(static_cast<size_t>(functor.shared_floats()));
    for (int64_t block = 0; block < blocks; ++block) {
      const int64_t lanes = std::clamp<int64_t>(threads_limit - block * cuda::kThreadsPerBlock, 0,
                                                cuda::kThreadsPerBlock);
      for (int64_t tile = block; tile < tiles; tile += blocks) {
        std::fill(shared.begin(), shared.end(), std::numeric_limits<float>::quiet_NaN());
        for (int64_t lane = 0; lane < lanes; ++lane) {
          functor.fill(cuda::Thread{block, lane, blocks, cuda::kThreadsPerBlock}, tile,
                       shared.data());
        }
        for (int64_t lane = 0; lane < lanes; ++lane) {
          functor.compute(cuda::Thread{block, lane, blocks, cuda::kThreadsPerBlock}, tile,
                          shared.data());
        }
      }
    }
  }

  template <template <typename, int> class Kernel, typename T, int N>
  static int64_t pack_of(const Kernel<T, N>&) { return N; }
  // The row kernels (fast/rows.h) always move 16-byte packs.
  template <template <typename, int, cuda::fast::WeightOrder> class Kernel, typename T, int KW,
            cuda::fast::WeightOrder Order>
  static int64_t pack_of(const Kernel<T, KW, Order>&) { return cuda::fast::kWidePack<T>; }
  template <typename T, int KW>
  static int64_t pack_of(const cuda::fast::GradWeightRowsChannelsLast<T, KW>&) {
    return cuda::fast::kWidePack<T>;
  }
  template <typename Functor>
  static int64_t pack_of(const Functor&) { return 1; }
  // The channels-first row kernels (fast/rows_channels_first.h) move single elements.
  template <typename Functor>
  static constexpr bool channels_first_rows(decltype(Functor::kChannelsFirstRows, 0)) { return true; }
  template <typename Functor>
  static constexpr bool channels_first_rows(...) { return false; }
};

using Result = std::tuple<at::Tensor, int64_t, int64_t, bool, bool>;
using cuda::Shape;

// Runs `entry` (a kernel_sets.h entry point) through run_op.h with the emulated launch.
template <typename Entry>
Result emulate(const char* op, const Checked& checked, const at::Tensor& first, Shape first_shape,
               const at::Tensor& second, Shape second_shape, Shape result_shape,
               int64_t max_blocks, std::optional<int64_t> threads_limit, const Entry& entry) {
  TORCH_CHECK_VALUE(max_blocks >= 1, "max_blocks must be at least 1, got ", max_blocks);
  TORCH_CHECK_VALUE(!threads_limit || *threads_limit >= 0,
                    "threads_limit must be at least 0, got ", *threads_limit);
  EmulatedLaunch launch{max_blocks, threads_limit.value_or(std::numeric_limits<int64_t>::max())};
  const int64_t result_numel = c10::multiply_integers(checked.concrete_result_size());
  bool first_in_place = false, second_in_place = false;
  at::Tensor result = cuda::run_op<SameType>(
      checked, first, first_shape, second, second_shape, result_shape,
      [&](auto set, auto layout, const Problem& problem, auto a, auto b, auto out) {
        first_in_place = static_cast<const void*>(a) == first.const_data_ptr();
        second_in_place = static_cast<const void*>(b) == second.const_data_ptr();
        using element_t = std::remove_pointer_t<decltype(out)>;
        std::fill_n(out, result_numel, std::numeric_limits<element_t>::quiet_NaN());
        TORCH_CHECK(entry(set, layout, problem, a, b, out, launch), op,
                    ": no kernel of this set for this layout");
      });
  return {result, launch.pack, launch.most_items_per_thread, first_in_place, second_in_place};
}

Result forward(const at::Tensor& input, const at::Tensor& weight, at::IntArrayRef stride,
               at::IntArrayRef padding, at::IntArrayRef dilation, c10::string_view kernels,
               int64_t max_blocks, std::optional<int64_t> threads_limit) {
  return emulate("emulated forward", check_forward(input, weight, stride, padding, dilation, kernels),
                 input, Shape::kImage, weight, Shape::kWeight, Shape::kImage, max_blocks,
                 threads_limit,
                 [](auto&&... args) { return cuda::forward(args...); });
}

Result grad_input(const at::Tensor& grad_output, const at::Tensor& weight,
                  c10::SymIntArrayRef input_size, at::IntArrayRef stride, at::IntArrayRef padding,
                  at::IntArrayRef dilation, c10::string_view kernels, int64_t max_blocks,
                  std::optional<int64_t> threads_limit) {
  return emulate("emulated grad_input",
                 check_grad_input(grad_output, weight, input_size, stride, padding, dilation, kernels),
                 grad_output, Shape::kImage, weight, Shape::kWeight, Shape::kImage, max_blocks,
                 threads_limit,
                 [](auto&&... args) { return cuda::grad_input(args...); });
}

Result grad_weight(const at::Tensor& grad_output, const at::Tensor& input, c10::SymInt groups,
                   c10::SymIntArrayRef kernel_size, at::IntArrayRef stride,
                   at::IntArrayRef padding, at::IntArrayRef dilation, c10::string_view kernels,
                   int64_t max_blocks, std::optional<int64_t> threads_limit) {
  return emulate("emulated grad_weight",
                 check_grad_weight(grad_output, input, groups, kernel_size, stride, padding,
                                   dilation, kernels),
                 grad_output, Shape::kImage, input, Shape::kImage, Shape::kWeight, max_blocks,
                 threads_limit,
                 [](auto&&... args) { return cuda::grad_weight(args...); });
}

}  // namespace

// Returns: (result, pack, most items per thread, first operand read in place, second operand
// read in place).
TORCH_LIBRARY(involution_cuda_emulated, m) {
  m.def(
      "forward(Tensor input, Tensor weight, int[2] stride, int[2] padding, int[2] dilation,"
      " str kernels, int max_blocks, int? threads_limit=None) -> (Tensor, int, int, bool, bool)");
  m.def(
      "grad_input(Tensor grad_output, Tensor weight, SymInt[2] input_size, int[2] stride,"
      " int[2] padding, int[2] dilation, str kernels, int max_blocks, int? threads_limit=None)"
      " -> (Tensor, int, int, bool, bool)");
  m.def(
      "grad_weight(Tensor grad_output, Tensor input, SymInt groups, SymInt[2] kernel_size,"
      " int[2] stride, int[2] padding, int[2] dilation, str kernels, int max_blocks,"
      " int? threads_limit=None) -> (Tensor, int, int, bool, bool)");
}

TORCH_LIBRARY_IMPL(involution_cuda_emulated, CPU, m) {
  m.impl("forward", &forward);
  m.impl("grad_input", &grad_input);
  m.impl("grad_weight", &grad_weight);
}

}  // namespace involution
