// The CPU grad_input kernel: tasks of blocks of input rows (kernels.h says how they work).
#pragma once

#include <type_traits>

#include "kernels.h"
#include "prefetch_lines.h"

namespace involution {
namespace cpu {

// Output rows a block of input rows h0 .. h0 + count reads: from first_output_row(h0) on, at
// most block_output_rows(count) of them (some outside the output).
inline int64_t first_output_row(const Axis& rows, int64_t h0) {
  const int64_t lowest = h0 + rows.padding - (rows.kernel_size - 1) * rows.dilation;
  return lowest >= 0 ? lowest / rows.stride : -((-lowest + rows.stride - 1) / rows.stride);
}
inline int64_t block_output_rows(const Axis& rows, int64_t count) {
  return ((count - 1) + (rows.kernel_size - 1) * rows.dilation) / rows.stride + 2;
}

// Calls visit(first, step, row_stride, rows, count, kWrite) for the runs of rows that grad_input
// task `task` (blocks of `block` input rows) reads and writes: the grad_output rows of its
// channels, its weight rows (a kernel tap's rows per run) and its grad_input rows (kWrite = 1),
// as visit_forward_task_rows.
template <typename scalar_t, typename Visit>
INVOLUTION_CPU_INLINE void visit_grad_input_task_rows(const Problem& p,
                                                      Rows4<const scalar_t> grad_output,
                                                      WeightRows<const scalar_t> weight,
                                                      Rows4<scalar_t> grad_input, int64_t block,
                                                      int64_t task, Visit&& visit) {
  const Axis& rows = p.height;
  const int64_t blocks = (rows.input_size + block - 1) / block;
  const Task t = decode_task(task, blocks, p.groups);
  const int64_t h0 = t.r * block, count = std::min(block, rows.input_size - h0);
  const int64_t per_group = channels_per_group(p);
  const int64_t first = first_output_row(rows, h0);
  const int64_t lo = std::max<int64_t>(first, 0);
  const int64_t hi = std::min(first + block_output_rows(rows, count), rows.output_size);
  if (hi > lo) {
    visit_runs<0>(visit, grad_output.row(t.n, t.g * per_group, lo), grad_output.step,
                  grad_output.row_stride, hi - lo, p.width.output_size,
                  grad_output.channel_stride, per_group);
  }
  const int64_t taps = rows.kernel_size * p.width.kernel_size;
  for (int64_t tap = 0; tap < taps; ++tap) {
    const int64_t u = tap / p.width.kernel_size, v = tap % p.width.kernel_size;
    if (rows.stride == 1) {  // kernel row u of input rows h0 .. reads consecutive output rows
      const int64_t shift = rows.padding - u * rows.dilation;
      const int64_t from = std::max<int64_t>(h0 + shift, 0);
      const int64_t to = std::min(h0 + count + shift, rows.output_size);
      if (to > from) {
        visit(weight.row(t.n, t.g, u, v, from), weight.step(), weight.strides[4], to - from,
              p.width.output_size, std::integral_constant<int, 0>{});
      }
      continue;
    }
    for (int64_t h = h0; h < h0 + count; ++h) {
      int64_t i;
      if (output_index(rows, h, u, &i)) {
        visit(weight.row(t.n, t.g, u, v, i), weight.step(), weight.strides[4], 1,
              p.width.output_size, std::integral_constant<int, 0>{});
      }
    }
  }
  visit_runs<1>(visit, grad_input.row(t.n, t.g * per_group, h0), grad_input.step,
                grad_input.row_stride, count, p.width.input_size, grad_input.channel_stride,
                per_group);
}

// grad_input tasks [begin, end) of the B * G * blocks tasks; task (n, g, b) computes input rows
// b * block .. of every channel of group g, phase by phase along the columns (see
// GradInputLayout). The grad_output rows the block reads are copied once per channel; where
// the rows' stride and dilation are 1, a tile computes two input rows (grad_input_pair_tile).
// The next task's lines are listed when a task starts and requested a slice per tile of phase 0
// (the forward's rules, forward_tasks.h).
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
  // where a weight or grad_output row (one per output column) lands in its framed buffer row
  const FramedSpan output_span(cols.output_size, layout.shift, length);
  const int64_t grad_rows_count = block_output_rows(rows, block);
  const int64_t channel_stride = grad_rows_count * length;
  const int64_t kernel_taps = rows.kernel_size * cols.kernel_size;
  // weights of block row r, kernel row u, column v at ((r * KH + u) * KW + v) * length
  // framed row buffers (tiles.h: load_framed_row): zeroed here, once
  std::vector<acc_t> weights(block * kernel_taps * length);
  std::vector<acc_t> grads(kChannels * channel_stride);
  std::vector<int64_t> grad_rows(block * rows.kernel_size);  // offset in grads, or -1
  std::vector<int64_t> taps(cols.stride * cols.kernel_size), offsets(taps.size());
  std::vector<int64_t> counts(cols.stride);
  for (int64_t phase = 0; phase < cols.stride; ++phase) {
    counts[phase] = phase_taps(cols, layout, phase, taps.data() + phase * cols.kernel_size,
                               offsets.data() + phase * cols.kernel_size);
  }
  const int64_t row_step = kVectors == 1 && rows.stride == 1 && rows.dilation == 1 ? 2 : 1;
  // every kernel column reads phase 0, at offsets that step down by one (grad_input_pair_step)
  const bool unit_columns = unit_column_tiles<vector_t>(cols.stride, cols.dilation);
  const int64_t chunks = (per_group + kChannels - 1) / kChannels;
  // phase 0's tiles (the most of any phase) request the next task's lines
  const int64_t tiles = ((cols.input_size + cols.stride - 1) / cols.stride + kTile - 1) / kTile;
  PrefetchLines next_lines;
  for (int64_t task = begin; task < end; ++task) {
    next_lines.clear();
    if (task + 1 < end) {
      visit_grad_input_task_rows(p, grad_output, weight, grad_input, block, task + 1, next_lines);
    }
    const Task t = decode_task(task, blocks, p.groups);
    const int64_t n = t.n, g = t.g, h0 = t.r * block;
    const int64_t h1 = std::min(h0 + block, rows.input_size);
    const int64_t first = first_output_row(rows, h0);
    for (int64_t h = h0; h < h1; ++h) {
      for (int64_t u = 0; u < rows.kernel_size; ++u) {
        int64_t i = 0;
        const bool reads = output_index(rows, h, u, &i);
        grad_rows[(h - h0) * rows.kernel_size + u] = reads ? (i - first) * length : -1;
        acc_t* target =
            weights.data() + ((h - h0) * rows.kernel_size + u) * cols.kernel_size * length;
        const scalar_t* row = reads ? weight.row(n, g, u, 0, i) : nullptr;
        for (int64_t v = 0; v < cols.kernel_size; ++v) {
          if (reads) {
            output_span.load<vector_t>(row + v * weight.strides[3], weight.step(),
                                       target + v * length);
          } else {  // read by the two-row tile, as weight 0
            zero_contiguous(target + v * length, length);
          }
        }
      }
    }
    const int64_t steps = (h1 - h0 + row_step - 1) / row_step;
    PrefetchSlices slices(next_lines, std::max<int64_t>(chunks * steps * tiles, 1));
    for (int64_t c_first = g * per_group; c_first < (g + 1) * per_group; c_first += kChannels) {
      const int64_t count = std::min(kChannels, (g + 1) * per_group - c_first);
      for (int64_t cc = 0; cc < count; ++cc) {
        for (int64_t b = 0; b < grad_rows_count; ++b) {
          acc_t* target = grads.data() + cc * channel_stride + b * length;
          if (inside(first + b, rows.output_size)) {
            output_span.load<vector_t>(grad_output.row(n, c_first + cc, first + b),
                                       grad_output.step, target);
          } else {
            zero_contiguous(target, length);
          }
        }
      }
      for (int64_t h = h0; h < h1; h += row_step) {
        const int64_t rows_here = std::min(row_step, h1 - h);
        for (int64_t phase = 0; phase < std::min(cols.stride, cols.input_size); ++phase) {
          const int64_t columns = (cols.input_size - phase + cols.stride - 1) / cols.stride;
          const int64_t* phase_tap = taps.data() + phase * cols.kernel_size;
          const int64_t* phase_offset = offsets.data() + phase * cols.kernel_size;
          for (int64_t m0 = 0; m0 < columns; m0 += kTile) {
            if (phase == 0) slices.next(1).request_next();  // short bursts of requests
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
              with_choice(unit_columns, [&](auto unit) INVOLUTION_CPU_LAMBDA {
                grad_input_pair_tile<kChannels, decltype(unit)::value>(
                    rows.kernel_size, cols.kernel_size, m0, phase_tap, phase_offset,
                    counts[phase], row_weights(h), row_weights(h + 1), row0, length, length,
                    channel_stride, acc);
              });
              store_pair_tile<kVectors>(acc, [&](const vector_t (&tile)[kVectors], int64_t cc,
                                                 int64_t r) { store_channel(tile, cc, h + r); });
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

}  // namespace cpu
}  // namespace involution
