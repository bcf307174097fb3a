// The fast channels_last row kernels: one thread covers V (2 to 4) neighbouring pixels of a
// row and a chunk of a group's channels, so that each input pack it loads serves up to V·KW
// multiply-adds (V + KW − 1 loads per kernel row instead of V·KW) and each weight serves the
// whole chunk. Taken where stride and dilation along the width are 1 and the kernel width is a
// compile-time KW (3 or 7, see select.h); every other problem runs channels_last.h.
//
//   ForwardRowsChannelsLast      out[n, i, j, c] = sum_{u,v} w[n, g, u, v, i, j] * x[n, ih(i,u), j − pw + v, c]
//   GradInputRowsChannelsLast    gx[n, h, w, c]  = sum_{u,v} w[n, g, u, v, i, w + pw − v] * go[n, i, w + pw − v, c]
//                                                  with i = h + ph − u·dh (unit height stride)
//
// Designed for the instruction budget of the static model (scripts/kernel_model.py): the kernel
// row is fully unrolled, so every weight and pack address is a base pointer plus an immediate;
// reads that fall in the padding are redirected to a block of zeros (a pointer select per pack,
// no per-element select) and multiplied as the reference multiplies its zero padding, so NaN/Inf
// weights still propagate. The weight is read with immediate offsets along the order whose
// stride is 1 (WeightOrder); other weight strides run channels_last.h.
#pragma once

#include <cstdint>
#include <initializer_list>

#include "../plumbing.h"
#include "packs.h"

