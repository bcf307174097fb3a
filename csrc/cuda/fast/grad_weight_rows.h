// The fast channels_last grad_weight row kernel: one thread covers V neighbouring output pixels
// of a row, one group of kGradWeightRowChannels channels and a run of kernel rows:
//
//   GradWeightRowsChannelsLast<T, KW>   gw[n, g, u, v, i, j] = sum_{c in g} go[n, i, j, c] * x[n, ih(i,u), j − pw + v, c]
//
// The V pixels' grad_output channels stay in registers (widened once) for all the item's taps;
// each kernel row streams its V + KW − 1 input pixels once, and each input pixel, loaded and
// widened once, serves the up to V taps (o, v = q − o) that read it: V + KW − 1 pack loads per
// kernel row instead of V·KW, and the widening of half types amortised over V taps. Each weight
// element is one thread's chain of multiply-adds over the group's channels in order, stored once.
// Taken where stride and dilation along the width are 1, the kernel width is a compile-time KW
// (3 or 7, see select.h), the group has exactly kGradWeightRowChannels channels in 16-byte packs,
// the output rows are at least V pixels long and the kernel at most 32 rows high; every other
// problem runs channels_last.h.
//
// Small problems split the kernel rows evenly among several items (make), so that the grid has
// enough blocks to fill the GPU; each item then reloads its pixels' grad_output packs.
// Designed for the instruction budget of the static model (scripts/kernel_model.py): the kernel
// row is fully unrolled, input packs and stores are base + immediate, a padding column (or a
// kernel row outside the input) reads a block of zeros (one pointer select per column) that is
// multiplied like the reference's zero padding, so NaN/Inf grads propagate. The launch geometry
// lives in the functor (kernel parameters, constant memory), not in registers: with the 64 held
// grads every register counts under the 128-register cap.
#pragma once

#include <cstdint>
#include <initializer_list>

#include "../plumbing.h"
#include "packs.h"
#include "rows.h"

namespace involution {
namespace cuda {
namespace fast {

// Channels per group the kernel takes (RedNet's group size), all held per pixel.
constexpr int kGradWeightRowChannels = 16;

// Pixels per thread: 4 (4·16 held grads, within 128 registers), 1 for double, whose held grads
// need twice the registers (double serves the tests, not the budget).
template <typename T>
constexpr int kGradWeightRowOutputs = sizeof(T) == 8 ? 1 : 4;

// Items a launch aims for when choosing how many kernel rows an item covers: about 8 rounds of
// warp-items per resident warp at 2 blocks per SM on 132 SMs (plumbing.h, blocks_for), so that
// the last round's imbalance (one warp-item per warp at most) costs little.
constexpr int64_t kGradWeightRowTargetItems = int64_t{1} << 19;

static_assert(kGradWeightRowChannels * sizeof(double) <= kZeroBlockBytes,
              "a padding column reads one group of zeros");

// Loads the group's kGradWeightRowChannels channels at x (16-byte packs) as accumulation values.
template <typename T>
INVOLUTION_HOST_DEVICE void load_group(const T* x,
                                       typename Arith<T>::acc_t (&values)[kGradWeightRowChannels]) {
  constexpr int N = kWidePack<T>;
  INVOLUTION_UNROLL
  for (int pack = 0; pack < kGradWeightRowChannels / N; ++pack) {
    typename Arith<T>::acc_t unpacked[N];
    HeldPackMath<T, N>::unpack(load_pack<N>(x + pack * N), unpacked);
    INVOLUTION_UNROLL
    for (int k = 0; k < N; ++k) values[pack * N + k] = unpacked[k];
  }
}

// Whether the grad_weight row kernel can run a channels_last problem: unit stride and dilation
// along the width, kernel width KW, kGradWeightRowChannels channels per group in aligned 16-byte
// packs (grad_output and input), output rows of at least V pixels.
template <typename T>
inline bool grad_weight_rows_apply(const Problem& p, int kernel_width,
                                   std::initializer_list<const void*> bases) {
  return channels_last_pack<T>(p, bases) == kWidePack<T> && p.width.stride == 1 &&
         p.width.dilation == 1 && p.width.kernel_size == kernel_width &&
         channels_per_group(p) == kGradWeightRowChannels &&
         p.width.output_size >= kGradWeightRowOutputs<T> && p.height.kernel_size <= 32;
}

template <typename T, int KW>
struct GradWeightRowsChannelsLast {
  using acc_t = typename Arith<T>::acc_t;
  static constexpr int V = kGradWeightRowOutputs<T>, CG = kGradWeightRowChannels;
  static constexpr int N = kWidePack<T>;

  // The launch's geometry, computed once on the host (make): kernel parameters are read from
  // constant memory, so the grid-stride loop keeps none of it in registers.
  struct Geometry {
    int64_t blocks;         // blocks of V pixels per row
    int64_t rows_per_item;  // kernel rows per item
    int64_t slices;         // items per (n, row, block, g): ceil(KH / rows_per_item)
    int64_t items;
    int64_t tap_stride;     // grad_weight elements between taps v and v + 1 of one pixel
    int64_t x_step;         // input elements between kernel rows u and u + 1
  };
  Problem p;
  const T* __restrict__ grad_output;
  const T* __restrict__ input;
  T* __restrict__ grad_weight;
  Geometry geometry;

