// The CPU grad_input for float and bfloat16, stride 1 along both axes, a multiple of 16
// channels per group (at the baseline level for some row lengths, dispatch.h): vectors along
// channels (channel_vectors.h), as the forward (forward_channel_tasks.h). Tasks as in
// grad_input_tasks.h: task (n, g, b) computes input rows b * block .. of every channel of
// group g.
//
// Input pixel (h, w) receives, at tap (u, v), grad_output (i, j) = (h + ph - u dh, w + pw - v dw)
// times that pixel's weight, where (i, j) is an output pixel: the forward's sum with the taps
// reversed. So a pixel tile computes it with the taps taken from the last (v' = KW - 1 - v):
// pixel q at tap v' reads buffer column base + q + v' dw, as the forward's tile reads its input,
// and its weight at offset q from that tap's weight pointer, the pointers stepping by
// dw - (a weight row's length) from one tap to the next.
#pragma once

#include <type_traits>
#include <vector>

#include "channel_vectors.h"
#include "grad_input_tasks.h"

namespace involution {
namespace cpu {

// Whether grad_input_channel_tasks can compute this problem (the level decides: dispatch.h).
template <typename scalar_t>
bool grad_input_takes_channel_vectors(const Problem& p) {
  const int64_t per_group = channels_per_group(p);
  return kChannelVectorTypes<scalar_t> && per_group > 0 && per_group % kGroupLanes == 0 &&
         p.height.stride == 1 && p.width.stride == 1;
}

// grad_input tasks [begin, end). Per task, the weight rows its input rows read are copied once
// (columns outside the output are zero weights, so the tiles need no bounds); per 16 channels,
// the grad_output rows are moved into channel vectors once (zero columns around them), each
// input row is computed in tiles of up to kTilePixels pixels over the kernel rows that reach an
// output row, and the results are moved out.
template <typename native_t, typename scalar_t>
INVOLUTION_CPU_INLINE void grad_input_channel_tasks(const Problem& p,
                                                    Rows4<const scalar_t> grad_output,
                                                    WeightRows<const scalar_t> weight,
                                                    Rows4<scalar_t> grad_input, int64_t block,
                                                    int64_t begin, int64_t end) {
  const Axis& rows = p.height;
  const Axis& cols = p.width;
  if (cols.input_size == 0) return;
  const int64_t per_group = channels_per_group(p);
  const int64_t chunks = per_group / kGroupLanes;
  const int64_t blocks = (rows.input_size + block - 1) / block;
  const int64_t kernel_w = cols.kernel_size, dw = cols.dilation;
  // buffer column of output column j: j + shift, so that input column w's last tap, output
  // column w + pw - (KW - 1) dw, is at column >= 0
  const int64_t shift = std::max<int64_t>((kernel_w - 1) * dw - cols.padding, 0);
  const int64_t length = shift + std::max(cols.input_size + cols.padding, cols.output_size);
  const int64_t grad_rows = block_output_rows(rows, block);
  const int64_t tiles = (cols.input_size + kTilePixels<native_t> - 1) / kTilePixels<native_t>;
  // zeroed once: columns outside the output are never written (kernels.h: framed row buffers)
  ChannelVectorBuffer grads(grad_rows * length);
  ChannelVectorBuffer results(block * cols.input_size);
  // the weight rows (as float) of block row r, kernel row u, column v at
  // ((r * KH + u) * KW + v) * length
  std::vector<float> weights(block * rows.kernel_size * kernel_w * length);
  PrefetchLines next_lines;  // the next task's
  for (int64_t task = begin; task < end; ++task) {
    next_lines.clear();
    if (task + 1 < end) {
      visit_grad_input_task_rows(p, grad_output, weight, grad_input, block, task + 1, next_lines);
    }
    const Task t = decode_task(task, blocks, p.groups);
    const int64_t n = t.n, g = t.g, h0 = t.r * block;
    const int64_t h1 = std::min(h0 + block, rows.input_size);
    const int64_t first = first_output_row(rows, h0);  // output row of buffer row 0
    const int64_t count = block_output_rows(rows, h1 - h0);
    const int64_t i0 = std::min(std::max<int64_t>(first, 0), first + count);
    const int64_t i1 = std::max(std::min(first + count, rows.output_size), i0);
    // Kernel rows [u_lo, u_hi) of input row h reach output rows (h + ph - u dh, unit stride).
    auto reach = [&](int64_t h, int64_t* u_lo, int64_t* u_hi) {
      const int64_t top = h + rows.padding;  // u dh <= top, top - u dh < output rows
      *u_hi = top < 0 ? 0 : std::min(top / rows.dilation + 1, rows.kernel_size);
      const int64_t over = top - (rows.output_size - 1);
      *u_lo = over <= 0 ? 0 : (over + rows.dilation - 1) / rows.dilation;
      *u_hi = std::max(*u_hi, *u_lo);
    };
    for (int64_t h = h0; h < h1; ++h) {
      int64_t u_lo, u_hi;
      reach(h, &u_lo, &u_hi);
      for (int64_t u = u_lo; u < u_hi; ++u) {
        const int64_t i = h + rows.padding - u * rows.dilation;
        float* target = weights.data() + ((h - h0) * rows.kernel_size + u) * kernel_w * length;
        if constexpr (std::is_same<scalar_t, float>::value) {
          if (weight.step() == 1) {  // the kernel row's weight rows, one size dispatch for all
            copy_rows(weight.row(n, g, u, 0, i), weight.strides[3], cols.output_size, kernel_w,
                      target + shift, length);
            continue;
          }
        }
        for (int64_t v = 0; v < kernel_w; ++v) {  // columns [shift, shift + Wo) of the frame
          copy_row<native_t>(weight.row(n, g, u, v, i), weight.step(), cols.output_size,
                             target + v * length + shift);
        }
      }
    }
    PrefetchSlices slices(next_lines, chunks * (h1 - h0) * tiles);  // a slice per tile
    for (int64_t chunk = 0; chunk < chunks; ++chunk) {
      const int64_t c_first = g * per_group + chunk * kGroupLanes;
      if (cols.output_size > 0) {
        move_pixels<native_t, false>(grad_output.row(n, c_first, i0), grad_output.channel_stride,
                                     grad_output.row_stride, grad_output.step,
                                     ChannelRows{grads.data() + (i0 - first) * length + shift,
                                                 i1 - i0, cols.output_size, length});
      }
      for (int64_t h = h0; h < h1; ++h) {
        int64_t u_lo, u_hi;
        reach(h, &u_lo, &u_hi);
        ChannelVector* row_results = results.data() + (h - h0) * cols.input_size;
        const int64_t u_count = u_hi - u_lo;
        if (u_count == 0) {  // no output row reaches this input row: its slices are skipped
          std::fill_n(row_results, cols.input_size, ChannelVector{});
          for (int64_t tile = 0; tile < tiles; ++tile) slices.next(1);
          continue;
        }
        // pixel 0's first tap (v = KW - 1 of kernel row u_lo): column pw - (KW - 1) dw + shift
        const int64_t base = cols.padding - (kernel_w - 1) * dw + shift;
        const int64_t i = h + rows.padding - u_lo * rows.dilation;
        const ChannelVector* row_inputs = grads.data() + (i - first) * length + base;
        const float* row_weights = weights.data() +
                                   (((h - h0) * rows.kernel_size + u_lo) * kernel_w +
                                    kernel_w - 1) * length + base;
        PixelTileArgs args{nullptr,
                           -rows.dilation * length,
                           1,
                           dw,
                           nullptr,
                           kernel_w * length,
                           dw - length,
                           u_count,
                           kernel_w,
                           {}};
        for (int64_t tile = 0, w0 = 0; tile < tiles; ++tile) {
          const int64_t w1 = cols.input_size * (tile + 1) / tiles;
          args.inputs = row_inputs + w0;
          args.weights = row_weights + w0;
          args.prefetch = slices.next(args.kernel_h);
          pixel_tile_of<native_t>(w1 - w0, args, row_results + w0);
          w0 = w1;
        }
      }
      move_pixels<native_t, true>(grad_input.row(n, c_first, h0), grad_input.channel_stride,
                                  grad_input.row_stride, grad_input.step,
                                  ChannelRows{results.data(), h1 - h0, cols.input_size,
                                              cols.input_size});
    }
  }
}

}  // namespace cpu
}  // namespace involution
