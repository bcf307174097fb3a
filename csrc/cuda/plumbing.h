// What every CUDA kernel of this extension shares: the 1-D grid-stride launch, the element-type
// traits of float and double, read-only loads and the tensor layouts. No torch and no CUDA
// headers, everything __host__ __device__, so that the kernels' per-thread code also builds as
// plain host C++ for the CPU tests.
//
// Each kernel is a functor: `items()` says how many work items the problem has and
// `operator()(const Thread&)` does the items of one thread of a 1-D grid-stride launch.
// launchers.cu launches a functor as a CUDA kernel (run_items); the tests' emulated launch
// (tests/csrc/emulated_launch.cpp) calls it for every (block, thread) of the very same grid on
// the CPU, so the CPU tests run the code the GPU runs. No kernel uses warp shuffles, and only the
// tile kernels (kSharedTiles, below) use shared memory and barriers, so running the threads one
// after another (a tile kernel's: every thread's fill, then every thread's compute) is an exact
// emulation. Each thread writes only its own result elements and reads only inputs (and its
// block's tile): no atomics, deterministic results.
//
// A tile kernel (`static constexpr bool kSharedTiles = true`) has `tiles()` tiles and needs
// `shared_floats()` floats of shared memory per block; each block takes tiles blockIdx.x,
// blockIdx.x + gridDim.x, .. and for each runs `fill(thread, tile, shared)` on all its threads,
// a barrier, `compute(thread, tile, shared)`, a barrier (run_tiles in launchers.cu).
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

// Items are dealt out a warp's worth at a time (32 consecutive items, one per lane): warp-item
// m goes to warp m mod W of the grid's W warps, numbered block + warp_in_block · blocks, so that
// the blocks come fastest. The lanes of a warp still take neighbouring items, and every block
// gets the same share of the work to within one warp-item per warp, whatever the grid: a grid of
// the blocks the GPU holds at once (blocks_for) leaves no partial last wave of blocks, only a
// last round in which some warps of every block have no item.
constexpr int64_t kWarpSize = 32;
INVOLUTION_HOST_DEVICE int64_t first_item(const Thread& t) {
  const int64_t warp = t.block + t.lane / kWarpSize * t.blocks;
  return warp * kWarpSize + t.lane % kWarpSize;
}
INVOLUTION_HOST_DEVICE int64_t item_stride(const Thread& t) { return t.blocks * t.threads_per_block; }

constexpr int kThreadsPerBlock = 256;
static_assert(kThreadsPerBlock % kWarpSize == 0, "blocks of whole warps");

// The grid for `items` items when the GPU holds `resident` blocks of the kernel at once: all of
// them (one round of warp-items spread over every block, the rest by the grid-stride loop), or
// one block per warp-item where there are fewer. The CUDA launch and the emulated launch (which
// chooses `resident`) both use it.
inline int64_t blocks_for(int64_t items, int64_t resident) {
  const int64_t warp_items = (items + kWarpSize - 1) / kWarpSize;
  const int64_t at_least_one = resident > 1 ? resident : 1;
  return warp_items < at_least_one ? warp_items : at_least_one;
}

// Whether a functor is a tile kernel.
template <typename Functor, typename = void>
struct SharedTiles { static constexpr bool value = false; };
template <typename Functor>
struct SharedTiles<Functor, decltype(void(Functor::kSharedTiles))> {
  static constexpr bool value = Functor::kSharedTiles;
};

// The grid of a tile kernel: one block per tile, at most the blocks the GPU holds at once.
inline int64_t blocks_for_tiles(int64_t tiles, int64_t resident) {
  const int64_t at_least_one = resident > 1 ? resident : 1;
  return tiles < at_least_one ? tiles : at_least_one;
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
