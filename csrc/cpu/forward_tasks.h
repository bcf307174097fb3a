// The CPU forward kernel: tasks of blocks of output rows (kernels.h says how they work).
#pragma once

#include <type_traits>

#include "kernels.h"
#include "prefetch_lines.h"

namespace involution {
namespace cpu {

// Calls visit(first, step, row_stride, rows, count, kWrite) for the runs of rows that forward
// task `task` (blocks of `block` output rows) reads and writes: the input rows of its channels,
// its weight rows (a kernel tap's rows per run) and its output rows (kWrite = 1). `first` points
// at the first row's first element, rows are `row_stride` apart, `count` elements of step `step`
// each.
template <typename scalar_t, typename Visit>
INVOLUTION_CPU_INLINE void visit_forward_task_rows(const Problem& p, Rows4<const scalar_t> input,
                                                   WeightRows<const scalar_t> weight,
                                                   Rows4<scalar_t> output, int64_t block,
                                                   int64_t task, Visit&& visit) {
  const int64_t blocks = (p.height.output_size + block - 1) / block;
  const Task t = decode_task(task, blocks, p.groups);
  const int64_t i0 = t.r * block, i1 = std::min(i0 + block, p.height.output_size);
  const int64_t per_group = channels_per_group(p);
  const int64_t first = i0 * p.height.stride - p.height.padding;
  const int64_t h0 = std::max<int64_t>(first, 0);
  const int64_t h1 = std::min(first + block_input_rows(p.height, i1 - i0), p.height.input_size);
  if (h1 > h0) {
    visit_runs<0>(visit, input.row(t.n, t.g * per_group, h0), input.step, input.row_stride,
                  h1 - h0, p.width.input_size, input.channel_stride, per_group);
  }
  const int64_t taps = p.height.kernel_size * p.width.kernel_size;
  if (weight.strides[2] == p.width.kernel_size * weight.strides[3]) {  // taps evenly apart
    visit_runs<0>(visit, weight.row(t.n, t.g, 0, 0, i0), weight.step(), weight.strides[4],
                  i1 - i0, p.width.output_size, weight.strides[3], taps);
  } else {
    for (int64_t tap = 0; tap < taps; ++tap) {
      visit(weight.row(t.n, t.g, tap / p.width.kernel_size, tap % p.width.kernel_size, i0),
            weight.step(), weight.strides[4], i1 - i0, p.width.output_size,
            std::integral_constant<int, 0>{});
    }
  }
  visit_runs<1>(visit, output.row(t.n, t.g * per_group, i0), output.step, output.row_stride,
                i1 - i0, p.width.output_size, output.channel_stride, per_group);
}

// The weights a forward tile reads: in place where the weight rows are contiguous and of the
// accumulation type or bfloat16 (widened as they are loaded), otherwise from a padded copy.
// A row's last, partial tile reads past the row's end (into the next row or tap; those lanes
// are never stored): in place where that read stays inside the weight tensor's memory, from the
// copy in the few tasks where it would not.
template <typename weight_t>
struct WeightTile {
  const weight_t* data;
  int64_t row_stride, tap_stride;  // kernel row u, kernel column v
  int64_t next_row;                // the next output row's tile
};

// Forward tasks [begin, end) of the B * G * blocks tasks; task (n, g, b) computes output rows
// b * block .. of every channel of group g. Its channels are taken kChannels at a time: their
// padded input rows are copied once, then every output row of the block reads them. The next
// task's lines (what it reads, and what it writes, so that the stores find their lines in L2
// too) are listed when a task starts and requested a slice per tile (prefetch_lines.h): a
// single stream per row is too short for the hardware prefetchers to follow, and there are
// kernel_h * kernel_w of them. Walked per tile instead, with its divisions, the next task's rows
// took 7% of the baseline level's stage-3 forward (profile_emr_default_row_tiles.txt).
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
  const bool unit_columns = unit_column_tiles<vector_t>(cols.stride, cols.dilation);
  const int64_t kernel_taps = rows.kernel_size * cols.kernel_size;
  // Output columns [copied_from, padded_outputs) read the copy, in tasks whose last tile reads
  // past the tensor (or all tasks, where the weight cannot be read in place: float16 weights,
  // rows with a step).
  constexpr bool kInPlace = std::is_same<scalar_t, acc_t>::value || kWidenedOnLoad<scalar_t>;
  using in_place_t = std::conditional_t<kInPlace, scalar_t, acc_t>;
  const bool in_place = kInPlace && weight.step() == 1;
  const int64_t copied_from = in_place ? cols.output_size / kTile * kTile : 0;
  const int64_t copied_length = layout.padded_outputs - copied_from;
  // framed row buffers (tiles.h: load_framed_row): zeroed here, once
  std::vector<acc_t> weight_copy(block * kernel_taps * copied_length);
  std::vector<acc_t> inputs(kChannels * layout.channel_stride);
  // Two rows at a time where their kernel rows share input rows (forward_pair_tile).
  const int64_t row_step = kVectors == 1 && rows.stride == rows.dilation ? 2 : 1;
  const int64_t tiles = (cols.output_size + kTile - 1) / kTile;
  const int64_t chunks = (per_group + kChannels - 1) / kChannels;
  PrefetchLines next_lines;
  for (int64_t task = begin; task < end; ++task) {
    next_lines.clear();
    if (task + 1 < end) {
      visit_forward_task_rows(p, input, weight, output, block, task + 1, next_lines);
    }
    const Task t = decode_task(task, blocks, p.groups);
    const int64_t n = t.n, g = t.g, i0 = t.r * block;
    const int64_t i1 = std::min(i0 + block, rows.output_size);
    // the task's last weight row (strides are never negative) read up to its last tile's end
    const bool copies =
        copied_length > 0 &&
        !(in_place && weight.spans(weight.row(n, g, rows.kernel_size - 1, cols.kernel_size - 1,
                                              i1 - 1) + copied_from,
                                   copied_length));
    for (int64_t r = 0; r < i1 - i0 && copies; ++r) {
      for (int64_t tap = 0; tap < kernel_taps; ++tap) {
        const scalar_t* row =
            weight.row(n, g, tap / cols.kernel_size, tap % cols.kernel_size, i0 + r);
        acc_t* target = weight_copy.data() + (r * kernel_taps + tap) * copied_length;
        load_framed_row<vector_t>(row + copied_from * weight.step(), weight.step(),
                                  cols.output_size - copied_from, 0, target, copied_length);
      }
    }
    // Calls f with the weight tile of output row i from column t0: the copy's or the tensor's.
    auto with_weight_tile = [&](int64_t i, int64_t t0, auto&& f) INVOLUTION_CPU_LAMBDA {
      if (copies && t0 >= copied_from) {
        return f(WeightTile<acc_t>{
            weight_copy.data() + (i - i0) * kernel_taps * copied_length + t0 - copied_from,
            cols.kernel_size * copied_length, copied_length, kernel_taps * copied_length});
      }
      const scalar_t* row = weight.row(n, g, 0, 0, i) + t0;
      return f(WeightTile<in_place_t>{reinterpret_cast<const in_place_t*>(row), weight.strides[2],
                                      weight.strides[3], weight.strides[4]});
    };
    const int64_t first_row = i0 * rows.stride - rows.padding;
    const int64_t steps = (i1 - i0 + row_step - 1) / row_step;
    PrefetchSlices slices(next_lines, std::max<int64_t>(chunks * steps * tiles, 1));  // per tile
    for (int64_t c_first = g * per_group; c_first < (g + 1) * per_group; c_first += kChannels) {
      const int64_t count = std::min(kChannels, (g + 1) * per_group - c_first);
      load_padded_block<vector_t>(input, rows, cols, layout, n, c_first, count, first_row,
                                  input_rows, inputs.data());
      const int64_t row_stride = rows.dilation * layout.row_length;
      for (int64_t i = i0; i < i1; i += row_step) {
        const int64_t rows_here = std::min(row_step, i1 - i);
        for (int64_t t0 = 0; t0 < cols.output_size; t0 += kTile) {
          slices.next(1).request_next();
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
            with_weight_tile(i, t0, [&](const auto& upper) INVOLUTION_CPU_LAMBDA {
              vector_t acc[2][kChannels];
              with_choice(unit_columns, [&](auto unit) INVOLUTION_CPU_LAMBDA {
                forward_pair_tile<kChannels, decltype(unit)::value>(
                    rows.kernel_size, cols.kernel_size, taps.data(), upper.data,
                    upper.data + upper.next_row, upper.row_stride, upper.tap_stride,
                    tile_inputs(i), layout.channel_stride, row_stride, acc);
              });
              store_pair_tile<kVectors>(acc, [&](const vector_t (&tile)[kVectors], int64_t cc,
                                                 int64_t r) { store_channel(tile, cc, i + r); });
            });
            continue;
          }
          for (int64_t row = i; row < i + rows_here; ++row) {
            with_weight_tile(row, t0, [&](const auto& w) INVOLUTION_CPU_LAMBDA {
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
            });
          }
        }
      }
    }
  }
}

}  // namespace cpu
}  // namespace involution