namespace involution {
namespace cuda {
namespace fast {

// Pixels per thread along a row: at most 4 (each kernel's V says how many fit the 128-register
// cap), so rows of at least 4 pixels hold a whole block.
constexpr int kRowOutputs = 4;

// Channels per thread: 8 (V·8 = 32 float accumulators), 4 for double.
template <typename T>
constexpr int kRowChannels = sizeof(T) == 8 ? 4 : 8;

// Which weight stride is 1, giving immediate offsets along it.
enum class WeightOrder {
  kPixelsInner,  // the pixel column (contiguous (B, G, KH, KW, Ho, Wo))
  kTapsInner,    // the kernel tap (a view of a channels_last (B, G·KH·KW, Ho, Wo) conv output)
  kPixelPairs,   // kPixelsInner with every even pixel column at a 4-byte boundary, so that a
                 // bfloat16 forward reads its weights two pixels per load (weight_pairs_aligned)
};

// Bytes of zeros that a read in the padding loads instead (one group of 16 doubles at most).
constexpr int kZeroBlockBytes = 128;

#if defined(__CUDACC__)
__device__ alignas(16) const unsigned char kZeroBlock[kZeroBlockBytes] = {};
#endif

// The block of zeros, as elements of T.
template <typename T>
INVOLUTION_HOST_DEVICE const T* zero_block() {
#if defined(__CUDA_ARCH__)
  return reinterpret_cast<const T*>(kZeroBlock);
#else
  alignas(16) static const unsigned char zeros[kZeroBlockBytes] = {};
  return reinterpret_cast<const T*>(zeros);
#endif
}
static_assert(kRowChannels<double> * sizeof(double) <= kZeroBlockBytes, "zeros for a chunk");

// Loads a chunk of kRowChannels<T> channels (its packs) into accumulation-type values.
template <typename T>
INVOLUTION_HOST_DEVICE void load_chunk(const T* x, typename Arith<T>::acc_t (&values)[kRowChannels<T>]) {
  constexpr int N = kWidePack<T>;
  INVOLUTION_UNROLL
  for (int pack = 0; pack < kRowChannels<T> / N; ++pack) {
    typename Arith<T>::acc_t unpacked[N];
    PackMath<T, N>::unpack(load_pack<N>(x + pack * N), unpacked);
    INVOLUTION_UNROLL
    for (int k = 0; k < N; ++k) values[pack * N + k] = unpacked[k];
  }
}

// Stores a chunk of values as packs.
template <typename T>
INVOLUTION_HOST_DEVICE void store_chunk(T* x, const typename Arith<T>::acc_t (&values)[kRowChannels<T>]) {
  constexpr int N = kWidePack<T>;
  INVOLUTION_UNROLL
  for (int pack = 0; pack < kRowChannels<T> / N; ++pack) {
    typename Arith<T>::acc_t chunk[N];
    INVOLUTION_UNROLL
    for (int k = 0; k < N; ++k) chunk[k] = values[pack * N + k];
    store_pack<N>(x + pack * N, PackMath<T, N>::repack(chunk));
  }
}

// Where a row item stands: image n, group g, channels c0.., row, and the V pixels first..first+V−1
// of which the thread stores those from `stored` on. The last block of a row is shifted left to
// end at the row's end (it recomputes pixels of its neighbour but stores only its own), so no
// pixel of a block lies past the row.
struct RowItem {
  int64_t n, g, c0, row, first, stored;
};

// Items are ordered (n, row, block, g, chunk), chunks and groups fastest: the lanes of a warp read
// neighbouring channels of the same pixels, one contiguous segment per pack.
template <typename T, int V>
INVOLUTION_HOST_DEVICE RowItem row_item(const Problem& p, int64_t item, int64_t rows,
                                        int64_t cols) {
  const int64_t per_group = channels_per_group(p), chunks = per_group / kRowChannels<T>;
  const int64_t blocks = (cols + V - 1) / V;
  const int64_t chunk = item % chunks, g = item / chunks % p.groups;
  const int64_t rest = item / (chunks * p.groups);
  const int64_t block_first = rest % blocks * V;
  const int64_t first = block_first + V <= cols ? block_first : cols - V;
  return {rest / (blocks * rows), g, g * per_group + chunk * kRowChannels<T>, rest / blocks % rows,
          first, block_first - first};
}

template <typename T, int V>
INVOLUTION_HOST_DEVICE int64_t row_items(const Problem& p, int64_t rows, int64_t cols) {
  return p.batch * rows * ((cols + V - 1) / V) * p.groups *
         (channels_per_group(p) / kRowChannels<T>);
}

// Whether the row kernels can run a problem in channels_last with this weight: unit stride and
// dilation along the width (and the height, for grad_input: `unit_height_stride`), at most 32
// kernel rows, a whole number of chunks per group, rows at least 4 pixels long (input and
// output), 16-byte aligned packs, and a weight stride of 1 along pixels or taps.
template <typename T>
inline bool rows_apply(const Problem& p, int kernel_width, std::initializer_list<const void*> bases,
                       bool unit_height_stride) {
  const bool aligned = channels_last_pack<T>(p, bases) == kWidePack<T>;
  return aligned && p.width.stride == 1 && p.width.dilation == 1 &&
         (!unit_height_stride || p.height.stride == 1) &&
         p.width.kernel_size == kernel_width && p.height.kernel_size <= 32 &&
         channels_per_group(p) % kRowChannels<T> == 0 &&
         p.width.output_size >= kRowOutputs && p.width.input_size >= kRowOutputs &&
         (p.weight.col == 1 || p.weight.tap_col == 1);
}

// The weights of one kernel row (taps v = 0 .. KW−1) for the pixel columns column0 + o,
// o = 0 .. Cols−1: a few base pointers, each advanced once by a stride, plus immediate offsets
// along the order whose stride is 1.
template <typename T, int KW, int Cols, WeightOrder Order>
struct RowWeights {
  static constexpr bool kPixels = Order != WeightOrder::kTapsInner;
  static constexpr int kBases = kPixels ? KW : Cols;
  const T* base[kBases];

  INVOLUTION_HOST_DEVICE RowWeights(const T* row, const WeightStrides& s, int64_t column0) {
    const T* next = kPixels ? row + column0 : row + column0 * s.col;
    const int64_t step = kPixels ? s.tap_col : s.col;
    INVOLUTION_UNROLL
    for (int b = 0; b < kBases; ++b) {
      base[b] = next;
      next += step;
    }
  }

