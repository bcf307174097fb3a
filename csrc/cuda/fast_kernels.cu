// The fast CUDA kernels: one generic __global__ that runs a functor of fast_threads.h over a
// 1-D grid (element traits of the half types from half_types.cuh), and the launchers.
#include "fast_kernels.cuh"
#include "half_types.cuh"

namespace involution {
namespace cuda {
namespace {

// At least two blocks per SM leaves ptxas up to 128 registers per thread; without the minimum it
// held some kernels at 64 registers and spilled their accumulators.
template <typename Functor>
__global__ void __launch_bounds__(fast::kThreadsPerBlock, 2) run_items(const Functor functor) {
  functor(fast::Thread{blockIdx.x, threadIdx.x, gridDim.x, blockDim.x});
}

// Launches a functor over the grid blocks_for(items) × kThreadsPerBlock on `stream`.
struct Launcher {
  cudaStream_t stream;
  cudaError_t status = cudaSuccess;

  template <typename Functor>
  void operator()(const Functor& functor) {
    const int64_t items = functor.items();
    if (items == 0) return;
    run_items<<<fast::blocks_for(items), fast::kThreadsPerBlock, 0, stream>>>(functor);
    status = cudaGetLastError();
  }
};

}  // namespace

template <typename scalar_t>
cudaError_t launch_fast_forward(const Problem& p, fast::Layout layout, const scalar_t* input,
                                const scalar_t* weight, scalar_t* output, cudaStream_t stream) {
  Launcher launcher{stream};
  fast::forward(p, layout, input, weight, output, launcher);
  return launcher.status;
}

template <typename scalar_t>
cudaError_t launch_fast_grad_input(const Problem& p, fast::Layout layout,
                                   const scalar_t* grad_output, const scalar_t* weight,
                                   scalar_t* grad_input, cudaStream_t stream) {
  Launcher launcher{stream};
  fast::grad_input(p, layout, grad_output, weight, grad_input, launcher);
  return launcher.status;
}

template <typename scalar_t>
cudaError_t launch_fast_grad_weight(const Problem& p, fast::Layout layout,
                                    const scalar_t* grad_output, const scalar_t* input,
                                    scalar_t* grad_weight, cudaStream_t stream) {
  Launcher launcher{stream};
  fast::grad_weight(p, layout, grad_output, input, grad_weight, launcher);
  return launcher.status;
}

#define INSTANTIATE(T)                                                                          \
  template cudaError_t launch_fast_forward<T>(const Problem&, fast::Layout, const T*, const T*, \
                                              T*, cudaStream_t);                                \
  template cudaError_t launch_fast_grad_input<T>(const Problem&, fast::Layout, const T*,        \
                                                 const T*, T*, cudaStream_t);                   \
  template cudaError_t launch_fast_grad_weight<T>(const Problem&, fast::Layout, const T*,       \
                                                  const T*, T*, cudaStream_t);
INSTANTIATE(float)
INSTANTIATE(double)
INSTANTIATE(__half)
INSTANTIATE(__nv_bfloat16)
#undef INSTANTIATE

}  // namespace cuda
}  // namespace involution