  // Items (n, slice, row, block, g); an item covers all kernel rows, or an even share of them
  // when whole rows would leave fewer than kGradWeightRowTargetItems items.
  static GradWeightRowsChannelsLast make(const Problem& p, const T* grad_output, const T* input,
                                         T* grad_weight) {
    Geometry s{};
    s.blocks = (p.width.output_size + V - 1) / V;
    const int64_t base = p.batch * p.height.output_size * s.blocks * p.groups;
    const int64_t kh = p.height.kernel_size;
    int64_t slices = base == 0 ? 1 : (kGradWeightRowTargetItems + base - 1) / base;
    if (slices > kh) slices = kh;
    s.rows_per_item = (kh + slices - 1) / slices;
    s.slices = (kh + s.rows_per_item - 1) / s.rows_per_item;
    s.items = base * s.slices;
    s.tap_stride = p.height.output_size * p.width.output_size;
    s.x_step = p.height.dilation * p.width.input_size * p.channels;
    return {p, grad_output, input, grad_weight, s};
  }

  INVOLUTION_HOST_DEVICE int64_t items() const { return geometry.items; }

  INVOLUTION_HOST_DEVICE void operator()(const Thread& t) const {
    const int64_t out_w = p.width.output_size, out_h = p.height.output_size;
    const int64_t in_w = p.width.input_size, channels = p.channels;
    const int64_t tap_stride = geometry.tap_stride, row_stride = KW * tap_stride;
    const T* zeros = zero_block<T>();
    for (int64_t item = first_item(t); item < geometry.items; item += item_stride(t)) {
      // Ordered (n, slice, row, block, g), groups fastest: a warp's lanes load neighbouring
      // channels of the same pixels.
      const int64_t g = item % p.groups;
      int64_t rest = item / p.groups;
      const int64_t block_first = rest % geometry.blocks * V;
      rest /= geometry.blocks;
      const int64_t row = rest % out_h;
      rest /= out_h;
      const int64_t u0 = rest % geometry.slices * geometry.rows_per_item;
      const int64_t n = rest / geometry.slices;
      const int64_t u1 = u0 + geometry.rows_per_item < p.height.kernel_size
                             ? u0 + geometry.rows_per_item
                             : p.height.kernel_size;
      // The last block of a row is shifted left to end at the row's end; it stores only the
      // pixels from `stored` on (the others are its neighbour's).
      const int64_t first = block_first + V <= out_w ? block_first : out_w - V;
      const int64_t stored = block_first - first;
      const int64_t left = first - p.width.padding;  // input column of tap 0 of pixel `first`
      // Bits 0 .. V+KW−2: the window's columns inside the input; bit 16 + o: pixel first + o
      // stored (one register for both).
      uint32_t flags = columns_inside(left, V + KW - 1, in_w);
      INVOLUTION_UNROLL
      for (int o = 0; o < V; ++o) {
        if (o >= stored) flags |= uint32_t{1} << (16 + o);
      }

      acc_t grads[V][CG];
      INVOLUTION_UNROLL
      for (int o = 0; o < V; ++o) {
        load_group(grad_output + pixel_offset(out_h, out_w, channels, n, row, first + o, g * CG),
                   grads[o]);
      }
      // gw[n, g, u, 0, row, first]: tap v of pixel first + o at row_taps + v·tap_stride + o.
      T* row_taps = grad_weight + contiguous_weight_offset(p, n, g, u0, 0, row, first);

      // Bit r of row_bits set when kernel row u0 + r reads a row inside the input (r < 32,
      // see grad_weight_rows_apply): the loop below then tests one bit per kernel row.
      const int64_t h0 = input_index(p.height, row, u0);
      int count = static_cast<int>(u1 - u0);
      uint32_t row_bits = 0;
      for (int r = 0; r < count; ++r) {
        if (inside(h0 + r * p.height.dilation, p.height.input_size)) row_bits |= uint32_t{1} << r;
      }
      int64_t x_offset = pixel_offset(p.height.input_size, in_w, channels, n, h0, left, g * CG);
      for (; count > 0; --count, row_bits >>= 1, x_offset += geometry.x_step) {
        const uint32_t mask = row_bits & 1 ? flags : 0;
        const T* x = input + x_offset;
        // Tap v's pointer is made at column v, as a step from tap v − 1's, and is last used at
        // column v + V − 1: about V pointers live at once instead of KW.
        T* taps[KW];
        INVOLUTION_UNROLL
        for (int q = 0; q < V + KW - 1; ++q, x += channels) {
          if (q < KW) taps[q] = q == 0 ? row_taps : taps[q - 1] + tap_stride;
          const T* column = mask >> q & 1 ? x : zeros;
          // Pixel first + o's sum through tap v = q − o, over the channels in order, one pack
          // of the column at a time (its widened values die with the pack).
          acc_t sums[V] = {};
          INVOLUTION_UNROLL
          for (int pack = 0; pack < CG / N; ++pack) {
            acc_t values[N];
            PackMath<T, N>::unpack(load_pack<N>(column + pack * N), values);
            INVOLUTION_UNROLL
            for (int o = 0; o < V; ++o) {
              if (q - o < 0 || q - o >= KW) continue;
              INVOLUTION_UNROLL
              for (int k = 0; k < N; ++k) sums[o] += grads[o][pack * N + k] * values[k];
            }
          }
          INVOLUTION_UNROLL
          for (int o = 0; o < V; ++o) {
            const int v = q - o;  // the tap of pixel first + o that reads this column
            if (v < 0 || v >= KW) continue;
            if (flags >> (16 + o) & 1) taps[v][o] = Arith<T>::from_acc(sums[o]);
          }
        }
        row_taps += row_stride;
      }
    }
  }
};

}  // namespace fast
}  // namespace cuda
}  // namespace involution
