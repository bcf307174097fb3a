// What every CUDA kernel of this extension shares: the 1-D grid-stride launch, the element-type
// traits of float and double, read-only loads and the tensor layouts. No torch and no CUDA
// headers, everything __host__ __device__, so that the kernels' per-thread code also builds as
// plain host C++ for the CPU tests.
//
// Each kernel is a functor: `items()` says how many work items the problem has and
// `operator()(const Thread&)` does the items of one thread of a 1-D grid-stride launch.
// launchers.cu launches a functor as a CUDA kernel (run_items); the tests' emulated launch
// (tests/csrc/emulated_launch.cpp) calls it for every (block, thread) of the very same grid on
// the CPU, so the CPU tests run the code the GPU runs. No kernel uses shared memory, barriers or warp shuffles, so running the
// threads one after another is an exact emulation. Each thread writes only its own result
// elements and reads only inputs: no atomics, deterministic results.
//
// The element-type traits `Arith` are defined here for float and double; half_types.cuh
// specialises them for CUDA's __half and __nv_bfloat16, the emulation for torch's host types.
#pragma once

#include <cstdint>

#include "../involution_index.h"

// Full unrolling keeps the small per-thread arrays in registers (device code) and lets the host
// compiler vectorise the pack loops of the emulation (nvcc's host pass needs neither).
#if defined(__CUDA_ARCH__)
#define INVOLUTION_UNROLL _Pragma("unroll")
#elif defined(__CUDACC__)
#define INVOLUTION_UNROLL
#else
#define INVOLUTION_UNROLL _Pragma("GCC unroll 16")
#endif

namespace involution {
namespace cuda {

// How the input-shaped and output-shaped tensors of a launch are laid out: contiguous NCHW, or
// channels_last NHWC. The weight (B, G, KH, KW, Ho, Wo) is read through the problem's weight
// strides; grad_weight is written contiguous.
enum class Layout { kChannelsFirst, kChannelsLast };

// ---- the launch ------------------------------------------------------------------------------

// One thread of a 1-D launch: its block and lane, and the launch's shape.
struct Thread {
  int64_t block;
  int64_t lane;
  int64_t blocks;
  int64_t threads_per_block;
};

INVOLUTION_HOST_DEVICE int64_t first_item(const Thread& t) { return t.block * t.threads_per_block + t.lane; }
INVOLUTION_HOST_DEVICE int64_t item_stride(const Thread& t) { return t.blocks * t.threads_per_block; }

constexpr int kThreadsPerBlock = 256;
constexpr int64_t kMaxBlocks = int64_t{1} << 20;

// Blocks of kThreadsPerBlock threads for `items` items; at most max_blocks (the grid-stride loop
// covers the rest). The CUDA launch and the emulated launch both use it.
inline int64_t blocks_for(int64_t items, int64_t max_blocks = kMaxBlocks) {
  const int64_t needed = (items + kThreadsPerBlock - 1) / kThreadsPerBlock;
  return needed < max_blocks ? needed : max_blocks;
}

// ---- element types ---------------------------------------------------------------------------

// Accumulation type and exact conversions of one element type (torch builds with the implicit
// half conversions disabled, so every kernel converts through these).
template <typename T> struct Arith;
template <> struct Arith<float> {
  using acc_t = float;
  static INVOLUTION_HOST_DEVICE float to_acc(float value) { return value; }
  static INVOLUTION_HOST_DEVICE float from_acc(float value) { return value; }
};
template <> struct Arith<double> {
  using acc_t = double;
  static INVOLUTION_HOST_DEVICE double to_acc(double value) { return value; }
  static INVOLUTION_HOST_DEVICE double from_acc(double value) { return value; }
};

// Load of an element the kernel only reads: through the read-only (non-coherent) data path on
// the GPU; no kernel writes what it reads.
template <typename T>
INVOLUTION_HOST_DEVICE T read_only(const T* address) {
#if defined(__CUDA_ARCH__)
  return __ldg(address);
#else
  return *address;
#endif
}

}  // namespace cuda
}  // namespace involution
