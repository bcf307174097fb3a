// The fast channels_last (NHWC) kernels, as __host__ __device__ functors (see ../plumbing.h for
// the functor contract and the launch).
//
//   ForwardChannelsLast<T, N>     out[n, i, j, c]  = sum_{u,v} w[n, g, u, v, i, j] * x[n, ih(i,u), iw(j,v), c]
//   GradInputChannelsLast<T, N>   gx[n, h, w, c]   = sum over the taps (u, v) and pixels (i, j) that
//                                                    read (h, w) of w[n, g, u, v, i, j] * go[n, i, j, c]
//   GradWeightChannelsLast<T, N>  gw[n, g, u, v, i, j] = sum_{c in g} go[n, i, j, c] * x[n, ih(i,u), iw(j,v), c]
//
// Thread mapping: forward and grad_input give one thread a pack of N channels of one group at
// one pixel (N = 16 bytes / element size, or 1 when the packs cannot be 16-byte aligned; see
// packs.h), items ordered (n, g, row, col, pack) so that a warp covers neighbouring pixels of
// one group. grad_weight gives one thread one group at one output pixel, all K² taps; it reduces
// the group's channels itself, N at a time. Designed so that each generated weight is loaded
// once for N channels, every access to an NHWC tensor is one 16-byte pack (with the wide packs),
// and no atomics are needed; half types convert in pairs and accumulate in float.
#pragma once

#include <cstdint>

#include "../plumbing.h"
#include "packs.h"

namespace involution {
namespace cuda {
namespace fast {

// Where a channels_last item stands: image n, group g, channels c0 .. c0+N-1, pixel (row, col).
struct PackItem {
  int64_t n, g, c0, row, col;
};

// Items are ordered (n, g, row, col, pack) with the packs of one group fastest: the lanes of a
// warp cover neighbouring pixels of one group, so its weight loads are one contiguous segment
// and each 16-byte pack load serves N channels.
template <int N>
INVOLUTION_HOST_DEVICE PackItem pack_item(const Problem& p, int64_t item, int64_t rows,
                                          int64_t cols) {
  const int64_t per_group = channels_per_group(p), packs = per_group / N;
  const int64_t pixel = item / packs;
  const int64_t g = pixel / (rows * cols) % p.groups;
  return {pixel / (rows * cols * p.groups), g, g * per_group + item % packs * N,
          pixel / cols % rows, pixel % cols};
}

// out[n, i, j, c0:c0+N] = sum_taps weight[n, g, u, v, i, j] * x[n, h, w, c0:c0+N]
template <typename T, int N>
struct ForwardChannelsLast {
  using acc_t = typename Arith<T>::acc_t;
  Problem p;
  const T* __restrict__ input;
  const T* __restrict__ weight;
  T* __restrict__ output;

  INVOLUTION_HOST_DEVICE int64_t items() const {
    return p.batch * p.height.output_size * p.width.output_size * (p.channels / N);
  }

  INVOLUTION_HOST_DEVICE void operator()(const Thread& t) const {
    const int64_t total = items();
    for (int64_t item = first_item(t); item < total; item += item_stride(t)) {
      pixel(p, input, weight, output,
            pack_item<N>(p, item, p.height.output_size, p.width.output_size));
    }
  }

