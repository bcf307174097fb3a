// The CPU forward for float and bfloat16 with a multiple of 16 channels per group: vectors
// along channels (channel_vectors.h; at the baseline level for some row lengths, dispatch.h).
// Tasks as in forward_tasks.h: task (n, g, b) computes output rows b * block .. of every
// channel of group g.
#pragma once

#include <type_traits>
#include <vector>

#include "channel_vectors.h"
#include "forward_tasks.h"

namespace involution {
namespace cpu {

// Whether forward_channel_tasks can compute this problem (the level decides: dispatch.h). Float
// weights are read in place, from rows contiguous along the width; bfloat16 ones too at AVX2 and
// AVX-512 (widened by the tile), and otherwise converted into a float copy.
template <typename scalar_t>
bool forward_takes_channel_vectors(const Problem& p, int64_t weight_step) {
  const int64_t per_group = channels_per_group(p);
  return kChannelVectorTypes<scalar_t> && per_group > 0 && per_group % kGroupLanes == 0 &&
         (weight_step == 1 || !std::is_same<scalar_t, float>::value);
}

// Forward tasks [begin, end). For each 16 channels of the task's group: its input rows are moved
// into channel vectors once (zero rows outside the input, zero padding columns), each output row
// is computed in tiles of up to kTilePixels pixels, and the results are moved out. The tiles' loops
// request the next task's cache lines as they go (prefetch_lines.h).
template <typename native_t, typename scalar_t>
INVOLUTION_CPU_INLINE void forward_channel_tasks(const Problem& p, Rows4<const scalar_t> input,
                                                 WeightRows<const scalar_t> weight,
                                                 Rows4<scalar_t> output, int64_t block,
                                                 int64_t begin, int64_t end) {
  constexpr bool kFloat = std::is_same<scalar_t, float>::value;
  // bfloat16 read in place where the tile widens it with a broadcast (not at the baseline level)
  constexpr bool kWidenedInTile = !kFloat && kParts<native_t> <= 2;
  const bool in_place = kFloat || (kWidenedInTile && weight.step() == 1);
  const Axis& rows = p.height;
  const Axis& cols = p.width;
  if (cols.output_size == 0) return;
  const int64_t per_group = channels_per_group(p);
  const int64_t chunks = per_group / kGroupLanes;
  const int64_t blocks = (rows.output_size + block - 1) / block;
  const int64_t input_rows = block_input_rows(rows, block);
  // the padded columns that some tap reads; input column w is padded column w + padding
  const int64_t columns = input_index(cols, cols.output_size - 1, cols.kernel_size - 1) +
                          cols.padding + 1;
  const int64_t read_columns = std::min(cols.input_size, columns - cols.padding);
  const int64_t tiles = (cols.output_size + kTilePixels<native_t> - 1) / kTilePixels<native_t>;
  // zeroed once: the padding columns are never written (kernels.h: framed row buffers)
  ChannelVectorBuffer inputs(input_rows * columns);
  int64_t held_lo = 0, held_hi = 0;  // the buffer rows that hold input rows; the rest are zero
  ChannelVectorBuffer results(block * cols.output_size);
  // bfloat16 not read in place: the task's weight rows as float, tap t = u * KW + v, row r at
  // (t * block + r) * output columns (a tap's rows back to back, as in the tensor)
  const int64_t kernel_taps = rows.kernel_size * cols.kernel_size;
  const int64_t tap_rows = block * cols.output_size;
  std::vector<float> weight_copy(in_place ? 0 : kernel_taps * tap_rows);
  PrefetchLines next_lines;  // the next task's
  for (int64_t task = begin; task < end; ++task) {
    next_lines.clear();
    if (task + 1 < end) {
      visit_forward_task_rows(p, input, weight, output, block, task + 1, next_lines);
    }
    const Task t = decode_task(task, blocks, p.groups);
    const int64_t n = t.n, g = t.g, i0 = t.r * block;
    const int64_t i1 = std::min(i0 + block, rows.output_size);
    const int64_t first = i0 * rows.stride - rows.padding;  // input row of buffer row 0
    const int64_t count = block_input_rows(rows, i1 - i0);
    const int64_t h0 = std::min(std::max<int64_t>(first, 0), first + count);
    const int64_t h1 = std::max(std::min(first + count, rows.input_size), h0);
    for (int64_t tap = 0; tap < kernel_taps && !in_place; ++tap) {
      const scalar_t* first_row =
          weight.row(n, g, tap / cols.kernel_size, tap % cols.kernel_size, i0);
      float* target = weight_copy.data() + tap * tap_rows;
      if (weight.step() == 1 && weight.strides[4] == cols.output_size) {
        copy_row<native_t>(first_row, 1, (i1 - i0) * cols.output_size, target);
        continue;
      }
      for (int64_t r = 0; r < i1 - i0; ++r) {
        copy_row<native_t>(first_row + r * weight.strides[4], weight.step(), cols.output_size,
                           target + r * cols.output_size);
      }
    }
    PrefetchSlices slices(next_lines, chunks * (i1 - i0) * tiles);  // a slice per tile
    for (int64_t chunk = 0; chunk < chunks; ++chunk) {
      const int64_t c_first = g * per_group + chunk * kGroupLanes;
      // rows outside the input are zero rows; the others are copied from the input. Only the
      // rows that held the last chunk's input and hold none now are zeroed: rewriting every
      // zero row at every chunk was 4% of the stage-4 forward (6 of a task's 13 rows).
      const int64_t data_lo = read_columns > 0 ? h0 - first : 0;
      const int64_t data_hi = read_columns > 0 ? h1 - first : 0;
      for (int64_t b = held_lo; b < held_hi; ++b) {
        if (b >= data_lo && b < data_hi) continue;
        std::fill_n(inputs.data() + b * columns, columns, ChannelVector{});
      }
      held_lo = data_lo, held_hi = data_hi;
      if (read_columns > 0) {
        move_pixels<native_t, false>(
            input.row(n, c_first, h0), input.channel_stride, input.row_stride, input.step,
            ChannelRows{inputs.data() + (h0 - first) * columns + cols.padding, h1 - h0,
                        read_columns, columns});
      }
      for (int64_t i = i0; i < i1; ++i) {
        ChannelVector* row_results = results.data() + (i - i0) * cols.output_size;
        // tiles of equal width (up to kTilePixels): 56 outputs are 4 x 14, not 3 x 16 + 8
        auto row_tiles = [&](const auto* row_weights, int64_t row_stride,
                             int64_t tap_stride) INVOLUTION_CPU_LAMBDA {
          using weight_t = std::remove_const_t<std::remove_pointer_t<decltype(row_weights)>>;
          const ChannelVector* row_inputs = inputs.data() + (i - i0) * rows.stride * columns;
          PixelTileArgsOf<weight_t> args{nullptr,    rows.dilation * columns, cols.stride,
                                         cols.dilation, nullptr, row_stride, tap_stride,
                                         rows.kernel_size, cols.kernel_size, {}};
          for (int64_t tile = 0, j0 = 0; tile < tiles; ++tile) {
            const int64_t j1 = cols.output_size * (tile + 1) / tiles;
            args.inputs = row_inputs + j0 * cols.stride;
            args.weights = row_weights + j0;
            args.prefetch = slices.next(args.kernel_h);
            pixel_tile_of<native_t>(j1 - j0, args, row_results + j0);
            j0 = j1;
          }
        };
        if constexpr (kFloat || kWidenedInTile) {
          if (in_place) {
            row_tiles(weight.row(n, g, 0, 0, i), weight.strides[2], weight.strides[3]);
            continue;
          }
        }
        row_tiles(weight_copy.data() + (i - i0) * cols.output_size, cols.kernel_size * tap_rows,
                  tap_rows);
      }
      move_pixels<native_t, true>(
          output.row(n, c_first, i0), output.channel_stride, output.row_stride, output.step,
          ChannelRows{results.data(), i1 - i0, cols.output_size, cols.output_size});
    }
  }
}

}  // namespace cpu
}  // namespace involution
