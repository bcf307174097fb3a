// The fast CUDA kernels: one generic __global__ that runs a functor of fast_threads.h over a
// 1-D grid, the CUDA specialisations of the element traits, and the launchers.
#include "fast_kernels.cuh"

namespace involution {
namespace fast {

// torch builds with the implicit half conversions disabled: convert explicitly.
template <> struct Arith<__half> {
  using acc_t = float;
  static INVOLUTION_HOST_DEVICE float to_acc(__half value) { return __half2float(value); }
  static INVOLUTION_HOST_DEVICE __half from_acc(float value) { return __float2half_rn(value); }
};
template <> struct Arith<__nv_bfloat16> {
  using acc_t = float;
  static INVOLUTION_HOST_DEVICE float to_acc(__nv_bfloat16 value) { return __bfloat162float(value); }
  static INVOLUTION_HOST_DEVICE __nv_bfloat16 from_acc(float value) { return __float2bfloat16_rn(value); }
};

// Pair conversions of the half types: two elements per instruction.
INVOLUTION_HOST_DEVICE float2 widen_pair(__half first, __half second) {
  return __half22float2(__halves2half2(first, second));
}
INVOLUTION_HOST_DEVICE float2 widen_pair(__nv_bfloat16 first, __nv_bfloat16 second) {
  return __bfloat1622float2(__halves2bfloat162(first, second));
}
INVOLUTION_HOST_DEVICE void narrow_pair(float first, float second, __half* pair) {
  const __half2 both = __floats2half2_rn(first, second);
  pair[0] = __low2half(both);
  pair[1] = __high2half(both);
}
INVOLUTION_HOST_DEVICE void narrow_pair(float first, float second, __nv_bfloat16* pair) {
  const __nv_bfloat162 both = __floats2bfloat162_rn(first, second);
  pair[0] = __low2bfloat16(both);
  pair[1] = __high2bfloat16(both);
}

// Half packs convert in pairs (accumulation stays in float).
template <typename T, int N>
struct PairedPackMath {
  static INVOLUTION_HOST_DEVICE void unpack(const Pack<T, N>& pack, float (&values)[N]) {
    INVOLUTION_UNROLL
    for (int k = 0; k + 1 < N; k += 2) {
      const float2 pair = widen_pair(pack.lane[k], pack.lane[k + 1]);
      values[k] = pair.x;
      values[k + 1] = pair.y;
    }
    if (N % 2 == 1) values[N - 1] = Arith<T>::to_acc(pack.lane[N - 1]);
  }
  static INVOLUTION_HOST_DEVICE Pack<T, N> repack(const float (&values)[N]) {
    Pack<T, N> pack;
    INVOLUTION_UNROLL
    for (int k = 0; k + 1 < N; k += 2) narrow_pair(values[k], values[k + 1], &pack.lane[k]);
    if (N % 2 == 1) pack.lane[N - 1] = Arith<T>::from_acc(values[N - 1]);
    return pack;
  }
};
template <int N> struct PackMath<__half, N> : PairedPackMath<__half, N> {};
template <int N> struct PackMath<__nv_bfloat16, N> : PairedPackMath<__nv_bfloat16, N> {};

}  // namespace fast

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