  // The same weights `step` elements on (the next kernel row's).
  INVOLUTION_HOST_DEVICE void advance(int64_t step) {
    INVOLUTION_UNROLL
    for (int b = 0; b < kBases; ++b) base[b] += step;
  }

  // The weight of tap v at column column0 + o.
  INVOLUTION_HOST_DEVICE const T* at(int o, int v) const {
    return kPixels ? base[v] + o : base[o] + v;
  }

  // The weight of tap v at column column0 + o, widened. kPixelPairs (bfloat16): the aligned
  // pair of columns o & ~1 and o | 1 is loaded and widened as one pack (the compiler merges the
  // two reads; the CPU emulation checks the alignment).
  INVOLUTION_HOST_DEVICE typename Arith<T>::acc_t widened(int o, int v) const {
    if constexpr (Order == WeightOrder::kPixelPairs) {
      static_assert(IsBfloat16<T>::value, "pairs of bfloat16 only");
      typename Arith<T>::acc_t pair[2];
      PackMath<T, 2>::unpack(load_pack<2>(at(o & ~1, v)), pair);
      return pair[o & 1];
    } else {
      return Arith<T>::to_acc(read_only(at(o, v)));
    }
  }
};

// Whether a forward in channels_last can read its bfloat16 weights in pairs (kPixelPairs): the
// weight is 4-byte aligned and every stride to a pixel pair's first column is even, the output
// width included (a row's shifted last block then starts at an even column too).
template <typename T>
inline bool weight_pairs_aligned(const Problem& p, const void* weight) {
  const WeightStrides& s = p.weight;
  return IsBfloat16<T>::value && s.col == 1 && reinterpret_cast<uintptr_t>(weight) % 4 == 0 &&
         (s.batch | s.group | s.tap_row | s.tap_col | s.row | p.width.output_size) % 2 == 0;
}

// Bit q set when column first + q of a row of `size` columns exists (q < count <= 32; unrolled,
// count is a compile-time constant at every call).
INVOLUTION_HOST_DEVICE uint32_t columns_inside(int64_t first, int count, int64_t size) {
  uint32_t mask = 0;
  INVOLUTION_UNROLL
  for (int q = 0; q < 32; ++q) {
    if (q < count && inside(first + q, size)) mask |= uint32_t{1} << q;
  }
  return mask;
}

// Bit q set when index first + q·step of an axis of `size` exists (q < count <= 32): computed
// once per item, so that the kernel rows only test bits.
INVOLUTION_HOST_DEVICE uint32_t indices_inside(int64_t first, int64_t step, int64_t count,
                                               int64_t size) {
  uint32_t mask = 0;
  for (int64_t q = 0; q < count; ++q) {
    if (inside(first + q * step, size)) mask |= uint32_t{1} << q;
  }
  return mask;
}

// out[n, i, first .. first+V−1, c0 .. c0+CT−1], streaming the V + KW − 1 input pixels of each
// kernel row once.
template <typename T, int KW, WeightOrder Order>
struct ForwardRowsChannelsLast {
  using acc_t = typename Arith<T>::acc_t;
  // Pixels per thread: as many as fit the 128-register cap without spilling (4 for half types,
  // which amortise each widened element over more taps; 3 for float, 2 with the taps-inner
  // weight, whose per-pixel bases take registers; 2 for double).
  static constexpr int V = sizeof(T) == 2                                           ? 4
                           : sizeof(T) == 4 && Order != WeightOrder::kTapsInner ? 3
                                                                                  : 2;
  static constexpr int CT = kRowChannels<T>;
  // select.h launches kPixelPairs where weight_pairs_aligned holds
  static constexpr bool kReadsWeightPairs = IsBfloat16<T>::value;
  static_assert(!kReadsWeightPairs || V % 2 == 0, "blocks of whole pixel pairs");
  Problem p;
  const T* __restrict__ input;
  const T* __restrict__ weight;
  T* __restrict__ output;

