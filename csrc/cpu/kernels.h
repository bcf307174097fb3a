// CPU kernels of the three involution ops (index math: ../involution_index.h, tiles: tiles.h).
//
//   forward      out[n,c,i,j]    = sum_{u,v} w[n,g(c),u,v,i,j] * x[n,c, ih(i,u), iw(j,v)]
//   grad_input   gx[n,c,h,w]     = sum_{(u,v,i,j) reading (h,w)} w[n,g(c),u,v,i,j] * go[n,c,i,j]
//   grad_weight  gw[n,g,u,v,i,j] = sum_{c in g} go[n,c,i,j] * x[n,c, ih(i,u), iw(j,v)]
//
// Work mapping: the work is split into tasks that each own a block of whole rows of the result
// (for the forward, up to 8 output rows of every channel of group g of image n), so there are
// no atomics and results are deterministic; a task copies the rows its block reads once.
// Tensors are read and written through their strides (any layout, channels_last included).
//
// Tiling: a task's inner loops run over tiles of kVectors vector registers of outputs, for
// kChannels channels at once (TileShape), and over two rows at once where the kernel's row step
// lets consecutive rows share what they read; isa.h / dispatch.h choose the shape and compile
// the kernels for each ISA level. The kernels here are always inlined into those entry points.
//
// Zero padding is multiplied, not skipped, exactly as in the unfold reference: the padded rows
// of a block are zero rows, so a tap in the padding adds weight * 0 to the forward and
// grad_output * 0 to grad_weight, and a NaN or Inf there propagates as it does in the
// reference (and is 0 otherwise).
#pragma once

#include <ATen/OpMathType.h>

#include <algorithm>
#include <vector>

#include "../involution_index.h"
#include "tiles.h"

