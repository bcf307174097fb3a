// The CPU grad_weight kernel: tasks of blocks of output rows (kernels.h says how they work).
#pragma once

#include "kernels.h"
#include "prefetch_lines.h"

namespace involution {
namespace cpu {

// Lists the lines grad_weight task `task` (blocks of `block` output rows) touches: the input and
// grad_output rows of its channels and the grad_weight rows it writes.
template <typename scalar_t>
INVOLUTION_CPU_INLINE void list_grad_weight_task(const Problem& p,
                                                 Rows4<const scalar_t> grad_output,
                                                 Rows4<const scalar_t> input,
                                                 WeightRows<scalar_t> grad_weight, int64_t block,
                                                 int64_t task, PrefetchLines& lines) {
  const int64_t blocks = (p.height.output_size + block - 1) / block;
  const Task t = decode_task(task, blocks, p.groups);
  const int64_t i0 = t.r * block, i1 = std::min(i0 + block, p.height.output_size);
  const int64_t per_group = channels_per_group(p);
  const int64_t first = i0 * p.height.stride - p.height.padding;
  const int64_t h0 = std::max<int64_t>(first, 0);
  const int64_t h1 = std::min(first + block_input_rows(p.height, i1 - i0), p.height.input_size);
  if (h1 > h0) {
    visit_runs<0>(lines, input.row(t.n, t.g * per_group, h0), input.step, input.row_stride,
                  h1 - h0, p.width.input_size, input.channel_stride, per_group);
  }
  visit_runs<0>(lines, grad_output.row(t.n, t.g * per_group, i0), grad_output.step,
                grad_output.row_stride, i1 - i0, p.width.output_size, grad_output.channel_stride,
                per_group);
  const int64_t taps = p.height.kernel_size * p.width.kernel_size;
  for (int64_t tap = 0; tap < taps; ++tap) {
    const int64_t u = tap / p.width.kernel_size, v = tap % p.width.kernel_size;
    lines.add_rows<1>(grad_weight.row(t.n, t.g, u, v, i0), grad_weight.step(),
                      grad_weight.strides[4], i1 - i0, p.width.output_size);
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
  // framed row buffers (tiles.h: load_framed_row): zeroed here, once
  std::vector<acc_t> inputs(per_group * layout.channel_stride);
  std::vector<acc_t> grads(per_group * block * padded_outputs);  // channel c, block row r
  const int64_t grad_stride = block * padded_outputs;
  const int64_t row_step = rows.stride == rows.dilation ? 2 : 1;
  const int64_t tiles = (cols.output_size + kTile - 1) / kTile;
  PrefetchLines next_lines;  // the next task's, a slice per tile (forward_tasks.h)
  for (int64_t task = begin; task < end; ++task) {
    next_lines.clear();
    if (task + 1 < end) {
      list_grad_weight_task(p, grad_output, input, grad_weight, block, task + 1, next_lines);
    }
    const Task t = decode_task(task, blocks, p.groups);
    const int64_t n = t.n, g = t.g, i0 = t.r * block;
    const int64_t i1 = std::min(i0 + block, rows.output_size);
    const int64_t steps = (i1 - i0 + row_step - 1) / row_step;
    PrefetchSlices slices(next_lines, std::max<int64_t>(steps * tiles, 1));
    const int64_t c_first = g * per_group;
    load_padded_block<vector_t>(input, rows, cols, layout, n, c_first, per_group,
                                i0 * rows.stride - rows.padding, input_rows, inputs.data());
    for (int64_t cc = 0; cc < per_group; ++cc) {
      for (int64_t i = i0; i < i1; ++i) {
        load_framed_row<vector_t>(grad_output.row(n, c_first + cc, i), grad_output.step,
                                  cols.output_size, 0,
                                  grads.data() + cc * grad_stride + (i - i0) * padded_outputs,
                                  padded_outputs);
      }
    }
    for (int64_t i = i0; i < i1; i += row_step) {
      const bool pair = row_step == 2 && i + 1 < i1;
      for (int64_t t0 = 0; t0 < cols.output_size; t0 += kTile) {
        slices.next(1).request_next();  // short bursts of requests
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
