// The fast channels-first (NCHW) row kernels: one thread covers kCfRowOutputs (V) neighbouring
// pixels of a row and a chunk of a group's channels, so that each input scalar it loads serves
// up to min(V, KW) taps and each weight serves the whole chunk. Taken where stride and dilation
// along the width are 1 and the kernel width is a compile-time KW (3 or 7, see select.h); every
// other problem runs channels_first.h.
//
//   ForwardRowsChannelsFirst     out[n, c, i, j] = sum_{u,v} w[n, g, u, v, i, j] * x[n, c, ih(i,u), j − pw + v]
//   GradInputRowsChannelsFirst   gx[n, c, h, w]  = sum_{u,v} w[n, g, u, v, i, w + pw − v] * go[n, c, i, w + pw − v]
//                                                  over the rows i whose tap u reads h
//   GradWeightRowsChannelsFirst  gw[n, g, u, v, i, j] = sum_{c in g} go[n, c, i, j] * x[n, c, ih(i,u), j − pw + v]
//
// Per channel and kernel row a thread loads the V + KW − 1 scalars of its window (one base
// pointer, immediate offsets) and does V·KW multiply-adds. Which window columns lie in the
// padding is known once per item (a bit mask): a padding column reads zero (one select per
// value, no load) and is multiplied as the reference multiplies its zero padding, so NaN/Inf
// weights (forward) and grad_output (grad_weight) still propagate; in grad_input a column outside
// the output adds nothing. The weight is read as in rows.h (WeightOrder).
#pragma once

#include <cstdint>
#include <cstring>

#include "../plumbing.h"
#include "channels_first.h"
#include "rows.h"

namespace involution {
namespace cuda {
namespace fast {

// Pixels per thread along a row: 4, 2 for double (whose taps and window take twice the
// registers: 4 spill).
template <typename T>
constexpr int kCfRowOutputs = sizeof(T) == 8 ? 2 : 4;

// Channels per thread in the forward and grad_input: 8 (V·8 = 32 float accumulators, beside the
// V·KW taps and the window; 16 spill under the 128-register cap), 4 for double.
template <typename T>
constexpr int kCfRowChannels = sizeof(T) == 8 ? 4 : 8;

// A channel-first row item: image n, group g, channels c0.., row, and the V pixels
// first..first+V−1 of which those from `stored` on are the item's (the last block of a row is
// shifted left to end at the row's end, as in rows.h).
struct CfRowItem {
  int64_t n, g, c0, row, first, stored;
};

// Items are ordered (n, g, chunk, row, block), blocks fastest: neighbouring lanes take
// neighbouring pixels of the same channels.
template <int V>
INVOLUTION_HOST_DEVICE CfRowItem cf_row_item(const Problem& p, int64_t item, int64_t chunks,
                                             int64_t channels_per_chunk, int64_t rows,
                                             int64_t cols) {
  const int64_t blocks = (cols + V - 1) / V;
  const int64_t block_first = item % blocks * V;
  const int64_t first = block_first + V <= cols ? block_first : cols - V;
  const int64_t row = item / blocks % rows, rest = item / (blocks * rows);
  const int64_t chunk = rest % chunks, g = rest / chunks % p.groups;
  return {rest / (chunks * p.groups), g, g * channels_per_group(p) + chunk * channels_per_chunk,
          row, first, block_first - first};
}

template <int V>
INVOLUTION_HOST_DEVICE int64_t cf_row_items(const Problem& p, int64_t chunks, int64_t rows,
                                            int64_t cols) {
  return p.batch * p.groups * chunks * rows * ((cols + V - 1) / V);
}

// Whether the channels-first row kernels can run a problem: unit stride and dilation along the
// width, kernel width KW, rows at least V (`pixels`) pixels long (input and output), and, with a weight to
// read (forward, grad_input), a whole number of chunks per group and a weight stride of 1 along
// pixels or taps.
template <typename T>
inline bool cf_rows_apply(const Problem& p, int kernel_width, bool reads_weight, int pixels) {
  return p.width.stride == 1 && p.width.dilation == 1 && p.width.kernel_size == kernel_width &&
         p.width.output_size >= pixels && p.width.input_size >= pixels &&
         (!reads_weight || (channels_per_group(p) % kCfRowChannels<T> == 0 &&
                            (p.weight.col == 1 || p.weight.tap_col == 1)));
}

// The masks of the N window columns first, first+1, .. of a row of `size` columns.
template <typename T, int N>
struct WindowMasks {
  ColumnMask<T> column[N];
};
template <typename T, int N>
INVOLUTION_HOST_DEVICE WindowMasks<T, N> window_masks(int64_t first, int64_t size) {
  WindowMasks<T, N> masks;
  INVOLUTION_UNROLL
  for (int q = 0; q < N; ++q) masks.column[q] = ColumnMask<T>(inside(first + q, size));
  return masks;
}

template <typename T, int N>
INVOLUTION_HOST_DEVICE void load_window(const T* x, const WindowMasks<T, N>& masks,
                                        typename Arith<T>::acc_t (&values)[N]) {
  INVOLUTION_UNROLL
  for (int q = 0; q < N; ++q) values[q] = masks.column[q].load(x + q);
}

// Whether every window (columns left .. left+window−1 of rows 0 .. rows−1 of the planes c0 ..
// c_last of image n) lies inside the tensor: the loads of padding columns read a neighbouring
// row; only at the tensor's two ends would they read outside it, and those few items take the
// one-pixel kernels' code instead.
INVOLUTION_HOST_DEVICE bool windows_in_tensor(const Problem& p, int64_t rows, int64_t cols,
                                              int64_t n, int64_t c0, int64_t c_last,
                                              int64_t left, int window) {
  return plane_offset(p.channels, rows, cols, n, c0, 0, 0) + left >= 0 &&
         plane_offset(p.channels, rows, cols, n, c_last, rows - 1, 0) + left + window <=
             p.batch * p.channels * rows * cols;
}

// out[n, c0 .. c0+CT−1, i, first .. first+V−1].
template <typename T, int KW, WeightOrder Order>
struct ForwardRowsChannelsFirst {
  using acc_t = typename Arith<T>::acc_t;
  static constexpr int V = kCfRowOutputs<T>, CT = kCfRowChannels<T>, kWindow = V + KW - 1;
  static constexpr bool kChannelsFirstRows = true;
  Problem p;
  const T* __restrict__ input;
  const T* __restrict__ weight;
  T* __restrict__ output;

