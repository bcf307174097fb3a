// Building blocks of the CPU forward and grad_input for float and bfloat16
// (forward_channel_tasks.h, grad_input_channel_tasks.h): vectors along 16 channels of a group,
// one zmm, two ymm or four xmm registers of float (dispatch.h says which rows take them), so that
//   - a tap's weight, one float per pixel, is a broadcast folded into the multiply-add (a
//     shuffle of its own at the baseline level);
//   - every input load is one aligned cache line;
//   - no lane is padding, whatever the row length;
//   - a weight row is read once per 16 channels (per group in RedNet).
// A task's input rows are stored as one such vector per padded column (transposed from image
// planes, or read as they are from channels_last rows), and its results are transposed back as
// they are written. With vectors along a row (tiles.h) instead, almost every AVX-512 input load
// spans two cache lines (the tile loop runs 36% slower than aligned: tile_loop_cpu_*.json).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <type_traits>
#include <utility>

#include "dispatch.h"
#include "kernels.h"
#include "prefetch_lines.h"

namespace involution {
namespace cpu {

constexpr int64_t kGroupLanes = 16;  // channels per vector: one AVX-512 register of float
typedef float ChannelVector __attribute__((vector_size(64)));  // 64-byte aligned

// A channel vector in the level's registers (native_t): one at avx512, two halves at avx2.
template <typename native_t>
constexpr int64_t kParts = sizeof(ChannelVector) / sizeof(native_t);
template <typename native_t>
constexpr int64_t kPartLanes = sizeof(native_t) / sizeof(float);

// Part h of the 16 floats at `first`.
template <typename native_t>
INVOLUTION_CPU_INLINE native_t& part(float* first, int64_t h) {
  return *reinterpret_cast<native_t*>(first + h * kPartLanes<native_t>);
}
template <typename native_t>
INVOLUTION_CPU_INLINE const native_t& part(const float* first, int64_t h) {
  return *reinterpret_cast<const native_t*>(first + h * kPartLanes<native_t>);
}
template <typename native_t>
INVOLUTION_CPU_INLINE native_t& part(ChannelVector& vector, int64_t h) {
  return part<native_t>(reinterpret_cast<float*>(&vector), h);
}
template <typename native_t>
INVOLUTION_CPU_INLINE const native_t& part(const ChannelVector& vector, int64_t h) {
  return part<native_t>(reinterpret_cast<const float*>(&vector), h);
}

using ChannelVectorBuffer = LineBuffer<ChannelVector>;  // zeroed, 64-byte aligned

// The types the channel vectors take: float, and bfloat16 converted as it is moved.
template <typename scalar_t>
constexpr bool kChannelVectorTypes =
    std::is_same<scalar_t, float>::value || std::is_same<scalar_t, c10::BFloat16>::value;

// Part h of 16 values at `first`, as floats: float as it is, bfloat16 widened (the upper half
// of a float).
template <typename native_t, typename T>
INVOLUTION_CPU_INLINE native_t load_part(const T* first, int64_t h) {
  if constexpr (std::is_same<T, float>::value) {
    return part<native_t>(first, h);
  } else {
    static_assert(std::is_same<T, c10::BFloat16>::value, "channel vectors: float or bfloat16");
    return load_weight<native_t>(first + h * kPartLanes<native_t>);
  }
}

// Stores `value` as part h of 16 values at `first`: bfloat16 rounded as c10::BFloat16 rounds a
// float (tiles.h: bfloat16_bits).
template <typename native_t, typename T>
INVOLUTION_CPU_INLINE void store_part(T* first, int64_t h, const native_t& value) {
  if constexpr (std::is_same<T, float>::value) {
    part<native_t>(first, h) = value;
  } else {
    static_assert(std::is_same<T, c10::BFloat16>::value, "channel vectors: float or bfloat16");
    const auto bits = bfloat16_bits(value);
    __builtin_memcpy(first + h * kPartLanes<native_t>, &bits, sizeof(bits));
  }
}

#if defined(__clang__) || __GNUC__ >= 12
#define INVOLUTION_SHUFFLE(a, b, ...) __builtin_shufflevector(a, b, __VA_ARGS__)
#else
#define INVOLUTION_SHUFFLE(a, b, ...) __builtin_shuffle(a, b, (Vector<int32_t, 64>{__VA_ARGS__}))
#endif

// GCC 12 cannot see that the 16 rows of a block are all written before they are transposed
// (they are filled pixel by pixel, in for_pixels) and warns that they may be uninitialized.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

// In place: rows[r][k] becomes rows[k][r], 16 x 16 floats in 16 zmm registers. The usual four
// stages (pairs of floats, pairs of pairs, then 128-bit blocks twice): 64 shuffles.
template <typename vector_t>
INVOLUTION_CPU_INLINE void transpose_16x16(vector_t (&rows)[16]) {
  vector_t t[16], s[16];
  for (int k = 0; k < 16; k += 2) {  // in each 128-bit block: a0 b0 a1 b1 / a2 b2 a3 b3
    t[k] = INVOLUTION_SHUFFLE(rows[k], rows[k + 1], 0, 16, 1, 17, 4, 20, 5, 21, 8, 24, 9, 25,
                              12, 28, 13, 29);
    t[k + 1] = INVOLUTION_SHUFFLE(rows[k], rows[k + 1], 2, 18, 3, 19, 6, 22, 7, 23, 10, 26, 11,
                                  27, 14, 30, 15, 31);
  }
  // s[4c + m], block b: column 4b + m of rows 4c .. 4c + 3
  for (int c = 0; c < 16; c += 4) {
    for (int h = 0; h < 2; ++h) {
      s[c + 2 * h] = INVOLUTION_SHUFFLE(t[c + h], t[c + h + 2], 0, 1, 16, 17, 4, 5, 20, 21, 8, 9,
                                        24, 25, 12, 13, 28, 29);
      s[c + 2 * h + 1] = INVOLUTION_SHUFFLE(t[c + h], t[c + h + 2], 2, 3, 18, 19, 6, 7, 22, 23,
                                            10, 11, 26, 27, 14, 15, 30, 31);
    }
  }
  // column 4b + m: block b of s[m], s[4 + m], s[8 + m], s[12 + m] (a 4 x 4 transpose of blocks)
  for (int m = 0; m < 4; ++m) {
#define INVOLUTION_EVEN_BLOCKS 0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27
#define INVOLUTION_ODD_BLOCKS 4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30, 31
    const vector_t u0 = INVOLUTION_SHUFFLE(s[m], s[4 + m], INVOLUTION_EVEN_BLOCKS);
    const vector_t u1 = INVOLUTION_SHUFFLE(s[m], s[4 + m], INVOLUTION_ODD_BLOCKS);
    const vector_t u2 = INVOLUTION_SHUFFLE(s[8 + m], s[12 + m], INVOLUTION_EVEN_BLOCKS);
    const vector_t u3 = INVOLUTION_SHUFFLE(s[8 + m], s[12 + m], INVOLUTION_ODD_BLOCKS);
    rows[m] = INVOLUTION_SHUFFLE(u0, u2, INVOLUTION_EVEN_BLOCKS);
    rows[8 + m] = INVOLUTION_SHUFFLE(u0, u2, INVOLUTION_ODD_BLOCKS);
    rows[4 + m] = INVOLUTION_SHUFFLE(u1, u3, INVOLUTION_EVEN_BLOCKS);
    rows[12 + m] = INVOLUTION_SHUFFLE(u1, u3, INVOLUTION_ODD_BLOCKS);
#undef INVOLUTION_EVEN_BLOCKS
#undef INVOLUTION_ODD_BLOCKS
  }
}

// In place: 8 x 8 floats in 8 ymm registers (unpack, shuffle pairs, swap 128-bit halves): 24
// shuffles.
template <typename vector_t>
INVOLUTION_CPU_INLINE void transpose_8x8(vector_t* rows, int64_t stride) {
  vector_t t[8], s[8];
  for (int k = 0; k < 8; k += 2) {
    t[k] = INVOLUTION_SHUFFLE(rows[k * stride], rows[(k + 1) * stride], 0, 8, 1, 9, 4, 12, 5, 13);
    t[k + 1] =
        INVOLUTION_SHUFFLE(rows[k * stride], rows[(k + 1) * stride], 2, 10, 3, 11, 6, 14, 7, 15);
  }
  // s[4q + m], 128-bit half b: column 4b + m of rows 4q .. 4q + 3
  for (int q = 0; q < 8; q += 4) {
    for (int h = 0; h < 2; ++h) {
      s[q + 2 * h] = INVOLUTION_SHUFFLE(t[q + h], t[q + h + 2], 0, 1, 8, 9, 4, 5, 12, 13);
      s[q + 2 * h + 1] = INVOLUTION_SHUFFLE(t[q + h], t[q + h + 2], 2, 3, 10, 11, 6, 7, 14, 15);
    }
  }
  for (int m = 0; m < 4; ++m) {
    rows[m * stride] = INVOLUTION_SHUFFLE(s[m], s[4 + m], 0, 1, 2, 3, 8, 9, 10, 11);
    rows[(4 + m) * stride] = INVOLUTION_SHUFFLE(s[m], s[4 + m], 4, 5, 6, 7, 12, 13, 14, 15);
  }
}

// In place: 4 x 4 floats in 4 xmm registers (unpack pairs, then move 64-bit halves): 8
// shuffles.
template <typename vector_t>
INVOLUTION_CPU_INLINE void transpose_4x4(vector_t* rows, int64_t stride) {
  const vector_t t0 = INVOLUTION_SHUFFLE(rows[0], rows[stride], 0, 4, 1, 5);
  const vector_t t1 = INVOLUTION_SHUFFLE(rows[0], rows[stride], 2, 6, 3, 7);
  const vector_t t2 = INVOLUTION_SHUFFLE(rows[2 * stride], rows[3 * stride], 0, 4, 1, 5);
  const vector_t t3 = INVOLUTION_SHUFFLE(rows[2 * stride], rows[3 * stride], 2, 6, 3, 7);
  rows[0] = INVOLUTION_SHUFFLE(t0, t2, 0, 1, 4, 5);
  rows[stride] = INVOLUTION_SHUFFLE(t0, t2, 2, 3, 6, 7);
  rows[2 * stride] = INVOLUTION_SHUFFLE(t1, t3, 0, 1, 4, 5);
  rows[3 * stride] = INVOLUTION_SHUFFLE(t1, t3, 2, 3, 6, 7);
}

// In place: block[r] (16 floats as kParts parts) becomes column r of the 16 x 16 block.
template <typename native_t>
INVOLUTION_CPU_INLINE void transpose_block(native_t (&block)[16][kParts<native_t>]) {
  if constexpr (kParts<native_t> == 1) {
    native_t rows[16];
    for (int r = 0; r < 16; ++r) rows[r] = block[r][0];
    transpose_16x16(rows);
    for (int r = 0; r < 16; ++r) block[r][0] = rows[r];
  } else if constexpr (kParts<native_t> == 4) {
    // 4 x 4 blocks: block (R, h) is pixels 4R .. 4R + 3, channels 4h .. 4h + 3; transposed, it
    // is channels 4h .. of pixels 4R .., so it moves to (h, R)
    for (int b = 0; b < 4; ++b) {
      for (int h = 0; h < 4; ++h) transpose_4x4(&block[4 * b][h], 4);
    }
    for (int b = 0; b < 4; ++b) {
      for (int h = b + 1; h < 4; ++h) {
        for (int m = 0; m < 4; ++m) std::swap(block[4 * b + m][h], block[4 * h + m][b]);
      }
    }
  } else {
    static_assert(kParts<native_t> == 2, "channel vectors: one zmm, two ymm or four xmm registers");
    // [[A, B], [C, D]] of 8 x 8 blocks becomes [[A', C'], [B', D']]
    transpose_8x8(&block[0][0], 2);
    transpose_8x8(&block[0][1], 2);
    transpose_8x8(&block[8][0], 2);
    transpose_8x8(&block[8][1], 2);
    for (int r = 0; r < 8; ++r) std::swap(block[r][1], block[8 + r][0]);
  }
}

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

// The pixels of a run of image rows, as channel vectors: `rows` rows of `length` pixels, pixel
// (r, k) at vectors[r * row_step + k]. A task's input rows (row_step: the buffer's padded
// columns, the first `length` of them after the padding) or its results (row_step = length).
struct ChannelRows {
  ChannelVector* vectors;
  int64_t rows, length, row_step;
  ChannelVector& at(int64_t r, int64_t k) const { return vectors[r * row_step + k]; }
};

// Calls f(e, r, k) for the pixels e = r * length + k of `rows` rows in order, with r and k kept
// incrementally (no division per pixel).
template <typename F>
INVOLUTION_CPU_INLINE void for_pixels(int64_t first, int64_t count, int64_t length, F&& f) {
  int64_t r = first / length, k = first % length;
  for (int64_t e = first; e < first + count; ++e) {
    f(e, r, k);
    if (++k == length) k = 0, ++r;
  }
}

// move_pixels for rows that are back to back in each channel, or one row, where step == 1.
template <typename native_t, bool kToPlanes, typename Plane>
INVOLUTION_CPU_INLINE void move_pixels_of_rows(Plane* plane, int64_t channel_stride,
                                               int64_t row_stride, int64_t step,
                                               const ChannelRows& pixels) {
  const int64_t length = pixels.length, count = pixels.rows * length;
  auto element = [&](int64_t c, int64_t r, int64_t k) INVOLUTION_CPU_LAMBDA -> Plane& {
    return plane[c * channel_stride + r * row_stride + k * step];
  };
  int64_t e = 0;
  if (step == 1) {
    constexpr int64_t kCount = kParts<native_t>;
    for (; e + 16 <= count; e += 16) {
      native_t block[16][kCount];
      if constexpr (kToPlanes) {
        for_pixels(e, 16, length, [&](int64_t q, int64_t r, int64_t k) INVOLUTION_CPU_LAMBDA {
          for (int64_t h = 0; h < kCount; ++h) block[q - e][h] = part<native_t>(pixels.at(r, k), h);
        });
        transpose_block(block);
        for (int64_t c = 0; c < 16; ++c) {
          for (int64_t h = 0; h < kCount; ++h) store_part(&element(c, 0, e), h, block[c][h]);
        }
      } else {
        for (int64_t c = 0; c < 16; ++c) {
          for (int64_t h = 0; h < kCount; ++h) {
            block[c][h] = load_part<native_t>(&element(c, 0, e), h);
          }
        }
        transpose_block(block);
        for_pixels(e, 16, length, [&](int64_t q, int64_t r, int64_t k) INVOLUTION_CPU_LAMBDA {
          for (int64_t h = 0; h < kCount; ++h) part<native_t>(pixels.at(r, k), h) = block[q - e][h];
        });
      }
    }
  }
  for_pixels(e, count - e, length, [&](int64_t, int64_t r, int64_t k) INVOLUTION_CPU_LAMBDA {
    ChannelVector& vector = pixels.at(r, k);
    if (channel_stride == 1) {
      for (int64_t h = 0; h < kParts<native_t>; ++h) {
        if constexpr (kToPlanes) {
          store_part(&element(0, r, k), h, part<native_t>(vector, h));
        } else {
          part<native_t>(vector, h) = load_part<native_t>(&element(0, r, k), h);
        }
      }
      return;
    }
    for (int64_t c = 0; c < 16; ++c) {
      if constexpr (kToPlanes) {
        element(c, r, k) = static_cast<std::remove_const_t<Plane>>(vector[c]);
      } else {
        vector[c] = static_cast<float>(element(c, r, k));
      }
    }
  });
}

// Image rows of 16 channels from `plane` (channel c's rows at plane + c * channel_stride, pixel
// (r, k) at r * row_stride + k * step) into `pixels`, or back (kToPlanes). Where a channel's
// pixels are contiguous (step 1), 16 consecutive ones are one unaligned vector per channel and
// a transpose, a row at a time unless the rows are back to back; where the channels are
// (channels_last) a pixel is one vector; otherwise elements go one by one.
template <typename native_t, bool kToPlanes, typename Plane>
INVOLUTION_CPU_INLINE void move_pixels(Plane* plane, int64_t channel_stride, int64_t row_stride,
                                       int64_t step, const ChannelRows& pixels) {
  if (step == 1 && row_stride != pixels.length && pixels.rows > 1) {
    for (int64_t r = 0; r < pixels.rows; ++r) {
      move_pixels_of_rows<native_t, kToPlanes>(
          plane + r * row_stride, channel_stride, row_stride, step,
          ChannelRows{&pixels.at(r, 0), 1, pixels.length, pixels.row_step});
    }
    return;
  }
  move_pixels_of_rows<native_t, kToPlanes>(plane, channel_stride, row_stride, step, pixels);
}

// Output pixels j0 .. j0 + kPixels of one row, 16 channels, all taps: every input vector loaded
// serves each (pixel, tap) pair that reads it (unit column stride and dilation, kernel width
// kWidth), or one multiply-add each (any stride and dilation: kWidth = 0). The weight's float
// per pixel and tap is broadcast by the multiply-add. `inputs`: kernel row 0's padded column
// j0 * stride; `weights`: kernel row 0, column 0 of pixel j0 (rows and taps by their strides).
// Each kernel row also requests its share of `prefetch`, the next task's lines, in turn.
// Weights are float, or (the forward's) bfloat16 read in place from the weight tensor.
template <typename weight_t>
struct PixelTileArgsOf {
  const ChannelVector* inputs;
  int64_t input_row_step, input_column_step, input_tap_step;  // kernel row, output, tap
  const weight_t* weights;
  int64_t weight_row_stride, weight_tap_stride;
  int64_t kernel_h, kernel_w;
  PrefetchSlice prefetch;
};
using PixelTileArgs = PixelTileArgsOf<float>;

// A pixel's weight for one tap, as the multiply-add takes it: a float (broadcast by the
// multiply), or a bfloat16 broadcast to every 16-bit half of a vector and the lower halves
// cleared, which leaves it as a float in every lane (a broadcast load and an and: widening
// the task's weights into a float copy first cost about 13% of the stage-4 forward).
template <typename native_t>
INVOLUTION_CPU_INLINE float tap_weight(const float* weight) {
  return *weight;
}
template <typename native_t>
INVOLUTION_CPU_INLINE native_t tap_weight(const c10::BFloat16* weight) {
  using halves_t = Vector<uint16_t, sizeof(native_t)>;
  using bits_t = Vector<uint32_t, sizeof(native_t)>;
  uint16_t bits;
  __builtin_memcpy(&bits, weight, sizeof(bits));
  const halves_t both = halves_t{} + bits;
  return (native_t)((bits_t)both & 0xFFFF0000u);
}

template <int64_t kPixels, int64_t kWidth, typename native_t, typename weight_t>
INVOLUTION_CPU_INLINE void pixel_tile(const PixelTileArgsOf<weight_t>& a, ChannelVector* results) {
  constexpr int64_t kCount = kParts<native_t>;
  native_t acc[kPixels][kCount];
  for (int64_t q = 0; q < kPixels; ++q) {
    for (int64_t h = 0; h < kCount; ++h) acc[q][h] = native_t{};
  }
  PrefetchSlice prefetch = a.prefetch;
  if constexpr (kWidth > 0) {
    // A pointer per kernel column, moved on a kernel row at a time: with the taps' addresses
    // computed from the strides at every kernel row, the loop ran out of registers (at 7
    // pixels, 30% slower than with strides known at compile time; 10% with these pointers).
    const ChannelVector* x = a.inputs;
    const weight_t* w[kWidth];
    for (int64_t v = 0; v < kWidth; ++v) w[v] = a.weights + v * a.weight_tap_stride;
    for (int64_t u = 0; u < a.kernel_h; ++u) {
      prefetch.request_next();
      // input column k serves pixel q at tap k - q
#pragma GCC unroll 32
      for (int64_t k = 0; k < kPixels + kWidth - 1; ++k) {
        native_t xk[kCount];
        for (int64_t h = 0; h < kCount; ++h) xk[h] = part<native_t>(x[k], h);
#pragma GCC unroll 16
        for (int64_t v = 0; v < kWidth; ++v) {
          const int64_t q = k - v;
          if (q < 0 || q >= kPixels) continue;
          const auto weight = tap_weight<native_t>(w[v] + q);
          for (int64_t h = 0; h < kCount; ++h) acc[q][h] += xk[h] * weight;
        }
      }
      x += a.input_row_step;
      for (int64_t v = 0; v < kWidth; ++v) w[v] += a.weight_row_stride;
    }
  } else {
    for (int64_t u = 0; u < a.kernel_h; ++u) {
      prefetch.request_next();
      const ChannelVector* x = a.inputs + u * a.input_row_step;
      const weight_t* w = a.weights + u * a.weight_row_stride;
      for (int64_t v = 0; v < a.kernel_w; ++v) {
        const ChannelVector* xv = x + v * a.input_tap_step;
        const weight_t* wv = w + v * a.weight_tap_stride;
#pragma GCC unroll 16
        for (int64_t q = 0; q < kPixels; ++q) {
          const auto weight = tap_weight<native_t>(wv + q);
          for (int64_t h = 0; h < kCount; ++h) {
            acc[q][h] += part<native_t>(xv[q * a.input_column_step], h) * weight;
          }
        }
      }
    }
  }
  for (int64_t q = 0; q < kPixels; ++q) {
    for (int64_t h = 0; h < kCount; ++h) part<native_t>(results[q], h) = acc[q][h];
  }
}

// The pixel tiles are functions of their own, compiled for their level: inlined into the task
// loop, they left too few registers for the weight rows' pointers, which were reloaded from the
// stack at every multiply-add (stage 4's forward took twice as long).
#if defined(INVOLUTION_TARGET_AVX512)
template <int64_t kPixels, int64_t kWidth, typename weight_t>
__attribute__((noinline)) INVOLUTION_TARGET_AVX512 void pixel_tile_avx512(
    const PixelTileArgsOf<weight_t>& a, ChannelVector* results) {
  pixel_tile<kPixels, kWidth, Vector<float, 64>>(a, results);
}
template <int64_t kPixels, int64_t kWidth, typename weight_t>
__attribute__((noinline)) INVOLUTION_TARGET_AVX2 void pixel_tile_avx2(
    const PixelTileArgsOf<weight_t>& a, ChannelVector* results) {
  pixel_tile<kPixels, kWidth, Vector<float, 32>>(a, results);
}
#endif

// Pixels per tile. 32 zmm: 16 accumulators, leaving registers for an input and a weight.
// 16 ymm: 7 pixels of two halves, 14 accumulators; the compiler reads the inputs as operands of
// the multiply-adds instead. With at most 6, rows of 7 (stage 4) ran as tiles of 3 and 4, whose
// loop took 24% longer per multiply-add than one tile of 7 (tile_loop_cpu_emr.json); on Zen 3,
// tiles of up to 4 made the forward and grad_input 1-12% slower (benchmarks/CPU_KERNELS.md).
// 16 xmm without fused multiply-add: 3 pixels of four quarters, 12 accumulators, leaving a
// broadcast weight and the product that each add takes.
template <typename native_t>
constexpr int64_t kTilePixels = kParts<native_t> == 1 ? 16 : kParts<native_t> == 2 ? 7 : 3;

// The baseline level's (and other architectures'), compiled with the file's own flags.
template <int64_t kPixels, int64_t kWidth, typename native_t, typename weight_t>
__attribute__((noinline)) void pixel_tile_portable(const PixelTileArgsOf<weight_t>& a,
                                                   ChannelVector* results) {
  pixel_tile<kPixels, kWidth, native_t>(a, results);
}

template <typename native_t, int64_t kPixels, int64_t kWidth, typename weight_t>
INVOLUTION_CPU_INLINE void run_pixel_tile(const PixelTileArgsOf<weight_t>& a,
                                          ChannelVector* results) {
#if defined(INVOLUTION_TARGET_AVX512)
  if constexpr (kParts<native_t> == 1) {
    return pixel_tile_avx512<kPixels, kWidth>(a, results);
  } else if constexpr (kParts<native_t> == 2) {
    return pixel_tile_avx2<kPixels, kWidth>(a, results);
  }
#endif
  pixel_tile_portable<kPixels, kWidth, native_t>(a, results);
}

// pixel_tile with kPixels = `pixels` (1 .. kTilePixels) and kWidth for this kernel width where
// the input-sharing form applies (unit column stride and dilation, widths 3, 5, 7).
template <typename native_t, int64_t kPixels = kTilePixels<native_t>, typename weight_t>
INVOLUTION_CPU_INLINE void pixel_tile_of(int64_t pixels, const PixelTileArgsOf<weight_t>& a,
                                         ChannelVector* results) {
  if constexpr (kPixels > 1) {
    if (pixels < kPixels) return pixel_tile_of<native_t, kPixels - 1>(pixels, a, results);
  }
  const bool shared = a.input_column_step == 1 && a.input_tap_step == 1;
  if (shared && a.kernel_w == 7) return run_pixel_tile<native_t, kPixels, 7>(a, results);
  if (shared && a.kernel_w == 5) return run_pixel_tile<native_t, kPixels, 5>(a, results);
  if (shared && a.kernel_w == 3) return run_pixel_tile<native_t, kPixels, 3>(a, results);
  run_pixel_tile<native_t, kPixels, 0>(a, results);
}

}  // namespace cpu
}  // namespace involution