namespace involution {
namespace cpu {

// Rows of a (N, C, H, W) tensor with arbitrary strides.
template <typename T>
struct Rows4 {
  T* data;
  int64_t batch_stride, channel_stride, row_stride, step;
  T* row(int64_t n, int64_t c, int64_t r) const {
    return data + n * batch_stride + c * channel_stride + r * row_stride;
  }
};

// Rows (along the output width) of a (B, G, KH, KW, Ho, Wo) weight with arbitrary strides.
template <typename T>
struct WeightRows {
  T* data;
  int64_t strides[6];
  T* row(int64_t n, int64_t g, int64_t u, int64_t v, int64_t i) const {
    return data + n * strides[0] + g * strides[1] + u * strides[2] + v * strides[3] +
           i * strides[4];
  }
  int64_t step() const { return strides[5]; }
};

// Task t of the B * G * R tasks of a kernel: image n, group g, row r (row fastest, so that the
// consecutive tasks a thread runs share their group's weights).
struct Task {
  int64_t n, g, r;
};

inline Task decode_task(int64_t task, int64_t rows, int64_t groups) {
  return {task / (rows * groups), task / rows % groups, task % rows};
}

// How a kernel tiles its rows: kVectors vectors of kBytes each per tile, kChannels channels
// per weight (or grad_output) load.
template <int64_t kBytes, int64_t kVectors, int64_t kChannels>
struct TileShape {
  static constexpr int64_t bytes = kBytes;
  static constexpr int64_t vectors = kVectors;
  static constexpr int64_t channels = kChannels;
};

// Rows of at most 32 bytes of accumulators take the narrow shape: less padding waste.
template <typename acc_t>
bool narrow(int64_t length) {
  return length * static_cast<int64_t>(sizeof(acc_t)) <= 32;
}

// Buffer offsets of the kernel columns' first reads (tiles.h: tap_position).
inline std::vector<int64_t> tap_positions(const Axis& cols, int64_t phase_len) {
  std::vector<int64_t> taps(cols.kernel_size);
  for (int64_t v = 0; v < cols.kernel_size; ++v) taps[v] = tap_position(cols, phase_len, v);
  return taps;
}

// Rows per task out of `rows` (output rows for the forward and grad_weight, input rows for
// grad_input): a task copies the rows its block reads once per channel, (block - 1) * stride +
// (KH - 1) * dilation + 1 of them for the forward, so longer blocks copy each row fewer times;
// blocks are kept short enough to leave every thread several tasks.
inline int64_t task_block_rows(const Problem& p, int64_t rows, int64_t threads) {
  int64_t block = std::max<int64_t>(std::min<int64_t>(rows, 8), 1);  // 1 when there are no rows
  while (block > 1 && p.batch * p.groups * ((rows + block - 1) / block) < 4 * threads) block /= 2;
  return block;
}

// Input rows a block of `block` output rows reads (buffer row b holds input row first + b).
inline int64_t block_input_rows(const Axis& rows, int64_t block) {
  return (block - 1) * rows.stride + (rows.kernel_size - 1) * rows.dilation + 1;
}

// Loads, for `count` channels from c_first, the padded input rows first .. first + rows_count
// into the task's buffer (layout: padded_input_layout); rows outside the input are zero, so
// that the zero padding is multiplied as in the reference.
template <typename scalar_t, typename acc_t>
INVOLUTION_CPU_INLINE void load_padded_block(Rows4<const scalar_t> input, const Axis& rows,
                                             const Axis& cols, const PaddedInputLayout& layout,
                                             int64_t n, int64_t c_first, int64_t count,
                                             int64_t first, int64_t rows_count, acc_t* buffer) {
  for (int64_t cc = 0; cc < count; ++cc) {
    for (int64_t b = 0; b < rows_count; ++b) {
      acc_t* target = buffer + cc * layout.channel_stride + b * layout.row_length;
      if (inside(first + b, rows.input_size)) {
        load_padded_input_row(input.row(n, c_first + cc, first + b), input.step, cols,
                              layout.phase_len, target);
      } else {
        std::fill(target, target + layout.row_length, acc_t(0));
      }
    }
  }
}

// Prefetches part `part` of `parts` of what forward task `task` (blocks of `block` output rows)
// reads: its weight rows and the input rows of its channels. In parts, so that the requests
// spread over the previous task; a single stream per row is too short for the hardware
// prefetchers to follow, and there are kernel_h * kernel_w of them.
template <typename scalar_t>
INVOLUTION_CPU_INLINE void prefetch_forward_task(const Problem& p, Rows4<const scalar_t> input,
                                                 WeightRows<const scalar_t> weight, int64_t block,
                                                 int64_t task, int64_t part, int64_t parts) {
  const int64_t blocks = (p.height.output_size + block - 1) / block;
  const Task t = decode_task(task, blocks, p.groups);
  const int64_t i0 = t.r * block, i1 = std::min(i0 + block, p.height.output_size);
  const int64_t taps = p.height.kernel_size * p.width.kernel_size;
  for (int64_t k = part; k < taps * (i1 - i0); k += parts) {
    const int64_t tap = k % taps, i = i0 + k / taps;
    prefetch_row(weight.row(t.n, t.g, tap / p.width.kernel_size, tap % p.width.kernel_size, i),
                 weight.step(), p.width.output_size);
  }
  const int64_t per_group = channels_per_group(p);
  const int64_t first = i0 * p.height.stride - p.height.padding;
  const int64_t count = block_input_rows(p.height, i1 - i0);
  for (int64_t k = part; k < per_group * count; k += parts) {
    const int64_t h = first + k % count;
    if (inside(h, p.height.input_size)) {
      prefetch_row(input.row(t.n, t.g * per_group + k / count, h), input.step, p.width.input_size);
    }
  }
}

// The weights a forward tile reads: in place where the weight rows are contiguous rows of the
// accumulation type, otherwise (and for a row's last, partial tile) from a padded copy.
template <typename acc_t>
struct WeightTile {
  const acc_t* data;
  int64_t row_stride, tap_stride;  // kernel row u, kernel column v
};

// Forward tasks [begin, end) of the B * G * blocks tasks; task (n, g, b) computes output rows
// b * block .. of every channel of group g. Its channels are taken kChannels at a time: their
// padded input rows are copied once, then every output row of the block reads them.
template <typename scalar_t, typename Shape>
INVOLUTION_CPU_INLINE void forward_tasks(const Problem& p, Rows4<const scalar_t> input,
                                         WeightRows<const scalar_t> weight,
                                         Rows4<scalar_t> output, int64_t block, int64_t begin,
                                         int64_t end) {
  using acc_t = at::opmath_type<scalar_t>;
  using vector_t = Vector<acc_t, Shape::bytes>;
  constexpr int64_t kVectors = Shape::vectors, kChannels = Shape::channels;
  constexpr int64_t kTile = kVectors * lanes<vector_t, acc_t>();
  const Axis& rows = p.height;
  const Axis& cols = p.width;
  const int64_t per_group = channels_per_group(p);
  const int64_t blocks = (rows.output_size + block - 1) / block;
  const int64_t input_rows = block_input_rows(rows, block);
  const PaddedInputLayout layout = padded_input_layout(cols, kTile, input_rows);
  const std::vector<int64_t> taps = tap_positions(cols, layout.phase_len);
  const int64_t kernel_taps = rows.kernel_size * cols.kernel_size;
  // Output columns [copied_from, padded_outputs) read the copy.
  constexpr bool kSameType = std::is_same<scalar_t, acc_t>::value;
  const int64_t copied_from =
      kSameType && weight.step() == 1 ? cols.output_size / kTile * kTile : 0;
  const int64_t copied_length = layout.padded_outputs - copied_from;
  std::vector<acc_t> weight_copy(block * kernel_taps * copied_length);
  std::vector<acc_t> inputs(kChannels * layout.channel_stride);
  for (int64_t task = begin; task < end; ++task) {
    const Task t = decode_task(task, blocks, p.groups);
    const int64_t n = t.n, g = t.g, i0 = t.r * block;
    const int64_t i1 = std::min(i0 + block, rows.output_size);
    for (int64_t r = 0; r < i1 - i0 && copied_length > 0; ++r) {
      for (int64_t tap = 0; tap < kernel_taps; ++tap) {
        const scalar_t* row = weight.row(n, g, tap / cols.kernel_size, tap % cols.kernel_size, i0 + r);
        load_row(row + copied_from * weight.step(), weight.step(), cols.output_size - copied_from,
                 weight_copy.data() + (r * kernel_taps + tap) * copied_length, copied_length);
      }
    }
    auto weight_tile = [&](int64_t i, int64_t t0) -> WeightTile<acc_t> {
      if (t0 >= copied_from) {
        return {weight_copy.data() + (i - i0) * kernel_taps * copied_length + t0 - copied_from,
                cols.kernel_size * copied_length, copied_length};
      }
      const scalar_t* row = weight.row(n, g, 0, 0, i) + t0;
      return {reinterpret_cast<const acc_t*>(row), weight.strides[2], weight.strides[3]};
    };
    const int64_t first_row = i0 * rows.stride - rows.padding;
    const int64_t chunks = (per_group + kChannels - 1) / kChannels;
    for (int64_t c_first = g * per_group; c_first < (g + 1) * per_group; c_first += kChannels) {
      const int64_t count = std::min(kChannels, (g + 1) * per_group - c_first);
      load_padded_block(input, rows, cols, layout, n, c_first, count, first_row, input_rows,
                        inputs.data());
      const int64_t row_stride = rows.dilation * layout.row_length;
      // Two rows at a time where their kernel rows share input rows (forward_pair_tile).
      const int64_t row_step = kVectors == 1 && rows.stride == rows.dilation ? 2 : 1;
      const int64_t steps = (block + row_step - 1) / row_step;
      for (int64_t i = i0; i < i1; i += row_step) {
        const int64_t rows_here = std::min(row_step, i1 - i);
        if (task + 1 < end) {
          prefetch_forward_task(p, input, weight, block, task + 1,
                                (c_first - g * per_group) / kChannels * steps + (i - i0) / row_step,
                                chunks * steps);
        }
        for (int64_t t0 = 0; t0 < cols.output_size; t0 += kTile) {
          const int64_t width = std::min(kTile, cols.output_size - t0);
          auto store_channel = [&](const vector_t (&tile)[kVectors], int64_t cc, int64_t row) {
            store_tile<kVectors>(tile, width, output.row(n, c_first + cc, row) + t0 * output.step,
                                 output.step);
          };
          // kernel row u of output row i reads buffer row (i - i0) * stride + u * dilation
          auto tile_inputs = [&](int64_t row) {
            return inputs.data() + (row - i0) * rows.stride * layout.row_length + t0;
          };
          if (rows_here == 2 && count == kChannels) {
            const WeightTile<acc_t> upper = weight_tile(i, t0), lower = weight_tile(i + 1, t0);
            vector_t acc[2][kChannels];
            forward_pair_tile<kChannels>(rows.kernel_size, cols.kernel_size, taps.data(),
                                         upper.data, lower.data, upper.row_stride,
                                         upper.tap_stride, tile_inputs(i), layout.channel_stride,
                                         row_stride, acc);
            for (int64_t r = 0; r < 2; ++r) {
              for (int64_t cc = 0; cc < count; ++cc) {
                const vector_t tile[kVectors] = {acc[r][cc]};
                store_channel(tile, cc, i + r);
              }
            }
            continue;
          }
          for (int64_t row = i; row < i + rows_here; ++row) {
            const WeightTile<acc_t> w = weight_tile(row, t0);
            if (count == kChannels) {
              vector_t acc[kChannels][kVectors];
              forward_tile<kChannels, kVectors>(rows.kernel_size, cols.kernel_size, taps.data(),
                                                w.data, w.row_stride, w.tap_stride,
                                                tile_inputs(row), layout.channel_stride,
                                                row_stride, acc);
              for (int64_t cc = 0; cc < count; ++cc) store_channel(acc[cc], cc, row);
            } else {
              for (int64_t cc = 0; cc < count; ++cc) {
                vector_t acc[1][kVectors];
                forward_tile<1, kVectors>(rows.kernel_size, cols.kernel_size, taps.data(), w.data,
                                          w.row_stride, w.tap_stride,
                                          tile_inputs(row) + cc * layout.channel_stride,
                                          layout.channel_stride, row_stride, acc);
                store_channel(acc[0], cc, row);
              }
            }
          }
        }
      }
    }
  }
}

// Output rows a block of input rows h0 .. h0 + count reads: from first_output_row(h0) on, at
// most block_output_rows(count) of them (some outside the output).
inline int64_t first_output_row(const Axis& rows, int64_t h0) {
  const int64_t lowest = h0 + rows.padding - (rows.kernel_size - 1) * rows.dilation;
  return lowest >= 0 ? lowest / rows.stride : -((-lowest + rows.stride - 1) / rows.stride);
}
inline int64_t block_output_rows(const Axis& rows, int64_t count) {
  return ((count - 1) + (rows.kernel_size - 1) * rows.dilation) / rows.stride + 2;
}

// Prefetches part `part` of `parts` of what grad_input task `task` (blocks of `block` input
// rows) reads: its weight rows and the grad_output rows of its channels.
template <typename scalar_t>
INVOLUTION_CPU_INLINE void prefetch_grad_input_task(const Problem& p,
                                                    Rows4<const scalar_t> grad_output,
                                                    WeightRows<const scalar_t> weight,
                                                    int64_t block, int64_t task, int64_t part,
                                                    int64_t parts) {
  const int64_t blocks = (p.height.input_size + block - 1) / block;
  const Task t = decode_task(task, blocks, p.groups);
  const int64_t h0 = t.r * block, count = std::min(block, p.height.input_size - h0);
  const int64_t taps = p.height.kernel_size * p.width.kernel_size;
  for (int64_t k = part; k < taps * count; k += parts) {
    const int64_t tap = k % taps, u = tap / p.width.kernel_size;
    int64_t i;
    if (!output_index(p.height, h0 + k / taps, u, &i)) continue;
    prefetch_row(weight.row(t.n, t.g, u, tap % p.width.kernel_size, i), weight.step(),
                 p.width.output_size);
  }
  const int64_t per_group = channels_per_group(p);
  const int64_t first = first_output_row(p.height, h0), rows = block_output_rows(p.height, count);
  for (int64_t k = part; k < per_group * rows; k += parts) {
    const int64_t i = first + k % rows;
    if (inside(i, p.height.output_size)) {
      prefetch_row(grad_output.row(t.n, t.g * per_group + k / rows, i), grad_output.step,
                   p.width.output_size);
    }
  }
}

// grad_input tasks [begin, end) of the B * G * blocks tasks; task (n, g, b) computes input rows
// b * block .. of every channel of group g, phase by phase along the columns (see
// GradInputLayout). The grad_output rows the block reads are copied once per channel; where
// the rows' stride and dilation are 1, a tile computes two input rows (grad_input_pair_tile).
template <typename scalar_t, typename Shape>
INVOLUTION_CPU_INLINE void grad_input_tasks(const Problem& p, Rows4<const scalar_t> grad_output,
                                            WeightRows<const scalar_t> weight,
                                            Rows4<scalar_t> grad_input, int64_t block,
                                            int64_t begin, int64_t end) {
  using acc_t = at::opmath_type<scalar_t>;
  using vector_t = Vector<acc_t, Shape::bytes>;
  constexpr int64_t kVectors = Shape::vectors, kChannels = Shape::channels;
  constexpr int64_t kTile = kVectors * lanes<vector_t, acc_t>();
  const Axis& rows = p.height;
  const Axis& cols = p.width;
  const int64_t per_group = channels_per_group(p);
  const int64_t blocks = (rows.input_size + block - 1) / block;
  const GradInputLayout layout = grad_input_layout(cols, kTile);
  const int64_t length = layout.length;
  const int64_t grad_rows_count = block_output_rows(rows, block);
  const int64_t channel_stride = grad_rows_count * length;
  const int64_t kernel_taps = rows.kernel_size * cols.kernel_size;
  // weights of block row r, kernel row u, column v at ((r * KH + u) * KW + v) * length
  std::vector<acc_t> weights(block * kernel_taps * length);
  std::vector<acc_t> grads(kChannels * channel_stride);
  std::vector<int64_t> grad_rows(block * rows.kernel_size);  // offset in grads, or -1
  std::vector<int64_t> taps(cols.stride * cols.kernel_size), offsets(taps.size()), counts(cols.stride);
  for (int64_t phase = 0; phase < cols.stride; ++phase) {
    counts[phase] = phase_taps(cols, layout, phase, taps.data() + phase * cols.kernel_size,
                               offsets.data() + phase * cols.kernel_size);
  }
  const int64_t row_step = kVectors == 1 && rows.stride == 1 && rows.dilation == 1 ? 2 : 1;
  for (int64_t task = begin; task < end; ++task) {
    const Task t = decode_task(task, blocks, p.groups);
    const int64_t n = t.n, g = t.g, h0 = t.r * block;
    const int64_t h1 = std::min(h0 + block, rows.input_size);
    const int64_t first = first_output_row(rows, h0);
    for (int64_t h = h0; h < h1; ++h) {
      for (int64_t u = 0; u < rows.kernel_size; ++u) {
        int64_t i = 0;
        const bool reads = output_index(rows, h, u, &i);
        grad_rows[(h - h0) * rows.kernel_size + u] = reads ? (i - first) * length : -1;
        acc_t* target = weights.data() + ((h - h0) * rows.kernel_size + u) * cols.kernel_size * length;
        for (int64_t v = 0; v < cols.kernel_size; ++v) {
          if (reads) {
            load_shifted_row(weight.row(n, g, u, v, i), weight.step(), cols.output_size,
                             layout.shift, target + v * length, length);
          } else {  // read by the two-row tile, as weight 0
            std::fill(target + v * length, target + (v + 1) * length, acc_t(0));
          }
        }
      }
    }
    const int64_t chunks = (per_group + kChannels - 1) / kChannels;
    const int64_t steps = (block + row_step - 1) / row_step;
    for (int64_t c_first = g * per_group; c_first < (g + 1) * per_group; c_first += kChannels) {
      const int64_t count = std::min(kChannels, (g + 1) * per_group - c_first);
      for (int64_t cc = 0; cc < count; ++cc) {
        for (int64_t b = 0; b < grad_rows_count; ++b) {
          acc_t* target = grads.data() + cc * channel_stride + b * length;
          if (inside(first + b, rows.output_size)) {
            load_shifted_row(grad_output.row(n, c_first + cc, first + b), grad_output.step,
                             cols.output_size, layout.shift, target, length);
          } else {
            std::fill(target, target + length, acc_t(0));
          }
        }
      }
      for (int64_t h = h0; h < h1; h += row_step) {
        if (task + 1 < end) {
          prefetch_grad_input_task(p, grad_output, weight, block, task + 1,
                                   (c_first - g * per_group) / kChannels * steps + (h - h0) / row_step,
                                   chunks * steps);
        }
        const int64_t rows_here = std::min(row_step, h1 - h);
        for (int64_t phase = 0; phase < std::min(cols.stride, cols.input_size); ++phase) {
          const int64_t columns = (cols.input_size - phase + cols.stride - 1) / cols.stride;
          const int64_t* phase_tap = taps.data() + phase * cols.kernel_size;
          const int64_t* phase_offset = offsets.data() + phase * cols.kernel_size;
          for (int64_t m0 = 0; m0 < columns; m0 += kTile) {
            const int64_t width = std::min(kTile, columns - m0);
            auto store_channel = [&](const vector_t (&tile)[kVectors], int64_t cc, int64_t row) {
              store_tile<kVectors>(tile, width,
                                   grad_input.row(n, c_first + cc, row) +
                                       (phase + cols.stride * m0) * grad_input.step,
                                   cols.stride * grad_input.step);
            };
            auto row_weights = [&](int64_t row) {
              return weights.data() + (row - h0) * kernel_taps * length;
            };
            if (rows_here == 2 && count == kChannels) {
              // the upper row's kernel row 0 reads output row h + padding
              const acc_t* row0 = grads.data() + (h + rows.padding - first) * length;
              vector_t acc[2][kChannels];
              grad_input_pair_tile<kChannels>(rows.kernel_size, cols.kernel_size, m0, phase_tap,
                                              phase_offset, counts[phase], row_weights(h),
                                              row_weights(h + 1), row0, length, length,
                                              channel_stride, acc);
              for (int64_t r = 0; r < 2; ++r) {
                for (int64_t cc = 0; cc < count; ++cc) {
                  const vector_t tile[kVectors] = {acc[r][cc]};
                  store_channel(tile, cc, h + r);
                }
              }
              continue;
            }
            for (int64_t row = h; row < h + rows_here; ++row) {
              const int64_t* row_grads = grad_rows.data() + (row - h0) * rows.kernel_size;
              if (count == kChannels) {
                vector_t acc[kChannels][kVectors];
                grad_input_tile<kChannels, kVectors>(rows.kernel_size, cols.kernel_size, m0,
                                                     phase_tap, phase_offset, counts[phase],
                                                     row_weights(row), grads.data(), row_grads,
                                                     length, channel_stride, acc);
                for (int64_t cc = 0; cc < count; ++cc) store_channel(acc[cc], cc, row);
              } else {
                for (int64_t cc = 0; cc < count; ++cc) {
                  vector_t acc[1][kVectors];
                  grad_input_tile<1, kVectors>(rows.kernel_size, cols.kernel_size, m0, phase_tap,
                                               phase_offset, counts[phase], row_weights(row),
                                               grads.data() + cc * channel_stride, row_grads,
                                               length, channel_stride, acc);
                  store_channel(acc[0], cc, row);
                }
              }
            }
          }
        }
      }
    }
  }
}

// Prefetches part `part` of `parts` of what grad_weight task `task` (blocks of `block` output
// rows) touches: the input and grad_output rows of its channels and the grad_weight rows it
// writes.
template <typename scalar_t>
INVOLUTION_CPU_INLINE void prefetch_grad_weight_task(const Problem& p,
                                                     Rows4<const scalar_t> grad_output,
                                                     Rows4<const scalar_t> input,
                                                     WeightRows<scalar_t> grad_weight,
                                                     int64_t block, int64_t task, int64_t part,
                                                     int64_t parts) {
  const int64_t blocks = (p.height.output_size + block - 1) / block;
  const Task t = decode_task(task, blocks, p.groups);
  const int64_t i0 = t.r * block, i1 = std::min(i0 + block, p.height.output_size);
  const int64_t per_group = channels_per_group(p);
  const int64_t first = i0 * p.height.stride - p.height.padding;
  const int64_t count = block_input_rows(p.height, i1 - i0);
  for (int64_t k = part; k < per_group * count; k += parts) {
    const int64_t c = t.g * per_group + k / count, h = first + k % count;
    if (inside(h, p.height.input_size)) prefetch_row(input.row(t.n, c, h), input.step, p.width.input_size);
  }
  for (int64_t k = part; k < per_group * (i1 - i0); k += parts) {
    const int64_t c = t.g * per_group + k / (i1 - i0), i = i0 + k % (i1 - i0);
    prefetch_row(grad_output.row(t.n, c, i), grad_output.step, p.width.output_size);
  }
  const int64_t taps = p.height.kernel_size * p.width.kernel_size;
  for (int64_t k = part; k < taps * (i1 - i0); k += parts) {
    const int64_t tap = k % taps, i = i0 + k / taps;
    prefetch_row<1>(grad_weight.row(t.n, t.g, tap / p.width.kernel_size, tap % p.width.kernel_size, i),
                    grad_weight.step(), p.width.output_size);
  }
}

// What one grad_weight tile row reads and writes: the block's buffers and the grad_weight rows
// (kernel row u, column 0) of the upper and lower output rows, from the tile's first output.
template <typename acc_t, typename scalar_t>
struct GradWeightRow {
  const int64_t* taps;
  int64_t channels;
  const acc_t *upper_grads, *lower_grads;  // grad_output of the two rows, channel 0
  int64_t grad_stride;                     // one channel of the grads buffer
  const acc_t* input_row;                  // the input row both rows read, channel 0
  int64_t channel_stride;                  // one channel of the inputs buffer
  scalar_t *upper_out, *lower_out;
  int64_t out_tap_stride, out_step, width;
};

// Kernel columns v0 .. v0 + kTaps of one tile row (grad_weight_pair_tile), stored.
template <bool kUpper, bool kLower, int64_t kTaps, typename vector_t, typename acc_t,
          typename scalar_t>
INVOLUTION_CPU_INLINE void grad_weight_taps(const GradWeightRow<acc_t, scalar_t>& row, int64_t v0) {
  vector_t acc[2][kTaps];
  grad_weight_pair_tile<kUpper, kLower, kTaps>(row.channels, row.taps + v0, row.upper_grads,
                                               row.lower_grads, row.grad_stride, row.input_row,
                                               row.channel_stride, acc);
  for (int64_t m = 0; m < kTaps; ++m) {
    const vector_t upper[1] = {acc[0][m]}, lower[1] = {acc[1][m]};
    const int64_t offset = (v0 + m) * row.out_tap_stride;
    if (kUpper) store_tile<1>(upper, row.width, row.upper_out + offset, row.out_step);
    if (kLower) store_tile<1>(lower, row.width, row.lower_out + offset, row.out_step);
  }
}

// All kernel columns of one tile row, four at a time (4 taps x 2 rows of accumulators, two
// grads and one input stay within 16 registers).
template <bool kUpper, bool kLower, typename vector_t, typename acc_t, typename scalar_t>
INVOLUTION_CPU_INLINE void grad_weight_tile_row(const GradWeightRow<acc_t, scalar_t>& row,
                                                int64_t kernel_w) {
  int64_t v = 0;
  for (; v + 4 <= kernel_w; v += 4) grad_weight_taps<kUpper, kLower, 4, vector_t>(row, v);
  if (kernel_w - v == 3) grad_weight_taps<kUpper, kLower, 3, vector_t>(row, v);
  if (kernel_w - v == 2) grad_weight_taps<kUpper, kLower, 2, vector_t>(row, v);
  if (kernel_w - v == 1) grad_weight_taps<kUpper, kLower, 1, vector_t>(row, v);
}

// grad_weight tasks [begin, end) of the B * G * blocks tasks; task (n, g, b) computes
// grad_weight[n, g, :, :, i, :] for the output rows i of block b, each element summed over all
// channels of group g in registers and stored once. The block's padded input rows (zero rows
// outside the image, so the padding is multiplied as in the reference) and grad_output rows of
// all the group's channels are copied once; where the kernel's row step equals the stride, a
// tile computes two output rows (grad_weight_pair_tile).
template <typename scalar_t, typename Shape>
INVOLUTION_CPU_INLINE void grad_weight_tasks(const Problem& p, Rows4<const scalar_t> grad_output,
                                             Rows4<const scalar_t> input,
                                             WeightRows<scalar_t> grad_weight, int64_t block,
                                             int64_t begin, int64_t end) {
  using acc_t = at::opmath_type<scalar_t>;
  using vector_t = Vector<acc_t, Shape::bytes>;
  constexpr int64_t kTile = lanes<vector_t, acc_t>();
  const Axis& rows = p.height;
  const Axis& cols = p.width;
  const int64_t per_group = channels_per_group(p);
  const int64_t blocks = (rows.output_size + block - 1) / block;
  const int64_t input_rows = block_input_rows(rows, block);
  const PaddedInputLayout layout = padded_input_layout(cols, kTile, input_rows);
  const int64_t padded_outputs = layout.padded_outputs;
  const std::vector<int64_t> taps = tap_positions(cols, layout.phase_len);
  std::vector<acc_t> inputs(per_group * layout.channel_stride);
  std::vector<acc_t> grads(per_group * block * padded_outputs);  // channel c, block row r
  const int64_t grad_stride = block * padded_outputs;
  const int64_t row_step = rows.stride == rows.dilation ? 2 : 1;
  const int64_t steps = (block + row_step - 1) / row_step;
  for (int64_t task = begin; task < end; ++task) {
    const Task t = decode_task(task, blocks, p.groups);
    const int64_t n = t.n, g = t.g, i0 = t.r * block;
    const int64_t i1 = std::min(i0 + block, rows.output_size);
    const int64_t c_first = g * per_group;
    load_padded_block(input, rows, cols, layout, n, c_first, per_group,
                      i0 * rows.stride - rows.padding, input_rows, inputs.data());
    for (int64_t cc = 0; cc < per_group; ++cc) {
      for (int64_t i = i0; i < i1; ++i) {
        load_row(grad_output.row(n, c_first + cc, i), grad_output.step, cols.output_size,
                 grads.data() + cc * grad_stride + (i - i0) * padded_outputs, padded_outputs);
      }
    }
    for (int64_t i = i0; i < i1; i += row_step) {
      if (task + 1 < end) {
        prefetch_grad_weight_task(p, grad_output, input, grad_weight, block, task + 1,
                                  (i - i0) / row_step, steps);
      }
      const bool pair = row_step == 2 && i + 1 < i1;
      for (int64_t t0 = 0; t0 < cols.output_size; t0 += kTile) {
        GradWeightRow<acc_t, scalar_t> row;
        row.taps = taps.data();
        row.channels = per_group;
        row.upper_grads = grads.data() + (i - i0) * padded_outputs + t0;
        row.lower_grads = row.upper_grads + padded_outputs;
        row.grad_stride = grad_stride;
        row.channel_stride = layout.channel_stride;
        row.out_tap_stride = grad_weight.strides[3];
        row.out_step = grad_weight.step();
        row.width = std::min(kTile, cols.output_size - t0);
        // kernel row u of output row i reads buffer row (i - i0) * stride + u * dilation
        const acc_t* upper_inputs = inputs.data() + (i - i0) * rows.stride * layout.row_length + t0;
        auto set_row = [&](int64_t b) {  // buffer row b of the upper row's window
          row.input_row = upper_inputs + b * rows.dilation * layout.row_length;
          row.upper_out = grad_weight.row(n, g, std::min(b, rows.kernel_size - 1), 0, i) +
                          t0 * grad_weight.step();
          if (pair) row.lower_out = grad_weight.row(n, g, std::max<int64_t>(b - 1, 0), 0, i + 1) +
                                    t0 * grad_weight.step();
        };
        if (!pair) {
          for (int64_t u = 0; u < rows.kernel_size; ++u) {
            set_row(u);
            grad_weight_tile_row<true, false, vector_t>(row, cols.kernel_size);
          }
          continue;
        }
        set_row(0);
        grad_weight_tile_row<true, false, vector_t>(row, cols.kernel_size);
        for (int64_t b = 1; b < rows.kernel_size; ++b) {
          set_row(b);
          grad_weight_tile_row<true, true, vector_t>(row, cols.kernel_size);
        }
        set_row(rows.kernel_size);
        grad_weight_tile_row<false, true, vector_t>(row, cols.kernel_size);
      }
    }
  }
}

}  // namespace cpu
}  // namespace involution
