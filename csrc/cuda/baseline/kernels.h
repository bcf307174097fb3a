// The baseline CUDA kernels of the three involution ops, as __host__ __device__ functors (see
// ../plumbing.h for the functor contract and the launch): one thread per result element, as in
// the paper's CuPy code, with all index math from ../../involution_index.h (shared with the CPU
// kernels). Channels-first (contiguous NCHW) tensors only.
//
//   Forward     item (n,c,i,j):     out = sum_{u,v} w[n,g,u,v,i,j] * x[n,c,ih(i,u),iw(j,v)]
//   GradInput   item (n,c,h,w):     gx  = sum_{u,v} w[n,g,u,v,i,j] * go[n,c,i,j]
//                                         over the (i,j) = output_index(h,u), output_index(w,v)
//   GradWeight  item (n,g,u,v,i,j): gw  = sum_{c in g} go[n,c,i,j] * x[n,c,ih(i,u),iw(j,v)]
//
// Item k is the result element at flat offset k (last index fastest); a thread takes items
// first_item, first_item + item_stride, ... Each thread writes one element per item and reads
// only inputs, so there are no atomics and results are deterministic. Zero padding is
// multiplied, not skipped, so NaN/Inf propagate as in the unfold reference. Indices are 64-bit;
// the grid-stride loop covers any size. Half types accumulate in float (Arith).
//
// Entry points: baseline::forward / grad_input / grad_weight(problem, a, b, result, launch) call
// `launch(functor)`; `launch` is launchers.cu's Launcher on the GPU.
#pragma once

#include <cstdint>

#include "../plumbing.h"

namespace involution {
namespace cuda {
namespace baseline {

template <typename T>
struct Forward {
  using acc_t = typename Arith<T>::acc_t;
  Problem p;
  const T* __restrict__ input;
  const T* __restrict__ weight;
  T* __restrict__ output;

  INVOLUTION_HOST_DEVICE int64_t items() const {
    return p.batch * p.channels * p.height.output_size * p.width.output_size;
  }

  INVOLUTION_HOST_DEVICE void operator()(const Thread& t) const {
    const int64_t total = items();
    for (int64_t index = first_item(t); index < total; index += item_stride(t)) {
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
                  ? Arith<T>::to_acc(input[plane_offset(p.channels, p.height.input_size,
                                                        p.width.input_size, n, c, h, w)])
                  : acc_t(0);
          sum += Arith<T>::to_acc(weight[weight_offset(p, n, g, u, v, i, j)]) * value;
        }
      }
      output[index] = Arith<T>::from_acc(sum);
    }
  }
};

template <typename T>
struct GradInput {
  using acc_t = typename Arith<T>::acc_t;
  Problem p;
  const T* __restrict__ grad_output;
  const T* __restrict__ weight;
  T* __restrict__ grad_input;

  INVOLUTION_HOST_DEVICE int64_t items() const {
    return p.batch * p.channels * p.height.input_size * p.width.input_size;
  }

  INVOLUTION_HOST_DEVICE void operator()(const Thread& t) const {
    const int64_t total = items();
    for (int64_t index = first_item(t); index < total; index += item_stride(t)) {
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
          sum += Arith<T>::to_acc(weight[weight_offset(p, n, g, u, v, i, j)]) *
                 Arith<T>::to_acc(grad_output[plane_offset(p.channels, p.height.output_size,
                                                           p.width.output_size, n, c, i, j)]);
        }
      }
      grad_input[index] = Arith<T>::from_acc(sum);
    }
  }
};

template <typename T>
struct GradWeight {
  using acc_t = typename Arith<T>::acc_t;
  Problem p;
  const T* __restrict__ grad_output;
  const T* __restrict__ input;
  T* __restrict__ grad_weight;

  INVOLUTION_HOST_DEVICE int64_t items() const {
    return p.batch * p.groups * p.height.kernel_size * p.width.kernel_size *
           p.height.output_size * p.width.output_size;
  }

  INVOLUTION_HOST_DEVICE void operator()(const Thread& t) const {
    const int64_t out_w = p.width.output_size, out_h = p.height.output_size;
    const int64_t k_w = p.width.kernel_size, k_h = p.height.kernel_size;
    const int64_t total = items();
    const int64_t per_group = channels_per_group(p);
    for (int64_t index = first_item(t); index < total; index += item_stride(t)) {
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
            in_input ? Arith<T>::to_acc(input[plane_offset(p.channels, p.height.input_size,
                                                           p.width.input_size, n, c, h, w)])
                     : acc_t(0);
        sum += Arith<T>::to_acc(grad_output[plane_offset(p.channels, out_h, out_w, n, c, i, j)]) *
               value;
      }
      grad_weight[index] = Arith<T>::from_acc(sum);
    }
  }
};

// output (B, C, Ho, Wo) from input (B, C, H, W) and weight (B, G, KH, KW, Ho, Wo).
template <typename T, typename Launch>
void forward(const Problem& p, const T* input, const T* weight, T* output, Launch&& launch) {
  launch(Forward<T>{p, input, weight, output});
}

// grad_input (B, C, H, W) from grad_output (B, C, Ho, Wo) and weight.
template <typename T, typename Launch>
void grad_input(const Problem& p, const T* grad_output, const T* weight, T* grad_input,
                Launch&& launch) {
  launch(GradInput<T>{p, grad_output, weight, grad_input});
}

// grad_weight (B, G, KH, KW, Ho, Wo) from grad_output and input.
template <typename T, typename Launch>
void grad_weight(const Problem& p, const T* grad_output, const T* input, T* grad_weight,
                 Launch&& launch) {
  launch(GradWeight<T>{p, grad_output, input, grad_weight});
}

}  // namespace baseline
}  // namespace cuda
}  // namespace involution
