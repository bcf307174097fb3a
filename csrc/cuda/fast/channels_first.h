// The fast channels-first (contiguous NCHW) kernels, as __host__ __device__ functors (see
// ../plumbing.h for the functor contract and the launch).
//
//   ForwardChannelsFirst<T>     out[n, c, i, j] = sum_{u,v} w[n, g, u, v, i, j] * x[n, c, ih(i,u), iw(j,v)]
//   GradInputChannelsFirst<T>   gx[n, c, h, w]  = sum over the taps (u, v) and pixels (i, j) that
//                                                 read (h, w) of w[n, g, u, v, i, j] * go[n, c, i, j]
//   GradWeightChannelsFirst<T>  gw[n, g, u, v, i, j] = sum_{c in g} go[n, c, i, j] * x[n, c, ih(i,u), iw(j,v)]
//
// Thread mapping: forward and grad_input give one thread up to kChannelsPerThread (16) channels
// of one group at one pixel, items ordered (n, g, chunk, row, col) with col fastest, so that
// neighbouring lanes take neighbouring pixels and every access is coalesced across a warp.
// grad_weight gives one thread a row of up to kTapsPerThread (8) kernel taps of one group at
// one output pixel and reduces the group's channels itself. Designed so that each generated
// weight is loaded once for the thread's channels, grad_output once per channel for the row's
// taps, and no atomics are needed. The row kernels of rows_channels_first.h take the problems
// they apply to (select.h); these take every other one, and the row kernels' few items whose
// windows would reach past either end of a tensor (pixel(), taps()).
#pragma once

#include <cstdint>

#include "../plumbing.h"

namespace involution {
namespace cuda {
namespace fast {

// Channels of one group that one thread covers in the channels-first kernels: each weight is
// loaded once for all of them (16 = the default group size, so a group is one thread).
constexpr int kChannelsPerThread = 16;

INVOLUTION_HOST_DEVICE int64_t channel_chunks(const Problem& p) {
  return (channels_per_group(p) + kChannelsPerThread - 1) / kChannelsPerThread;
}

// Where a channels-first item stands: image n, group g, channels c0 .. c0+count-1 (count may
// exceed 16: only the first 16 are the item's), pixel (row, col) of a rows × cols plane.
struct ChannelChunk {
  int64_t n, g, c0, count, row, col;
};

// Items are ordered (n, g, chunk, row, col) with col fastest, so neighbouring lanes take
// neighbouring pixels of the same channels and every access is coalesced across a warp.
INVOLUTION_HOST_DEVICE ChannelChunk channel_chunk(const Problem& p, int64_t item, int64_t rows,
                                                  int64_t cols) {
  const int64_t chunks = channel_chunks(p), per_group = channels_per_group(p);
  const int64_t chunk = item / (rows * cols) % chunks;
  const int64_t g = item / (rows * cols * chunks) % p.groups;
  const int64_t first = chunk * kChannelsPerThread;
  return {item / (rows * cols * chunks * p.groups), g, g * per_group + first, per_group - first,
          item / cols % rows, item % cols};
}

// Stores the item's sums to first[k * plane] for its channels k.
template <typename T, typename acc_t>
INVOLUTION_HOST_DEVICE void store_channels(T* first, int64_t plane, int64_t count,
                                           const acc_t (&sum)[kChannelsPerThread]) {
  INVOLUTION_UNROLL
  for (int k = 0; k < kChannelsPerThread; ++k) {
    if (k < count) first[k * plane] = Arith<T>::from_acc(sum[k]);
  }
}

// out[n, c, i, j] for the channels c0 .. c0+15 of one group (fewer at a group's end).
template <typename T>
struct ForwardChannelsFirst {
  using acc_t = typename Arith<T>::acc_t;
  Problem p;
  const T* __restrict__ input;
  const T* __restrict__ weight;
  T* __restrict__ output;

  INVOLUTION_HOST_DEVICE int64_t items() const {
    return p.batch * p.groups * channel_chunks(p) * p.height.output_size * p.width.output_size;
  }

  INVOLUTION_HOST_DEVICE void operator()(const Thread& t) const {
    const int64_t total = items();
    for (int64_t item = first_item(t); item < total; item += item_stride(t)) {
      pixel(p, input, weight, output,
            channel_chunk(p, item, p.height.output_size, p.width.output_size));
    }
  }