  INVOLUTION_HOST_DEVICE int64_t items() const {
    return row_items<T, V>(p, p.height.output_size, p.width.output_size);
  }

  INVOLUTION_HOST_DEVICE void operator()(const Thread& t) const {
    const int64_t total = items(), in_w = p.width.input_size, channels = p.channels;
    const T* zeros = zero_block<T>();
    for (int64_t item = first_item(t); item < total; item += item_stride(t)) {
      const RowItem at = row_item<T, V>(p, item, p.height.output_size, p.width.output_size);
      // Where the results go, computed up front: fewer values live across the kernel rows.
      T* const out = output + pixel_offset(p.height.output_size, p.width.output_size, channels,
                                           at.n, at.row, at.first, at.c0);
      const int stored = static_cast<int>(at.stored);
      const int64_t left = at.first - p.width.padding;  // input column of tap 0 of pixel `first`
      const T* weights = weight + at.n * p.weight.batch + at.g * p.weight.group + at.row * p.weight.row;
      const uint32_t inside_mask = columns_inside(left, V + KW - 1, in_w);
      // The input rows of the tap rows u, and the offset of each one's window, advanced by a step.
      const int64_t h = input_index(p.height, at.row, 0);
      const uint32_t rows_inside =
          indices_inside(h, p.height.dilation, p.height.kernel_size, p.height.input_size);
      int64_t x_offset = pixel_offset(p.height.input_size, in_w, channels, at.n, h, left, at.c0);
      const int64_t x_step = p.height.dilation * in_w * channels;
      acc_t sum[V][CT] = {};
      // The weight pointers are kept across the kernel rows, each advanced once per row.
      RowWeights<T, KW, V, Order> taps(weights, p.weight, at.first);
      for (int u = 0; u < p.height.kernel_size;
           ++u, x_offset += x_step, taps.advance(p.weight.tap_row)) {
        const bool row_inside = rows_inside >> u & 1;
        const T* x = input + (row_inside ? x_offset : 0);
        const uint32_t row_mask = row_inside ? inside_mask : 0u;  // columns read from this row
        INVOLUTION_UNROLL
        for (int q = 0; q < V + KW - 1; ++q, x += channels) {
          acc_t values[CT];
          load_chunk(row_mask >> q & 1 ? x : zeros, values);
          INVOLUTION_UNROLL
          for (int o = 0; o < V; ++o) {
            const int v = q - o;  // the tap of pixel first + o that reads this column
            if (v < 0 || v >= KW) continue;
            const acc_t tap = taps.widened(o, v);
            INVOLUTION_UNROLL
            for (int k = 0; k < CT; ++k) sum[o][k] += tap * values[k];
          }
        }
      }
      INVOLUTION_UNROLL
      for (int o = 0; o < V; ++o) {
        if (o >= stored) store_chunk(out + o * channels, sum[o]);
      }
    }
  }
};

// grad_x[n, h, first .. first+V−1, c0 .. c0+CT−1]: for each row i that reads h, the V + KW − 1
// grad_output pixels j = first + pw − (KW − 1) .. first + V − 1 + pw are streamed once; pixel
// first + o takes tap v = first + o + pw − j of each.
template <typename T, int KW, WeightOrder Order>
struct GradInputRowsChannelsLast {
  using acc_t = typename Arith<T>::acc_t;
  // Pixels per thread: as many as fit the 128-register cap without spilling on sm_80 and sm_90
  // (4 for half types, else 2).
  static constexpr int V = sizeof(T) == 2 ? 4 : 2;
  static constexpr int CT = kRowChannels<T>;
  Problem p;
  const T* __restrict__ grad_output;
  const T* __restrict__ weight;
  T* __restrict__ grad_input;

  INVOLUTION_HOST_DEVICE int64_t items() const {
    return row_items<T, V>(p, p.height.input_size, p.width.input_size);
  }