  // One item: the N channels c0.. at output pixel (row, col) (also the row kernels' code for
  // the items whose windows reach past either end of a tensor).
  INVOLUTION_HOST_DEVICE static void pixel(const Problem& p, const T* input, const T* weight,
                                           T* output, const PackItem& at) {
    const int64_t n = at.n, g = at.g, c0 = at.c0, i = at.row, j = at.col;
    acc_t sum[N] = {};
    for (int64_t u = 0; u < p.height.kernel_size; ++u) {
      const int64_t h = input_index(p.height, i, u);
      const bool row_inside = inside(h, p.height.input_size);
      const T* x_row = input + pixel_offset(p.height.input_size, p.width.input_size, p.channels,
                                            n, row_inside ? h : 0, 0, c0);
      const T* taps = weight + weight_offset(p, n, g, u, 0, i, j);
      for (int64_t v = 0; v < p.width.kernel_size; ++v) {
        const int64_t w = input_index(p.width, j, v);
        const acc_t tap = Arith<T>::to_acc(read_only(taps + v * p.weight.tap_col));
        acc_t values[N] = {};  // padding reads zero and is multiplied: NaN/Inf taps propagate
        if (row_inside && inside(w, p.width.input_size)) {
          PackMath<T, N>::unpack(load_pack<N>(x_row + w * p.channels), values);
        }
        INVOLUTION_UNROLL
        for (int k = 0; k < N; ++k) sum[k] += tap * values[k];
      }
    }
    store_pack<N>(output + pixel_offset(p.height.output_size, p.width.output_size, p.channels,
                                        n, i, j, c0),
                  PackMath<T, N>::repack(sum));
  }
};

// grad_x[n, h, w, c0:c0+N] = sum over the taps that read (h, w) of weight * grad_out[n, i, j, c0:c0+N]
template <typename T, int N>
struct GradInputChannelsLast {
  using acc_t = typename Arith<T>::acc_t;
  Problem p;
  const T* __restrict__ grad_output;
  const T* __restrict__ weight;
  T* __restrict__ grad_input;

  INVOLUTION_HOST_DEVICE int64_t items() const {
    return p.batch * p.height.input_size * p.width.input_size * (p.channels / N);
  }

  INVOLUTION_HOST_DEVICE void operator()(const Thread& t) const {
    const int64_t total = items();
    for (int64_t item = first_item(t); item < total; item += item_stride(t)) {
      pixel(p, grad_output, weight, grad_input,
            pack_item<N>(p, item, p.height.input_size, p.width.input_size));
    }
  }

  // One item: the N channels c0.. at input pixel (row, col) (also the row kernels' code for the
  // items whose windows reach past either end of a tensor).
  INVOLUTION_HOST_DEVICE static void pixel(const Problem& p, const T* grad_output,
                                           const T* weight, T* grad_input, const PackItem& at) {
    const int64_t n = at.n, g = at.g, c0 = at.c0, h = at.row, w = at.col;
    acc_t sum[N] = {};
    for (int64_t u = 0; u < p.height.kernel_size; ++u) {
      int64_t i;
      if (!output_index(p.height, h, u, &i)) continue;
      const T* go_row = grad_output + pixel_offset(p.height.output_size, p.width.output_size,
                                                   p.channels, n, i, 0, c0);
      const T* taps = weight + weight_offset(p, n, g, u, 0, i, 0);
      for (int64_t v = 0; v < p.width.kernel_size; ++v) {
        int64_t j;
        if (!output_index(p.width, w, v, &j)) continue;
        const acc_t tap = Arith<T>::to_acc(read_only(taps + v * p.weight.tap_col + j * p.weight.col));
        acc_t values[N];
        PackMath<T, N>::unpack(load_pack<N>(go_row + j * p.channels), values);
        INVOLUTION_UNROLL
        for (int k = 0; k < N; ++k) sum[k] += tap * values[k];
      }
    }
    store_pack<N>(grad_input + pixel_offset(p.height.input_size, p.width.input_size,
                                            p.channels, n, h, w, c0),
                  PackMath<T, N>::repack(sum));
  }
};

// Channels of grad_output that the channels_last grad_weight keeps in registers (the default
// group size); a multiple of every pack width.
constexpr int kHeldChannels = 16;

// Converts a pack into values[0 .. N).
template <int N, typename T, typename acc_t>
INVOLUTION_HOST_DEVICE void unpack_into(const Pack<T, N>& pack, acc_t* values) {
  acc_t unpacked[N];
  PackMath<T, N>::unpack(pack, unpacked);
  INVOLUTION_UNROLL
  for (int k = 0; k < N; ++k) values[k] = unpacked[k];
}

// sum_k grads[k] * x[k] over one pack; a tap in the padding reads zero (grad * 0, as in the
// reference), so NaN/Inf grads propagate.
template <int N, typename T, typename acc_t>
INVOLUTION_HOST_DEVICE acc_t dot_with_input(const acc_t* grads, const T* x, bool in_input) {
  acc_t values[N] = {};
  if (in_input) PackMath<T, N>::unpack(load_pack<N>(x), values);
  acc_t sum = 0;
  INVOLUTION_UNROLL
  for (int k = 0; k < N; ++k) sum += grads[k] * values[k];
  return sum;
}

// grad_w[n, g, u, v, i, j] = sum_{c in g} grad_out[n, i, j, c] * x[n, h, w, c]: one thread per
// (n, g, i, j) covers every tap and reduces its group's channels itself, N at a time.
template <typename T, int N>
struct GradWeightChannelsLast {
  using acc_t = typename Arith<T>::acc_t;
  Problem p;
  const T* __restrict__ grad_output;
  const T* __restrict__ input;
  T* __restrict__ grad_weight;

