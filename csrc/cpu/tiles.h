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

namespace involution {
namespace cpu {

// grad_weight tile: for kTile consecutive outputs from t0 of one output row and one tap (q, v),
//     acc[t] += sum_{c < channels} grad_outputs[c * grad_stride + t0 + t]
//                                  * inputs[c * channel_stride + input_index(t0 + t, v) + pad]
// (inputs already offset to kernel row q).
template <bool kUnitStride, typename acc_t>
inline void grad_weight_tile(const Axis& cols, int64_t channels, int64_t t0, int64_t v,
                             const acc_t* grad_outputs, int64_t grad_stride, const acc_t* inputs,
                             int64_t channel_stride, acc_t (&acc)[kTile]) {
  const int64_t step = kUnitStride ? 1 : cols.stride;
  const int64_t offset = input_index(cols, t0, v) + cols.padding;
  for (int64_t c = 0; c < channels; ++c) {
    const acc_t* grad_row = grad_outputs + c * grad_stride + t0;
    const acc_t* input_row = inputs + c * channel_stride + offset;
    for (int64_t t = 0; t < kTile; ++t) acc[t] += grad_row[t] * input_row[t * step];
  }
}

// Length of the buffers of the unit-stride grad_input tiles: output row j is stored at
// j - first_output_column(cols), which puts the output read by input column w at tap v at
// w + (KW - 1 - v) * dilation, for w below `padded_inputs`.
inline int64_t first_output_column(const Axis& cols) {
  return cols.padding - (cols.kernel_size - 1) * cols.dilation;  // j with input_index(j, KW-1) = 0
}
inline int64_t shifted_output_length(const Axis& cols, int64_t padded_inputs) {
  return padded_inputs + (cols.kernel_size - 1) * cols.dilation;
}

// buffer[k] = row[k + first] for 0 <= k + first < count, else 0, for k < length.
template <typename scalar_t, typename acc_t>
inline void load_shifted_row(const scalar_t* row, int64_t count, int64_t first, acc_t* buffer,
                             int64_t length) {
  for (int64_t k = 0; k < length; ++k) {
    const int64_t source = k + first;
    buffer[k] = inside(source, count) ? static_cast<acc_t>(row[source]) : acc_t(0);
  }
}

// grad_input tile (unit column stride): for kChannels channels and kTile input columns from w0,
//     acc[c][t] = sum_{q < rows, v} weights[(q * KW + v) * length + w0 + t + (KW-1-v) * dilation]
//                                 * grads[c * channel_stride + q * length + (same index)]
// i.e. sum over the taps (u, v) of weight[u, v, i_u, j] * grad_output[c, i_u, j] where
// input_index(j, v) = w0 + t along the columns and i_u is the output row reading this input row.
template <int64_t kChannels, typename acc_t>
inline void grad_input_tile(const Axis& cols, int64_t rows, int64_t w0, const acc_t* weights,
                            const acc_t* grads, int64_t length, int64_t channel_stride,
                            acc_t (&acc)[kChannels][kTile]) {
  for (int64_t c = 0; c < kChannels; ++c)
    for (int64_t t = 0; t < kTile; ++t) acc[c][t] = 0;
  for (int64_t q = 0; q < rows; ++q) {
    for (int64_t v = 0; v < cols.kernel_size; ++v) {
      const int64_t offset = w0 + (cols.kernel_size - 1 - v) * cols.dilation;
      const acc_t* weight_row = weights + (q * cols.kernel_size + v) * length + offset;
      const acc_t* grad_row = grads + q * length + offset;
      for (int64_t c = 0; c < kChannels; ++c) {
        const acc_t* g = grad_row + c * channel_stride;
        for (int64_t t = 0; t < kTile; ++t) acc[c][t] += weight_row[t] * g[t];
      }
    }
  }
}

}  // namespace cpu
}  // namespace involution