  // One item; also the row kernels' path for the few items at a tensor's ends.
  INVOLUTION_HOST_DEVICE static void pixel(const Problem& p, const T* __restrict__ input,
                                           const T* __restrict__ weight, T* __restrict__ output,
                                           const ChannelChunk& at) {
    const int64_t in_plane = p.height.input_size * p.width.input_size;
    const int64_t out_plane = p.height.output_size * p.width.output_size;
    const int64_t n = at.n, g = at.g, c0 = at.c0, count = at.count, i = at.row, j = at.col;
    acc_t sum[kChannelsPerThread] = {};
    for (int64_t u = 0; u < p.height.kernel_size; ++u) {
      const int64_t h = input_index(p.height, i, u);
      const bool row_inside = inside(h, p.height.input_size);
      const T* x_row = input + plane_offset(p.channels, p.height.input_size, p.width.input_size,
                                            n, c0, row_inside ? h : 0, 0);
      const T* taps = weight + weight_offset(p, n, g, u, 0, i, j);
      for (int64_t v = 0; v < p.width.kernel_size; ++v) {
        const int64_t w = input_index(p.width, j, v);
        const acc_t tap = Arith<T>::to_acc(read_only(taps + v * p.weight.tap_col));
        const bool in_input = row_inside && inside(w, p.width.input_size);
        const T* x = x_row + (in_input ? w : 0);
        INVOLUTION_UNROLL
        for (int k = 0; k < kChannelsPerThread; ++k) {
          if (k < count) {
            // Padding reads zero and is multiplied: NaN/Inf taps propagate.
            sum[k] += tap * (in_input ? Arith<T>::to_acc(read_only(x + k * in_plane)) : acc_t(0));
          }
        }
      }
    }
    store_channels(output + plane_offset(p.channels, p.height.output_size, p.width.output_size,
                                         n, c0, i, j),
                   out_plane, count, sum);
  }
};

// grad_x[n, c, h, w] for the channels c0 .. c0+15 of one group, each weight loaded once for them.
template <typename T>
struct GradInputChannelsFirst {
  using acc_t = typename Arith<T>::acc_t;
  Problem p;
  const T* __restrict__ grad_output;
  const T* __restrict__ weight;
  T* __restrict__ grad_input;

  INVOLUTION_HOST_DEVICE int64_t items() const {
    return p.batch * p.groups * channel_chunks(p) * p.height.input_size * p.width.input_size;
  }

  INVOLUTION_HOST_DEVICE void operator()(const Thread& t) const {
    const int64_t total = items();
    for (int64_t item = first_item(t); item < total; item += item_stride(t)) {
      pixel(p, grad_output, weight, grad_input,
            channel_chunk(p, item, p.height.input_size, p.width.input_size));
    }
  }

  // One item; also the row kernels' path for the few items at a tensor's ends.
  INVOLUTION_HOST_DEVICE static void pixel(const Problem& p, const T* __restrict__ grad_output,
                                           const T* __restrict__ weight,
                                           T* __restrict__ grad_input, const ChannelChunk& at) {
    const int64_t in_plane = p.height.input_size * p.width.input_size;
    const int64_t out_plane = p.height.output_size * p.width.output_size;
    const int64_t n = at.n, g = at.g, c0 = at.c0, count = at.count, h = at.row, w = at.col;
    acc_t sum[kChannelsPerThread] = {};
    for (int64_t u = 0; u < p.height.kernel_size; ++u) {
      int64_t i;
      if (!output_index(p.height, h, u, &i)) continue;
      const T* go_row = grad_output + plane_offset(p.channels, p.height.output_size,
                                                   p.width.output_size, n, c0, i, 0);
      const T* taps = weight + weight_offset(p, n, g, u, 0, i, 0);
      for (int64_t v = 0; v < p.width.kernel_size; ++v) {
        int64_t j;
        if (!output_index(p.width, w, v, &j)) continue;
        const acc_t tap = Arith<T>::to_acc(read_only(taps + v * p.weight.tap_col + j * p.weight.col));
        const T* go = go_row + j;
        INVOLUTION_UNROLL
        for (int k = 0; k < kChannelsPerThread; ++k) {
          if (k < count) sum[k] += tap * Arith<T>::to_acc(read_only(go + k * out_plane));
        }
      }
    }
    store_channels(grad_input + plane_offset(p.channels, p.height.input_size,
                                             p.width.input_size, n, c0, h, w),
                   in_plane, count, sum);
  }
};

// Kernel taps of one row that one thread of the channels-first grad_weight covers: grad_output
// is loaded once per channel for all of them.
constexpr int kTapsPerThread = 8;

INVOLUTION_HOST_DEVICE int64_t tap_chunks(const Problem& p) {
  return (p.width.kernel_size + kTapsPerThread - 1) / kTapsPerThread;
}

// grad_w[n, g, u, v0 .. v0+7, i, j], reducing the group's channels in the thread.
template <typename T>
struct GradWeightChannelsFirst {
  using acc_t = typename Arith<T>::acc_t;
  Problem p;
  const T* __restrict__ grad_output;
  const T* __restrict__ input;
  T* __restrict__ grad_weight;

