// Building blocks of the CPU kernels: zero-padded row buffers and register-tiled inner loops.
//
// A task copies the rows it needs into small buffers in the accumulation type (float for half
// types): input rows with their zero padding made explicit, and weight / grad_output rows padded
// to a whole number of tiles. The inner loops then have no bounds checks and a compile-time
// trip count, so the compiler keeps a tile of results in vector registers across all taps.
#pragma once

#include <algorithm>
#include <cstdint>

#include "../involution_index.h"

// Compile the hot loops for AVX-512, AVX2 + FMA and the baseline ISA; the loader picks one per CPU.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define INVOLUTION_CPU_MULTIVERSION \
  __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define INVOLUTION_CPU_MULTIVERSION
#endif

namespace involution {
namespace cpu {

// Output columns per register tile, and channels per tile in the forward kernel.
constexpr int64_t kTile = 16;
constexpr int64_t kChannelTile = 4;

inline int64_t round_up(int64_t value, int64_t multiple) {
  return (value + multiple - 1) / multiple * multiple;
}

// Length of a padded input-row buffer: covers the columns read by `padded_outputs` outputs at
// every tap, in padded coordinates (input_index + padding).
inline int64_t padded_input_length(const Axis& cols, int64_t padded_outputs) {
  return input_index(cols, padded_outputs - 1, cols.kernel_size - 1) + cols.padding + 1;
}

// buffer[k] = row[k - cols.padding] inside the input, 0 outside, for k < length.
template <typename scalar_t, typename acc_t>
inline void load_padded_input_row(const scalar_t* row, const Axis& cols, acc_t* buffer,
                                  int64_t length) {
  const int64_t first = std::min(cols.padding, length);
  const int64_t last = std::min(cols.padding + cols.input_size, length);
  std::fill(buffer, buffer + first, acc_t(0));
  for (int64_t k = first; k < last; ++k) buffer[k] = static_cast<acc_t>(row[k - cols.padding]);
  std::fill(buffer + last, buffer + length, acc_t(0));
}

// buffer[k] = row[k] for k < count, 0 up to length.
template <typename scalar_t, typename acc_t>
inline void load_row(const scalar_t* row, int64_t count, acc_t* buffer, int64_t length) {
  for (int64_t k = 0; k < count; ++k) buffer[k] = static_cast<acc_t>(row[k]);
  std::fill(buffer + count, buffer + length, acc_t(0));
}

// Stores the first `count` entries of a tile.
template <typename scalar_t, typename acc_t>
inline void store_tile(const acc_t* tile, int64_t count, scalar_t* target) {
  for (int64_t k = 0; k < count; ++k) target[k] = static_cast<scalar_t>(tile[k]);
}

// Forward tile: for kChannels channels and kTile consecutive outputs starting at t0 of one
// output row, acc[c][t] = sum over the `rows` valid kernel rows and all kernel columns v of
//     weights[(q * KW + v) * weight_stride + t0 + t] * inputs[c][q][input_index(t0 + t, v) + pad]
// (inputs[c][q] = inputs + c * channel_stride + q * row_stride). kUnitStride fixes the column
// stride to 1 at compile time so the loads are contiguous.
template <int64_t kChannels, bool kUnitStride, typename acc_t>
inline void forward_tile(const Axis& cols, int64_t rows, int64_t t0, const acc_t* weights,
                         int64_t weight_stride, const acc_t* inputs, int64_t channel_stride,
                         int64_t row_stride, acc_t (&acc)[kChannels][kTile]) {
  for (int64_t c = 0; c < kChannels; ++c)
    for (int64_t t = 0; t < kTile; ++t) acc[c][t] = 0;
  const int64_t step = kUnitStride ? 1 : cols.stride;
  for (int64_t q = 0; q < rows; ++q) {
    for (int64_t v = 0; v < cols.kernel_size; ++v) {
      const acc_t* weight_row = weights + (q * cols.kernel_size + v) * weight_stride + t0;
      const acc_t* input_row = inputs + q * row_stride + input_index(cols, t0, v) + cols.padding;
      for (int64_t c = 0; c < kChannels; ++c) {
        const acc_t* in = input_row + c * channel_stride;
        for (int64_t t = 0; t < kTile; ++t) acc[c][t] += weight_row[t] * in[t * step];
      }
    }
  }
}

}  // namespace cpu
}  // namespace involution
