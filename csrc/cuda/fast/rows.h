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
#include <cstring>
#include <initializer_list>

#include "../plumbing.h"
#include "channels_last.h"
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

// A window column of the bfloat16 row kernels. Its values are widened to float by byte permutes
// (one per element, as the widening costs anyway) whose selectors, made once per item, give
// zeros for a column outside the row: its loads need no predicate and no pointer select, and
// read a neighbouring row's values (the caller keeps them inside the tensors) that the
// selectors then discard. A single element, and a word's first, go through the column's
// ColumnMask (packs.h); a word's second through a selector of its own.
template <typename T>
struct Bfloat16Column {
  ColumnMask<T> first;
  uint32_t second = kZeroWord;
  Bfloat16Column() = default;
  INVOLUTION_HOST_DEVICE explicit Bfloat16Column(bool keep)
      : first(keep), second(keep ? kWidenHighBfloat16 : kZeroWord) {}

  // The chunk of 8 channels at x, widened (or zeros).
  INVOLUTION_HOST_DEVICE void load_chunk(const T* x, float (&values)[8]) const {
    static_assert(IsBfloat16<T>::value && kWidePack<T> == 8, "one 16-byte pack of bfloat16");
    const Pack<T, 8> pack = load_pack<8>(x);
    uint32_t words[4];
    memcpy(words, &pack, sizeof(words));
    INVOLUTION_UNROLL
    for (int k = 0; k < 4; ++k) {
      values[2 * k] = bits_to_float(permute_with_zero(words[k], first.selector));
      values[2 * k + 1] = bits_to_float(permute_with_zero(words[k], second));
    }
  }

  // The element at x, widened (or zero).
  INVOLUTION_HOST_DEVICE float widen(const T* x) const { return first.load(x); }

  static INVOLUTION_HOST_DEVICE float bits_to_float(uint32_t bits) {
    float value;
    memcpy(&value, &bits, sizeof(value));
    return value;
  }
};

// Whether the bfloat16 row kernels mask their window columns in the widening (Bfloat16Column).
// Not on sm_80: there ptxas spills the selectors beside the accumulators, so bfloat16 reads a
// block of zeros for a column outside the row, as the other types do.
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 900
template <typename T>
constexpr bool kMasksInWidening = false;
#else
template <typename T>
constexpr bool kMasksInWidening = IsBfloat16<T>::value;
#endif

// Whether the weights of columns left .. left+window−1 of every row and tap of image n, group g
// lie inside the weight's storage (offsets 0 .. the last element's, strides being non-negative):
// grad_input reads those of columns outside the output too, and masks them.
INVOLUTION_HOST_DEVICE bool weight_columns_in_tensor(const Problem& p, int64_t n, int64_t g,
                                                     int64_t left, int window) {
  const WeightStrides& s = p.weight;
  const int64_t last = (p.batch - 1) * s.batch + (p.groups - 1) * s.group +
                       (p.height.kernel_size - 1) * s.tap_row +
                       (p.width.kernel_size - 1) * s.tap_col + (p.height.output_size - 1) * s.row +
                       (p.width.output_size - 1) * s.col;
  const int64_t base = n * s.batch + g * s.group;
  return base + left * s.col >= 0 &&
         base + (p.height.kernel_size - 1) * s.tap_row + (p.width.kernel_size - 1) * s.tap_col +
                 (p.height.output_size - 1) * s.row + (left + window - 1) * s.col <= last;
}

// Whether the chunks of CT channels from c0 at columns left .. left+window−1 of the rows
// first_row .. last_row of image n lie inside a channels_last tensor of rows × cols pixels: the
// bfloat16 row kernels load the chunks of columns outside the row too (a neighbouring row's),
// which only at the tensor's two ends would lie outside it.
template <int CT>
INVOLUTION_HOST_DEVICE bool chunk_windows_in_tensor(const Problem& p, int64_t rows, int64_t cols,
                                                    int64_t n, int64_t first_row,
                                                    int64_t last_row, int64_t c0, int64_t left,
                                                    int window) {
  return pixel_offset(rows, cols, p.channels, n, first_row, left, c0) >= 0 &&
         pixel_offset(rows, cols, p.channels, n, last_row, left + window - 1, c0) + CT <=
             p.batch * rows * cols * p.channels;
}