  INVOLUTION_HOST_DEVICE int64_t chunks() const { return channels_per_group(p) / CT; }

  INVOLUTION_HOST_DEVICE int64_t items() const {
    return cf_row_items<V>(p, chunks(), p.height.output_size, p.width.output_size);
  }

  INVOLUTION_HOST_DEVICE void operator()(const Thread& t) const {
    const int64_t total = items(), in_h = p.height.input_size, in_w = p.width.input_size;
    const int64_t in_plane = in_h * in_w, out_plane = p.height.output_size * p.width.output_size;
    for (int64_t item = first_item(t); item < total; item += item_stride(t)) {
      const CfRowItem at =
          cf_row_item<V>(p, item, chunks(), CT, p.height.output_size, p.width.output_size);
      const int64_t left = at.first - p.width.padding;  // input column of tap 0 of pixel `first`
      if (!windows_in_tensor(p, in_h, in_w, at.n, at.c0, at.c0 + CT - 1, left, kWindow)) {
        for (int64_t o = at.stored; o < V; ++o) {
          ForwardChannelsFirst<T>::pixel(p, input, weight, output,
                                         {at.n, at.g, at.c0, CT, at.row, at.first + o});
        }
        continue;
      }
      const T* weights = weight + at.n * p.weight.batch + at.g * p.weight.group + at.row * p.weight.row;
      const WindowMasks<T, kWindow> masks = window_masks<T, kWindow>(left, in_w);
      // Rows in the padding load no input: their taps · 0 (0, or NaN for a NaN/Inf tap), added
      // to every channel at the end. A loop of its own keeps the hot loop free of them.
      acc_t padding[V] = {};
      for (int64_t u = 0; u < p.height.kernel_size; ++u) {
        if (inside(input_index(p.height, at.row, u), in_h)) continue;
        const RowWeights<T, KW, V, Order> taps(weights + u * p.weight.tap_row, p.weight, at.first);
        INVOLUTION_UNROLL
        for (int o = 0; o < V; ++o) {
          INVOLUTION_UNROLL
          for (int v = 0; v < KW; ++v) {
            padding[o] += Arith<T>::to_acc(read_only(taps.at(o, v))) * acc_t(0);
          }
        }
      }
      acc_t sum[V][CT] = {};
      for (int64_t u = 0; u < p.height.kernel_size; ++u) {
        const int64_t h = input_index(p.height, at.row, u);
        if (!inside(h, in_h)) continue;
        const RowWeights<T, KW, V, Order> taps(weights + u * p.weight.tap_row, p.weight, at.first);
        acc_t tap[V][KW];
        INVOLUTION_UNROLL
        for (int o = 0; o < V; ++o) {
          INVOLUTION_UNROLL
          for (int v = 0; v < KW; ++v) tap[o][v] = Arith<T>::to_acc(read_only(taps.at(o, v)));
        }
        const T* x = input + plane_offset(p.channels, in_h, in_w, at.n, at.c0, h, 0) + left;
        INVOLUTION_UNROLL
        for (int k = 0; k < CT; ++k, x += in_plane) {
          acc_t values[kWindow];
          load_window(x, masks, values);
          INVOLUTION_UNROLL
          for (int o = 0; o < V; ++o) {
            INVOLUTION_UNROLL
            for (int v = 0; v < KW; ++v) sum[o][k] += tap[o][v] * values[o + v];
          }
        }
      }
      T* out = output + plane_offset(p.channels, p.height.output_size, p.width.output_size, at.n,
                                     at.c0, at.row, at.first);
      INVOLUTION_UNROLL
      for (int k = 0; k < CT; ++k, out += out_plane) {
        INVOLUTION_UNROLL
        for (int o = 0; o < V; ++o) {
          if (o >= at.stored) out[o] = Arith<T>::from_acc(sum[o][k] + padding[o]);
        }
      }
    }
  }
};

// grad_x[n, c0 .. c0+CT−1, h, first .. first+V−1]: for each row i that reads h, the window of
// grad_output columns left .. left+V+KW−2 (left = first + pw − (KW − 1)); pixel first + o takes
// tap v = KW − 1 + o − q of window column q.
template <typename T, int KW, WeightOrder Order>
struct GradInputRowsChannelsFirst {
  using acc_t = typename Arith<T>::acc_t;
  static constexpr int V = kCfRowOutputs<T>, CT = kCfRowChannels<T>, kWindow = V + KW - 1;
  static constexpr bool kChannelsFirstRows = true;
  Problem p;
  const T* __restrict__ grad_output;
  const T* __restrict__ weight;
  T* __restrict__ grad_input;

