// The launchers of launchers.cuh: one generic __global__ (run_items) that runs a kernel functor
// (chosen in kernel_sets.h) over a 1-D grid of blocks_for(items, resident blocks) ×
// kThreadsPerBlock threads, one (run_tiles) for the tile kernels, and the three launchers.
// Element traits of the half types come from half_types.cuh.
#include "launchers.cuh"

#include <algorithm>
#include <atomic>

#include "half_types.cuh"
#include "kernel_sets.h"
#include "plumbing.h"

namespace involution {
namespace cuda {
namespace {

// Blocks per SM that a kernel's register budget is sized for: a functor's own kMinBlocksPerSM,
// else 2. At least two blocks per SM leaves ptxas up to 128 registers per thread; without the
// minimum it held some kernels at 64 registers and spilled their accumulators.
template <typename Functor, typename = void>
struct MinBlocksPerSM { static constexpr int value = 2; };
template <typename Functor>
struct MinBlocksPerSM<Functor, decltype(void(Functor::kMinBlocksPerSM))> {
  static constexpr int value = Functor::kMinBlocksPerSM;
};

template <typename Functor>
__global__ void __launch_bounds__(kThreadsPerBlock, MinBlocksPerSM<Functor>::value)
    run_items(const Functor functor) {
  functor(Thread{blockIdx.x, threadIdx.x, gridDim.x, blockDim.x});
}

// The tile kernels: each block runs its tiles, filling its shared tile with all its threads
// before any reads it (plumbing.h, kSharedTiles).
template <typename Functor>
__global__ void __launch_bounds__(kThreadsPerBlock, MinBlocksPerSM<Functor>::value)
    run_tiles(const Functor functor) {
  extern __shared__ float4 shared_quads[];  // float4: 16-byte aligned
  float* shared = reinterpret_cast<float*>(shared_quads);
  const Thread thread{blockIdx.x, threadIdx.x, gridDim.x, blockDim.x};
  const int64_t tiles = functor.tiles();
  for (int64_t tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
    functor.fill(thread, tile, shared);
    __syncthreads();
    functor.compute(thread, tile, shared);
    __syncthreads();
  }
}

// Blocks of a tile kernel that the current device holds at once with `shared_bytes` of shared
// memory per block (asked at every launch: the tiles' size depends on the problem).
template <typename Functor>
cudaError_t resident_tile_blocks(int64_t shared_bytes, int64_t& resident) {
  int device = 0, sms = 0, per_sm = 0;
  cudaError_t status = cudaGetDevice(&device);
  if (status == cudaSuccess) {
    status = cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device);
  }
  if (status == cudaSuccess) {
    // Above 48 KB a kernel must opt in to its dynamic shared memory.
    status = cudaFuncSetAttribute(run_tiles<Functor>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                  static_cast<int>(shared_bytes));
  }
  if (status == cudaSuccess) {
    status = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, run_tiles<Functor>,
                                                           kThreadsPerBlock, shared_bytes);
  }
  if (status != cudaSuccess) return status;
  resident = std::max<int64_t>(int64_t{sms} * per_sm, 1);
  return cudaSuccess;
}

// Blocks of run_items<Functor> that the current device holds at once (its SMs times the
// blocks per SM that the kernel's registers allow), asked once per device.
constexpr int kMaxDevices = 64;

template <typename Functor>
cudaError_t resident_blocks(int64_t& resident) {
  static std::atomic<int64_t> known[kMaxDevices] = {};
  int device = 0;
  cudaError_t status = cudaGetDevice(&device);
  if (status != cudaSuccess) return status;
  if (device < kMaxDevices && known[device].load() > 0) {
    resident = known[device].load();
    return cudaSuccess;
  }
  int sms = 0, per_sm = 0;
  status = cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device);
  if (status == cudaSuccess) {
    status = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, run_items<Functor>,
                                                           kThreadsPerBlock, 0);
  }
  if (status != cudaSuccess) return status;
  resident = std::max<int64_t>(int64_t{sms} * per_sm, 1);
  if (device < kMaxDevices) known[device].store(resident);
  return cudaSuccess;
}

// Launches a functor over the grid blocks_for(items, resident blocks) × kThreadsPerBlock on
// `stream`; a tile kernel over blocks_for_tiles(tiles, resident blocks) with its shared memory.
struct Launcher {
  cudaStream_t stream;
  cudaError_t status = cudaSuccess;

  template <typename Functor>
  void operator()(const Functor& functor) {
    if constexpr (SharedTiles<Functor>::value) {
      const int64_t tiles = functor.tiles();
      if (tiles == 0) return;
      const int64_t shared_bytes = functor.shared_floats() * int64_t{sizeof(float)};
      int64_t resident = 0;
      status = resident_tile_blocks<Functor>(shared_bytes, resident);
      if (status != cudaSuccess) return;
      run_tiles<<<blocks_for_tiles(tiles, resident), kThreadsPerBlock, shared_bytes, stream>>>(
          functor);
    } else {
      const int64_t items = functor.items();
      if (items == 0) return;
      int64_t resident = 0;
      status = resident_blocks<Functor>(resident);
      if (status != cudaSuccess) return;
      run_items<<<blocks_for(items, resident), kThreadsPerBlock, 0, stream>>>(functor);
    }
    status = cudaGetLastError();
  }
};

}  // namespace

template <typename T>
cudaError_t launch_forward(KernelSet set, Layout layout, const Problem& p, const T* input,
                           const T* weight, T* output, cudaStream_t stream) {
  Launcher launcher{stream};
  if (!cuda::forward(set, layout, p, input, weight, output, launcher)) return cudaErrorInvalidValue;
  return launcher.status;
}

template <typename T>
cudaError_t launch_grad_input(KernelSet set, Layout layout, const Problem& p, const T* grad_output,
                              const T* weight, T* grad_input, cudaStream_t stream) {
  Launcher launcher{stream};
  if (!cuda::grad_input(set, layout, p, grad_output, weight, grad_input, launcher)) {
    return cudaErrorInvalidValue;
  }
  return launcher.status;
}

template <typename T>
cudaError_t launch_grad_weight(KernelSet set, Layout layout, const Problem& p,
                               const T* grad_output, const T* input, T* grad_weight,
                               cudaStream_t stream) {
  Launcher launcher{stream};
  if (!cuda::grad_weight(set, layout, p, grad_output, input, grad_weight, launcher)) {
    return cudaErrorInvalidValue;
  }
  return launcher.status;
}

#define INSTANTIATE(T)                                                                         \
  template cudaError_t launch_forward<T>(KernelSet, Layout, const Problem&, const T*, const T*, \
                                         T*, cudaStream_t);                                    \
  template cudaError_t launch_grad_input<T>(KernelSet, Layout, const Problem&, const T*,       \
                                            const T*, T*, cudaStream_t);                       \
  template cudaError_t launch_grad_weight<T>(KernelSet, Layout, const Problem&, const T*,      \
                                             const T*, T*, cudaStream_t);
INSTANTIATE(float)
INSTANTIATE(double)
INSTANTIATE(__half)
INSTANTIATE(__nv_bfloat16)
#undef INSTANTIATE

}  // namespace cuda
}  // namespace involution