  INVOLUTION_HOST_DEVICE int64_t items() const {
    return p.batch * p.groups * p.height.kernel_size * tap_chunks(p) * p.height.output_size *
           p.width.output_size;
  }

  INVOLUTION_HOST_DEVICE void operator()(const Thread& t) const {
    const int64_t chunks = tap_chunks(p), total = items();
    const int64_t out_plane = p.height.output_size * p.width.output_size;
    for (int64_t item = first_item(t); item < total; item += item_stride(t)) {
      const int64_t j = item % p.width.output_size;
      const int64_t i = item / p.width.output_size % p.height.output_size;
      const int64_t chunk = item / out_plane % chunks;
      const int64_t u = item / (out_plane * chunks) % p.height.kernel_size;
      const int64_t g = item / (out_plane * chunks * p.height.kernel_size) % p.groups;
      const int64_t n = item / (out_plane * chunks * p.height.kernel_size * p.groups);
      taps(p, grad_output, input, grad_weight, n, g, u, chunk * kTapsPerThread, i, j);
    }
  }

  // One item; also the row kernels' path for the few items at a tensor's ends.
  INVOLUTION_HOST_DEVICE static void taps(const Problem& p, const T* __restrict__ grad_output,
                                          const T* __restrict__ input,
                                          T* __restrict__ grad_weight, int64_t n, int64_t g,
                                          int64_t u, int64_t v0, int64_t i, int64_t j) {
    const int64_t per_group = channels_per_group(p);
    const int64_t h = input_index(p.height, i, u);
    const bool row_inside = inside(h, p.height.input_size);
    int64_t columns[kTapsPerThread];
    bool in_input[kTapsPerThread];
    INVOLUTION_UNROLL
    for (int k = 0; k < kTapsPerThread; ++k) {
      columns[k] = input_index(p.width, j, v0 + k);
      in_input[k] = row_inside && v0 + k < p.width.kernel_size &&
                    inside(columns[k], p.width.input_size);
    }
    acc_t sum[kTapsPerThread] = {};
    for (int64_t c = g * per_group; c < (g + 1) * per_group; ++c) {
      const acc_t grad = Arith<T>::to_acc(read_only(grad_output + plane_offset(
          p.channels, p.height.output_size, p.width.output_size, n, c, i, j)));
      const T* row = input + plane_offset(p.channels, p.height.input_size, p.width.input_size,
                                          n, c, row_inside ? h : 0, 0);
      INVOLUTION_UNROLL
      for (int k = 0; k < kTapsPerThread; ++k) {
        // A tap in the padding reads zero (grad * 0, as in the reference).
        sum[k] += grad * (in_input[k] ? Arith<T>::to_acc(read_only(row + columns[k])) : acc_t(0));
      }
    }
    INVOLUTION_UNROLL
    for (int k = 0; k < kTapsPerThread; ++k) {
      if (v0 + k < p.width.kernel_size) {
        grad_weight[contiguous_weight_offset(p, n, g, u, v0 + k, i, j)] = Arith<T>::from_acc(sum[k]);
      }
    }
  }
};

}  // namespace fast
}  // namespace cuda
}  // namespace involution