  INVOLUTION_HOST_DEVICE int64_t chunks() const { return channels_per_group(p) / CT; }

  INVOLUTION_HOST_DEVICE int64_t items() const {
    return cf_row_items<V>(p, chunks(), p.height.input_size, p.width.input_size);
  }

  INVOLUTION_HOST_DEVICE void operator()(const Thread& t) const {
    const int64_t total = items(), out_h = p.height.output_size, out_w = p.width.output_size;
    const int64_t in_plane = p.height.input_size * p.width.input_size, out_plane = out_h * out_w;
    for (int64_t item = first_item(t); item < total; item += item_stride(t)) {
      const CfRowItem at =
          cf_row_item<V>(p, item, chunks(), CT, p.height.input_size, p.width.input_size);
      const int64_t left = at.first + p.width.padding - (KW - 1);
      if (!windows_in_tensor(p, out_h, out_w, at.n, at.c0, at.c0 + CT - 1, left, kWindow) ||
          !weight_columns_in_tensor(p, at.n, at.g, left, kWindow)) {
        for (int64_t o = at.stored; o < V; ++o) {
          GradInputChannelsFirst<T>::pixel(p, grad_output, weight, grad_input,
                                           {at.n, at.g, at.c0, CT, at.row, at.first + o});
        }
        continue;
      }
      const T* weights = weight + at.n * p.weight.batch + at.g * p.weight.group;
      const WindowMasks<T, kWindow> masks = window_masks<T, kWindow>(left, out_w);
      // Output row i = (h + ph − u·dh) / sh where divisible, tracked as quotient and remainder
      // so that the loop over u divides nothing.
      const int64_t sh = p.height.stride, dq = p.height.dilation / sh, dr = p.height.dilation % sh;
      int64_t i = (at.row + p.height.padding) / sh, r = (at.row + p.height.padding) % sh;
      acc_t sum[V][CT] = {};
      for (int64_t u = 0; u < p.height.kernel_size; ++u, i -= dq, r -= dr) {
        if (r < 0) {
          r += sh;
          --i;
        }
        if (r != 0 || i < 0 || i >= out_h) continue;
        const T* go = grad_output + plane_offset(p.channels, out_h, out_w, at.n, at.c0, i, 0) + left;
        // tap[o][v]: the weight of window column q = KW − 1 + o − v; zero outside the output
        // (where the column's values are zero too: it adds nothing). Loaded along the order
        // whose stride is 1, one base pointer live at a time.
        const T* row = weights + u * p.weight.tap_row + i * p.weight.row;
        acc_t tap[V][KW];
        if (Order == WeightOrder::kPixelsInner) {
          INVOLUTION_UNROLL
          for (int v = 0; v < KW; ++v) {
            const T* column0 = row + v * p.weight.tap_col + left;
            INVOLUTION_UNROLL
            for (int o = 0; o < V; ++o) {
              tap[o][v] = masks.column[KW - 1 + o - v].load(column0 + (KW - 1 + o - v));
            }
          }
        } else {
          INVOLUTION_UNROLL
          for (int q = 0; q < kWindow; ++q) {
            const T* tap0 = row + (left + q) * p.weight.col;
            INVOLUTION_UNROLL
            for (int o = 0; o < V; ++o) {
              const int v = KW - 1 + o - q;
              if (v >= 0 && v < KW) tap[o][v] = masks.column[q].load(tap0 + v);
            }
          }
        }
        INVOLUTION_UNROLL
        for (int k = 0; k < CT; ++k, go += out_plane) {
          acc_t values[kWindow];
          load_window(go, masks, values);
          INVOLUTION_UNROLL
          for (int o = 0; o < V; ++o) {
            INVOLUTION_UNROLL
            for (int v = 0; v < KW; ++v) sum[o][k] += tap[o][v] * values[KW - 1 + o - v];
          }
        }
      }
      T* gx = grad_input + plane_offset(p.channels, p.height.input_size, p.width.input_size,
                                        at.n, at.c0, at.row, at.first);
      INVOLUTION_UNROLL
      for (int k = 0; k < CT; ++k, gx += in_plane) {
        INVOLUTION_UNROLL
        for (int o = 0; o < V; ++o) {
          if (o >= at.stored) gx[o] = Arith<T>::from_acc(sum[o][k]);
        }
      }
    }
  }
};

// grad_w[n, g, u, 0 .. KW−1, i, first .. first+V−1], reducing the group's channels in the
// thread: per channel, V grad_output scalars and the V + KW − 1 input scalars of the window.
template <typename T, int KW>
struct GradWeightRowsChannelsFirst {
  using acc_t = typename Arith<T>::acc_t;
  // 7 pixels for float at KW = 7 (the V·KW sums are the only accumulators; the RedNet row
  // widths 56, 28, 14 and 7 are multiples of 7, so no block is shifted); the half types spill
  // with 7 on sm_80 (13 window values and their selectors beside the 49 sums), double with 4.
  static constexpr int V = sizeof(T) == 8 ? 2 : KW == 7 && sizeof(T) == 4 ? 7 : 4;
  static constexpr int kWindow = V + KW - 1;
  // Two channels per trip halve the loop's own instructions per multiply-add (four spill; so do
  // two in some sm_80 builds, whose register allocation differs).
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 900
  static constexpr int kChannelsPerTrip = 1;
#else
  static constexpr int kChannelsPerTrip = 2;
#endif
  static constexpr bool kChannelsFirstRows = true;
  Problem p;
  const T* __restrict__ grad_output;
  const T* __restrict__ input;
  T* __restrict__ grad_weight;