  INVOLUTION_HOST_DEVICE int64_t items() const {
    return p.batch * p.groups * p.height.output_size * p.width.output_size;
  }

  INVOLUTION_HOST_DEVICE void operator()(const Thread& t) const {
    const int64_t per_group = channels_per_group(p), total = items();
    for (int64_t item = first_item(t); item < total; item += item_stride(t)) {
      // j fastest, so that neighbouring lanes write neighbouring grad_weight elements.
      const int64_t j = item % p.width.output_size;
      const int64_t i = item / p.width.output_size % p.height.output_size;
      const int64_t g = item / (p.width.output_size * p.height.output_size) % p.groups;
      const int64_t n = item / (p.width.output_size * p.height.output_size * p.groups);
      const T* go = grad_output + pixel_offset(p.height.output_size, p.width.output_size,
                                               p.channels, n, i, j, g * per_group);
      // A group of up to kHeldChannels keeps its grads in registers for all K² taps; a wider
      // one reloads them for each tap (from L1). Both sum in the same order.
      const bool hold = per_group <= kHeldChannels;
      acc_t held[kHeldChannels] = {};
      if (hold) {
        INVOLUTION_UNROLL
        for (int c = 0; c < kHeldChannels; c += N) {
          if (c < per_group) unpack_into<N>(load_pack<N>(go + c), held + c);
        }
      }
      for (int64_t u = 0; u < p.height.kernel_size; ++u) {
        const int64_t h = input_index(p.height, i, u);
        for (int64_t v = 0; v < p.width.kernel_size; ++v) {
          const int64_t w = input_index(p.width, j, v);
          const bool in_input = inside(h, p.height.input_size) && inside(w, p.width.input_size);
          const T* x = input + pixel_offset(p.height.input_size, p.width.input_size, p.channels,
                                            n, in_input ? h : 0, in_input ? w : 0, g * per_group);
          acc_t sum = 0;
          if (hold) {
            INVOLUTION_UNROLL
            for (int c = 0; c < kHeldChannels; c += N) {
              if (c < per_group) sum += dot_with_input<N>(held + c, x + c, in_input);
            }
          } else {
            for (int64_t c = 0; c < per_group; c += N) {
              acc_t grads[N];
              PackMath<T, N>::unpack(load_pack<N>(go + c), grads);
              sum += dot_with_input<N>(grads, x + c, in_input);
            }
          }
          grad_weight[contiguous_weight_offset(p, n, g, u, v, i, j)] = Arith<T>::from_acc(sum);
        }
      }
    }
  }
};

}  // namespace fast
}  // namespace cuda
}  // namespace involution