// Runs a one-pixel kernel (channels_last.h) on the pixels of a row item of V pixels × CT channels
// that the item stores, pack by pack: the code of the few items whose windows would reach past
// either end of a tensor.
template <typename OnePixel, int CT, typename T>
INVOLUTION_HOST_DEVICE void one_pixel_kernel(const Problem& p, const RowItem& at, int V,
                                             const T* a, const T* b, T* result) {
  constexpr int N = kWidePack<T>;
  for (int64_t o = at.stored; o < V; ++o) {
    INVOLUTION_UNROLL
    for (int pack = 0; pack < CT / N; ++pack) {
      OnePixel::pixel(p, a, b, result, {at.n, at.g, at.c0 + pack * N, at.row, at.first + o});
    }
  }
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
  static constexpr int CT = kRowChannels<T>, kWindow = V + KW - 1;
  // bfloat16 masks the padding columns in its widening (Bfloat16Column) and adds the padding
  // rows' taps · 0 apart; the other types read a block of zeros for both.
  static constexpr bool kMaskedColumns = kMasksInWidening<T>;
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
      const uint32_t inside_mask = columns_inside(left, kWindow, in_w);
      // The input rows of the tap rows u, and the offset of each one's window, advanced by a step.
      const int64_t h = input_index(p.height, at.row, 0);
      const uint32_t rows_inside =
          indices_inside(h, p.height.dilation, p.height.kernel_size, p.height.input_size);
      int64_t x_offset = pixel_offset(p.height.input_size, in_w, channels, at.n, h, left, at.c0);
      const int64_t x_step = p.height.dilation * in_w * channels;
      acc_t sum[V][CT] = {};
      // One kernel row: the window of input pixels from `x`, each chunk read by load(q, x, values).
      auto kernel_row = [&](const RowWeights<T, KW, V, Order>& taps, const T* x, auto&& load) {
        INVOLUTION_UNROLL
        for (int q = 0; q < kWindow; ++q, x += channels) {
          acc_t values[CT];
          load(q, x, values);
          INVOLUTION_UNROLL
          for (int o = 0; o < V; ++o) {
            const int v = q - o;  // the tap of pixel first + o that reads this column
            if (v < 0 || v >= KW) continue;
            const acc_t tap = taps.widened(o, v);
            INVOLUTION_UNROLL
            for (int k = 0; k < CT; ++k) sum[o][k] += tap * values[k];
          }
        }
      };
      if constexpr (kMaskedColumns) {
        const int64_t in_h = p.height.input_size;
        const int64_t h_last = input_index(p.height, at.row, p.height.kernel_size - 1);
        if (!chunk_windows_in_tensor<CT>(p, in_h, in_w, at.n, h > 0 ? h : 0,
                                         h_last < in_h ? h_last : in_h - 1, at.c0, left, kWindow)) {
          using OnePixel = ForwardChannelsLast<T, kWidePack<T>>;
          one_pixel_kernel<OnePixel, CT>(p, at, V, input, weight, output);
          continue;
        }
        Bfloat16Column<T> columns[kWindow];
        INVOLUTION_UNROLL
        for (int q = 0; q < kWindow; ++q) columns[q] = Bfloat16Column<T>(inside_mask >> q & 1);
        // Rows in the padding load no input: their taps · 0 (0, or NaN for a NaN/Inf tap) start
        // the sums, in a loop of their own that keeps the hot loop free of them.
        for (int u = 0; u < p.height.kernel_size; ++u) {
          if (rows_inside >> u & 1) continue;
          const RowWeights<T, KW, V, Order> taps(weights + u * p.weight.tap_row, p.weight,
                                                 at.first);
          INVOLUTION_UNROLL
          for (int o = 0; o < V; ++o) {
            acc_t padding = 0;
            INVOLUTION_UNROLL
            for (int v = 0; v < KW; ++v) padding += taps.widened(o, v) * acc_t(0);
            INVOLUTION_UNROLL
            for (int k = 0; k < CT; ++k) sum[o][k] += padding;
          }
        }
        // The weight pointers are rebuilt per kernel row from one (kept, they spill beside the
        // selectors).
        const T* w_u = weights + at.first * (Order == WeightOrder::kTapsInner ? p.weight.col : 1);
        for (int u = 0; u < p.height.kernel_size;
             ++u, x_offset += x_step, w_u += p.weight.tap_row) {
          if (!(rows_inside >> u & 1)) continue;
          kernel_row(RowWeights<T, KW, V, Order>(w_u, p.weight, 0), input + x_offset,
                     [&](int q, const T* x, acc_t(&values)[CT]) {
                       columns[q].load_chunk(x, values);
                     });
        }
        INVOLUTION_UNROLL
        for (int o = 0; o < V; ++o) {
          if (o >= stored) store_chunk(out + o * channels, sum[o]);
        }
        continue;
      }
      // The weight pointers are kept across the kernel rows, each advanced once per row.
      RowWeights<T, KW, V, Order> taps(weights, p.weight, at.first);
      for (int u = 0; u < p.height.kernel_size;
           ++u, x_offset += x_step, taps.advance(p.weight.tap_row)) {
        const bool row_inside = rows_inside >> u & 1;
        const uint32_t row_mask = row_inside ? inside_mask : 0u;  // columns read from this row
        kernel_row(taps, input + (row_inside ? x_offset : 0),
                   [&](int q, const T* x, acc_t(&values)[CT]) {
                     load_chunk(row_mask >> q & 1 ? x : zeros, values);
                   });
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
  static constexpr int CT = kRowChannels<T>, kWindow = V + KW - 1;
  // bfloat16 masks the columns outside the output in its widening (Bfloat16Column); the other
  // types read a block of zeros there and no weight.
  static constexpr bool kMaskedColumns = kMasksInWidening<T>;
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
      const uint32_t inside_mask = columns_inside(left, kWindow, out_w);
      // Output row i = h + ph − u·dh of tap row u (unit height stride), the offsets of its window
      // and weights advanced by a step per tap row; rows outside the output are skipped.
      const int64_t i = at.row + p.height.padding;
      const uint32_t rows_inside = indices_inside(i, -p.height.dilation, p.height.kernel_size,
                                                  p.height.output_size);
      int64_t go_offset = pixel_offset(p.height.output_size, out_w, channels, at.n, i, left, at.c0);
      const int64_t go_step = -p.height.dilation * out_w * channels;
      if constexpr (kMaskedColumns) {
        const int64_t out_h = p.height.output_size;
        const int64_t lowest = i - (p.height.kernel_size - 1) * p.height.dilation;
        if (!chunk_windows_in_tensor<CT>(p, out_h, out_w, at.n, lowest > 0 ? lowest : 0,
                                         i < out_h ? i : out_h - 1, at.c0, left, kWindow) ||
            !weight_columns_in_tensor(p, at.n, at.g, left, kWindow)) {
          using OnePixel = GradInputChannelsLast<T, kWidePack<T>>;
          one_pixel_kernel<OnePixel, CT>(p, at, V, grad_output, weight, grad_input);
          continue;
        }
      }
      Bfloat16Column<T> columns[kWindow];  // (bfloat16 only)
      if constexpr (kMaskedColumns) {
        INVOLUTION_UNROLL
        for (int q = 0; q < kWindow; ++q) columns[q] = Bfloat16Column<T>(inside_mask >> q & 1);
      }
      const T* w_row = weight + at.n * p.weight.batch + at.g * p.weight.group + i * p.weight.row;
      const int64_t w_step = p.weight.tap_row - p.height.dilation * p.weight.row;
      acc_t sum[V][CT] = {};
      // Pixels innermost: the KW weight pointers are kept across the kernel rows, each advanced
      // once per row, instead of rebuilt from w_row (which cost ptxas four instructions per
      // weight read). Taps innermost: the V + KW − 1 pointers are rebuilt per row (kept, they
      // spill on sm_80).
      using Weights = RowWeights<T, KW, kWindow, Order>;
      // One kernel row: the window of grad_output pixels from `go`, with the row's weights.
      auto kernel_row = [&](const Weights& taps, const T* go) {
        INVOLUTION_UNROLL
        for (int q = 0; q < kWindow; ++q, go += channels) {
          // Outside the output there is no pixel and no weight: zeros are read instead of both
          // (bfloat16: the column's selectors make them zeros).
          const bool valid = inside_mask >> q & 1;
          acc_t values[CT];
          if constexpr (kMaskedColumns) {
            columns[q].load_chunk(go, values);
          } else {
            load_chunk(valid ? go : zeros, values);
          }
          INVOLUTION_UNROLL
          for (int o = 0; o < V; ++o) {
            const int v = KW - 1 + o - q;  // the tap through which column reads pixel first + o
            if (v < 0 || v >= KW) continue;
            acc_t tap;
            if constexpr (kMaskedColumns) {
              tap = columns[q].widen(taps.at(q, v));
            } else {
              tap = Order == WeightOrder::kTapsInner
                        ? Arith<T>::to_acc(read_only((valid ? taps.at(q, 0) : zeros) + v))
                        : valid ? Arith<T>::to_acc(read_only(taps.at(q, v))) : acc_t(0);
            }
            INVOLUTION_UNROLL
            for (int k = 0; k < CT; ++k) sum[o][k] += tap * values[k];
          }
        }
      };
      if constexpr (Order == WeightOrder::kTapsInner) {
        // Bit 0 of `rows` says whether the kernel row at hand reads an output row (one
        // instruction fewer per row than testing bit u, and the loop ends after the last such
        // row; with the kept pointers below it makes ptxas spill).
        for (uint32_t rows = rows_inside; rows != 0;
             rows >>= 1, go_offset += go_step, w_row += w_step) {
          if (rows & 1) kernel_row(Weights(w_row, p.weight, left), grad_output + go_offset);
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