  INVOLUTION_HOST_DEVICE void operator()(const Thread& t) const {
    const int64_t total = items(), out_w = p.width.output_size, channels = p.channels;
    const T* zeros = zero_block<T>();
    for (int64_t item = first_item(t); item < total; item += item_stride(t)) {
      const RowItem at = row_item<T, V>(p, item, p.height.input_size, p.width.input_size);
      T* const out = grad_input + pixel_offset(p.height.input_size, p.width.input_size, channels,
                                               at.n, at.row, at.first, at.c0);
      const int stored = static_cast<int>(at.stored);
      // Output column read through tap KW − 1 by pixel `first`: the window's first column.
      const int64_t left = at.first + p.width.padding - (KW - 1);
      const uint32_t inside_mask = columns_inside(left, V + KW - 1, out_w);
      // Output row i = h + ph − u·dh of tap row u (unit height stride), the offsets of its window
      // and weights advanced by a step per tap row; rows outside the output are skipped.
      const int64_t i = at.row + p.height.padding;
      const uint32_t rows_inside = indices_inside(i, -p.height.dilation, p.height.kernel_size,
                                                  p.height.output_size);
      int64_t go_offset = pixel_offset(p.height.output_size, out_w, channels, at.n, i, left, at.c0);
      const int64_t go_step = -p.height.dilation * out_w * channels;
      const T* w_row = weight + at.n * p.weight.batch + at.g * p.weight.group + i * p.weight.row;
      const int64_t w_step = p.weight.tap_row - p.height.dilation * p.weight.row;
      acc_t sum[V][CT] = {};
      // Pixels innermost: the KW weight pointers are kept across the kernel rows, each advanced
      // once per row, instead of rebuilt from w_row (which cost ptxas four instructions per
      // weight read). Taps innermost: the V + KW − 1 pointers are rebuilt per row (kept, they
      // spill on sm_80).
      using Weights = RowWeights<T, KW, V + KW - 1, Order>;
      // One kernel row: the window of grad_output pixels from `go`, with the row's weights.
      auto kernel_row = [&](const Weights& taps, const T* go) {
        INVOLUTION_UNROLL
        for (int q = 0; q < V + KW - 1; ++q, go += channels) {
          // Outside the output there is no pixel and no weight: zeros are read instead of both.
          const bool valid = inside_mask >> q & 1;
          acc_t values[CT];
          load_chunk(valid ? go : zeros, values);
          INVOLUTION_UNROLL
          for (int o = 0; o < V; ++o) {
            const int v = KW - 1 + o - q;  // the tap through which column reads pixel first + o
            if (v < 0 || v >= KW) continue;
            const acc_t tap =
                Order == WeightOrder::kTapsInner
                    ? Arith<T>::to_acc(read_only((valid ? taps.at(q, 0) : zeros) + v))
                    : valid ? Arith<T>::to_acc(read_only(taps.at(q, v))) : acc_t(0);
            INVOLUTION_UNROLL
            for (int k = 0; k < CT; ++k) sum[o][k] += tap * values[k];
          }
        }
      };
      if constexpr (Order == WeightOrder::kTapsInner) {
        for (int u = 0; u < p.height.kernel_size; ++u, go_offset += go_step, w_row += w_step) {
          if (rows_inside >> u & 1) kernel_row(Weights(w_row, p.weight, left), grad_output + go_offset);
        }
      } else {
        Weights kept(w_row, p.weight, left);
        for (int u = 0; u < p.height.kernel_size; ++u, go_offset += go_step, kept.advance(w_step)) {
          if (rows_inside >> u & 1) kernel_row(kept, grad_output + go_offset);
        }
      }
      INVOLUTION_UNROLL
      for (int o = 0; o < V; ++o) {
        if (o >= stored) store_chunk(out + o * channels, sum[o]);
      }
    }
  }
};

}  // namespace fast
}  // namespace cuda
}  // namespace involution