  // Items are ordered (n, g, u, row, block): the kernel row takes the place of the chunk.
  INVOLUTION_HOST_DEVICE int64_t items() const {
    return cf_row_items<V>(p, p.height.kernel_size, p.height.output_size, p.width.output_size);
  }

  // One channel: sum[o][v] += go[o] * x[o + v].
  INVOLUTION_HOST_DEVICE static void add_channel(const T* go, const T* x,
                                                 const WindowMasks<T, kWindow>& masks,
                                                 acc_t (&sum)[V][KW]) {
    acc_t grads[V], values[kWindow];
    INVOLUTION_UNROLL
    for (int o = 0; o < V; ++o) grads[o] = Arith<T>::to_acc(read_only(go + o));
    load_window(x, masks, values);
    INVOLUTION_UNROLL
    for (int o = 0; o < V; ++o) {
      INVOLUTION_UNROLL
      for (int v = 0; v < KW; ++v) sum[o][v] += grads[o] * values[o + v];
    }
  }

  INVOLUTION_HOST_DEVICE void operator()(const Thread& t) const {
    const int64_t total = items(), in_h = p.height.input_size, in_w = p.width.input_size;
    const int64_t out_h = p.height.output_size, out_w = p.width.output_size;
    const int64_t in_plane = in_h * in_w, out_plane = out_h * out_w;
    const int64_t per_group = channels_per_group(p), blocks = (out_w + V - 1) / V;
    for (int64_t item = first_item(t); item < total; item += item_stride(t)) {
      const CfRowItem at = cf_row_item<V>(p, item, p.height.kernel_size, 0, out_h, out_w);
      const int64_t u = item / (blocks * out_h) % p.height.kernel_size;
      const int64_t h = input_index(p.height, at.row, u), left = at.first - p.width.padding;
      const int64_t c0 = at.g * per_group;
      if (!windows_in_tensor(p, in_h, in_w, at.n, c0, c0 + per_group - 1, left, kWindow)) {
        for (int64_t o = at.stored; o < V; ++o) {
          GradWeightChannelsFirst<T>::taps(p, grad_output, input, grad_weight, at.n, at.g, u, 0,
                                           at.row, at.first + o);
        }
        continue;
      }
      // A row in the padding reads row 0 with every column masked: grad_output · 0.
      const bool row_inside = inside(h, in_h);
      const WindowMasks<T, kWindow> masks = window_masks<T, kWindow>(row_inside ? left : -kWindow, in_w);
      const T* x = input + plane_offset(p.channels, in_h, in_w, at.n, c0, row_inside ? h : 0, 0) + left;
      const T* go = grad_output + plane_offset(p.channels, out_h, out_w, at.n, c0, at.row, at.first);
      acc_t sum[V][KW] = {};
      int64_t c = 0;
      for (; c + kChannelsPerTrip <= per_group;
           c += kChannelsPerTrip, x += kChannelsPerTrip * in_plane, go += kChannelsPerTrip * out_plane) {
        INVOLUTION_UNROLL
        for (int k = 0; k < kChannelsPerTrip; ++k) {
          add_channel(go + k * out_plane, x + k * in_plane, masks, sum);
        }
      }
      for (; c < per_group; ++c, x += in_plane, go += out_plane) add_channel(go, x, masks, sum);
      T* gw = grad_weight + contiguous_weight_offset(p, at.n, at.g, u, 0, at.row, at.first);
      INVOLUTION_UNROLL
      for (int v = 0; v < KW; ++v, gw += out_plane) {
        INVOLUTION_UNROLL
        for (int o = 0; o < V; ++o) {
          if (o >= at.stored) gw[o] = Arith<T>::from_acc(sum[o][v]);
        }
      }
    }
  }
};

}  // namespace fast
}  // namespace cuda
}  // namespace involution
