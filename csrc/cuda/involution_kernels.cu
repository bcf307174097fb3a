// Baseline CUDA kernels of the three involution ops: one thread per result element, as in the
// paper's CuPy code, with all index math from ../involution_index.h (shared with the CPU kernels).
//
//   forward      thread (n,c,i,j):     out  = sum_{u,v} w[n,g,u,v,i,j] * x[n,c,ih(i,u),iw(j,v)]
//   grad_input   thread (n,c,h,w):     gx   = sum_{u,v} w[n,g,u,v,i,j] * go[n,c,i,j]
//                                             over the (i,j) = output_index(h,u), output_index(w,v)
//   grad_weight  thread (n,g,u,v,i,j): gw   = sum_{c in g} go[n,c,i,j] * x[n,c,ih(i,u),iw(j,v)]
//
// Each thread writes one element and reads only inputs, so there are no atomics and results are
// deterministic. Zero padding is multiplied, not skipped, so NaN/Inf propagate as in the
// unfold reference. Indices are 64-bit; a grid-stride loop covers any size. Half types accumulate
// in float.
#include "involution_kernels.cuh"

namespace involution {
namespace cuda {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = int64_t{1} << 20;

// Accumulation type and conversions (torch builds with the implicit half conversions disabled).
template <typename T> struct Accumulate { using type = float; };
template <> struct Accumulate<double> { using type = double; };

__device__ __forceinline__ float to_acc(float value) { return value; }
__device__ __forceinline__ double to_acc(double value) { return value; }
__device__ __forceinline__ float to_acc(__half value) { return __half2float(value); }
__device__ __forceinline__ float to_acc(__nv_bfloat16 value) { return __bfloat162float(value); }

__device__ __forceinline__ void store(float* target, float value) { *target = value; }
__device__ __forceinline__ void store(double* target, double value) { *target = value; }
__device__ __forceinline__ void store(__half* target, float value) { *target = __float2half(value); }
__device__ __forceinline__ void store(__nv_bfloat16* target, float value) {
  *target = __float2bfloat16(value);
}

template <typename scalar_t>
__global__ void forward_kernel(Problem p, const scalar_t* __restrict__ input,
                               const scalar_t* __restrict__ weight, scalar_t* __restrict__ output) {
  using acc_t = typename Accumulate<scalar_t>::type;
  const int64_t total = p.batch * p.channels * p.height.output_size * p.width.output_size;
  for (int64_t index = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; index < total;
       index += int64_t{gridDim.x} * blockDim.x) {
    const int64_t j = index % p.width.output_size;
    const int64_t i = index / p.width.output_size % p.height.output_size;
    const int64_t c = index / (p.width.output_size * p.height.output_size) % p.channels;
    const int64_t n = index / (p.width.output_size * p.height.output_size * p.channels);
    const int64_t g = group_of_channel(p, c);
    acc_t sum = 0;
    for (int64_t u = 0; u < p.height.kernel_size; ++u) {
      const int64_t h = input_index(p.height, i, u);
      for (int64_t v = 0; v < p.width.kernel_size; ++v) {
        const int64_t w = input_index(p.width, j, v);
        // Padding is multiplied, not skipped (as in the reference): NaN/Inf weights propagate.
        const acc_t value =
            inside(h, p.height.input_size) && inside(w, p.width.input_size)
                ? to_acc(input[plane_offset(p.channels, p.height.input_size, p.width.input_size,
                                            n, c, h, w)])
                : acc_t(0);
        sum += to_acc(weight[weight_offset(p, n, g, u, v, i, j)]) * value;
      }
    }
    store(&output[index], sum);
  }
}

template <typename scalar_t>
__global__ void grad_input_kernel(Problem p, const scalar_t* __restrict__ grad_output,
                                  const scalar_t* __restrict__ weight,
                                  scalar_t* __restrict__ grad_input) {
  using acc_t = typename Accumulate<scalar_t>::type;
  const int64_t total = p.batch * p.channels * p.height.input_size * p.width.input_size;
  for (int64_t index = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; index < total;
       index += int64_t{gridDim.x} * blockDim.x) {
    const int64_t w = index % p.width.input_size;
    const int64_t h = index / p.width.input_size % p.height.input_size;
    const int64_t c = index / (p.width.input_size * p.height.input_size) % p.channels;
    const int64_t n = index / (p.width.input_size * p.height.input_size * p.channels);
    const int64_t g = group_of_channel(p, c);
    acc_t sum = 0;
    for (int64_t u = 0; u < p.height.kernel_size; ++u) {
      int64_t i;
      if (!output_index(p.height, h, u, &i)) continue;
      for (int64_t v = 0; v < p.width.kernel_size; ++v) {
        int64_t j;
        if (!output_index(p.width, w, v, &j)) continue;
        sum += to_acc(weight[weight_offset(p, n, g, u, v, i, j)]) *
               to_acc(grad_output[plane_offset(p.channels, p.height.output_size,
                                               p.width.output_size, n, c, i, j)]);
      }
    }
    store(&grad_input[index], sum);
  }
}

template <typename scalar_t>
__global__ void grad_weight_kernel(Problem p, const scalar_t* __restrict__ grad_output,
                                   const scalar_t* __restrict__ input,
                                   scalar_t* __restrict__ grad_weight) {
  using acc_t = typename Accumulate<scalar_t>::type;
  const int64_t out_w = p.width.output_size, out_h = p.height.output_size;
  const int64_t k_w = p.width.kernel_size, k_h = p.height.kernel_size;
  const int64_t total = p.batch * p.groups * k_h * k_w * out_h * out_w;
  const int64_t per_group = channels_per_group(p);
  for (int64_t index = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; index < total;
       index += int64_t{gridDim.x} * blockDim.x) {
    const int64_t j = index % out_w;
    const int64_t i = index / out_w % out_h;
    const int64_t v = index / (out_w * out_h) % k_w;
    const int64_t u = index / (out_w * out_h * k_w) % k_h;
    const int64_t g = index / (out_w * out_h * k_w * k_h) % p.groups;
    const int64_t n = index / (out_w * out_h * k_w * k_h * p.groups);
    const int64_t h = input_index(p.height, i, u);
    const int64_t w = input_index(p.width, j, v);
    const bool in_input = inside(h, p.height.input_size) && inside(w, p.width.input_size);
    acc_t sum = 0;
    for (int64_t c = g * per_group; c < (g + 1) * per_group; ++c) {
      // A tap in the padding reads zero (grad_output * 0, as in the reference).
      const acc_t value =
          in_input ? to_acc(input[plane_offset(p.channels, p.height.input_size,
                                               p.width.input_size, n, c, h, w)])
                   : acc_t(0);
      sum += to_acc(grad_output[plane_offset(p.channels, out_h, out_w, n, c, i, j)]) * value;
    }
    store(&grad_weight[index], sum);
  }
}

int64_t blocks_for(int64_t total) {
  const int64_t needed = (total + kThreads - 1) / kThreads;
  return needed < kMaxBlocks ? needed : kMaxBlocks;
}

}  // namespace

template <typename scalar_t>
cudaError_t launch_forward(const Problem& p, const scalar_t* input, const scalar_t* weight,
                           scalar_t* output, cudaStream_t stream) {
  const int64_t total = p.batch * p.channels * p.height.output_size * p.width.output_size;
  if (total == 0) return cudaSuccess;
  forward_kernel<scalar_t><<<blocks_for(total), kThreads, 0, stream>>>(p, input, weight, output);
  return cudaGetLastError();
}

template <typename scalar_t>
cudaError_t launch_grad_input(const Problem& p, const scalar_t* grad_output, const scalar_t* weight,
                              scalar_t* grad_input, cudaStream_t stream) {
  const int64_t total = p.batch * p.channels * p.height.input_size * p.width.input_size;
  if (total == 0) return cudaSuccess;
  grad_input_kernel<scalar_t><<<blocks_for(total), kThreads, 0, stream>>>(p, grad_output, weight, grad_input);
  return cudaGetLastError();
}

template <typename scalar_t>
cudaError_t launch_grad_weight(const Problem& p, const scalar_t* grad_output, const scalar_t* input,
                               scalar_t* grad_weight, cudaStream_t stream) {
  const int64_t total = p.batch * p.groups * p.height.kernel_size * p.width.kernel_size *
                        p.height.output_size * p.width.output_size;
  if (total == 0) return cudaSuccess;
  grad_weight_kernel<scalar_t><<<blocks_for(total), kThreads, 0, stream>>>(p, grad_output, input, grad_weight);
  return cudaGetLastError();
}

#define INSTANTIATE(T)                                                                          \
  template cudaError_t launch_forward<T>(const Problem&, const T*, const T*, T*, cudaStream_t); \
  template cudaError_t launch_grad_input<T>(const Problem&, const T*, const T*, T*, cudaStream_t); \
  template cudaError_t launch_grad_weight<T>(const Problem&, const T*, const T*, T*, cudaStream_t);
INSTANTIATE(float)
INSTANTIATE(double)
INSTANTIATE(__half)
INSTANTIATE(__nv_bfloat16)
#undef INSTANTIATE

}  // namespace cuda
}  // namespace involution
