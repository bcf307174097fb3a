// What the CPU kernels of the three involution ops share (each op's tasks: forward_tasks.h,
// grad_input_tasks.h, grad_weight_tasks.h; index math: ../involution_index.h; tiles: tiles.h).
//
//   forward      out[n,c,i,j]    = sum_{u,v} w[n,g(c),u,v,i,j] * x[n,c, ih(i,u), iw(j,v)]
//   grad_input   gx[n,c,h,w]     = sum_{(u,v,i,j) reading (h,w)} w[n,g(c),u,v,i,j] * go[n,c,i,j]
//   grad_weight  gw[n,g,u,v,i,j] = sum_{c in g} go[n,c,i,j] * x[n,c, ih(i,u), iw(j,v)]
//
// Work mapping: the work is split into tasks that each own a block of whole rows of the result
// (for the forward, up to 8 output rows of every channel of group g of image n, 14 with
// channel vectors: task_block_rows), so there are no atomics and results are deterministic; a
// task copies the rows its block reads once.
// Tensors are read and written through their strides (any layout, channels_last included).
//
// Tiling: a task's inner loops run over tiles of kVectors vector registers of outputs, for
// kChannels channels at once (TileShape), and over two rows at once where the kernel's row step
// lets consecutive rows share what they read; isa.h / dispatch.h choose the shape and compile
// the kernels for each ISA level. The kernels here are always inlined into those entry points.
// The float and bfloat16 forward and grad_input of groups of a multiple of 16 channels take
// vectors along channels instead (channel_vectors.h; at the baseline level only rows that are
// not a whole number of its vectors: dispatch.h), and grad_weight at unit
// strides takes tiles along the flattened output plane where rows would waste lanes
// (grad_weight_plane_tasks.h).
//
// Zero padding is multiplied, not skipped, exactly as in the unfold reference: the padded rows
// of a block are zero rows, so a tap in the padding adds weight * 0 to the forward and
// grad_output * 0 to grad_weight, and a NaN or Inf there propagates as it does in the
// reference (and is 0 otherwise).
#pragma once

#include <ATen/OpMathType.h>

#include <algorithm>
#include <type_traits>
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
  int64_t extent;  // one past the tensor's last element: data[0, extent) is the tensor's memory
  T* row(int64_t n, int64_t g, int64_t u, int64_t v, int64_t i) const {
    return data + n * strides[0] + g * strides[1] + u * strides[2] + v * strides[3] +
           i * strides[4];
  }
  int64_t step() const { return strides[5]; }
  // Whether `count` elements from `first` lie inside the tensor's memory.
  bool spans(const T* first, int64_t count) const { return first + count <= data + extent; }
};

// Visits `runs` runs of `rows` rows (as visit_forward_task_rows's visitor: rows `row_stride`
// apart, `count` elements of step `step`), run r at first + r * run_stride; where each run ends
// where the next begins, as a single run (one span of the prefetch list per task instead of one
// per channel or tap: at RedNet's last stage a channel's rows are 49 elements).
template <int kWrite, typename T, typename Visit>
INVOLUTION_CPU_INLINE void visit_runs(Visit& visit, T* first, int64_t step, int64_t row_stride,
                                      int64_t rows, int64_t count, int64_t run_stride,
                                      int64_t runs) {
  if (runs > 0 && run_stride == rows * row_stride) {
    return visit(first, step, row_stride, runs * rows, count,
                 std::integral_constant<int, kWrite>{});
  }
  for (int64_t r = 0; r < runs; ++r) {
    visit(first + r * run_stride, step, row_stride, rows, count,
          std::integral_constant<int, kWrite>{});
  }
}

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

// Stores the two-row tile of a pair kernel (one vector per channel and row) through
// store(tile, channel, row offset), a tile of kVectors vectors as store_tile takes it.
template <int64_t kVectors, int64_t kChannels, typename vector_t, typename Store>
INVOLUTION_CPU_INLINE void store_pair_tile(const vector_t (&acc)[2][kChannels], Store&& store) {
  for (int64_t r = 0; r < 2; ++r) {
    for (int64_t cc = 0; cc < kChannels; ++cc) {
      const vector_t tile[kVectors] = {acc[r][cc]};
      store(tile, cc, r);
    }
  }
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
// blocks are kept short enough to leave every thread several tasks. At most `most` rows: 8 for
// the row tiles; the channel vectors' tasks take 14, a whole image at RedNet's stage 3, whose
// forward then transposes 14 input rows instead of 20 (benchmarks/CPU_KERNELS.md: "Longer tasks
// for the channel vectors").
constexpr int64_t kRowTileBlockRows = 8;
constexpr int64_t kChannelVectorBlockRows = 14;
inline int64_t task_block_rows(const Problem& p, int64_t rows, int64_t threads,
                               int64_t most = kRowTileBlockRows) {
  int64_t block = std::max<int64_t>(std::min<int64_t>(rows, most), 1);  // 1 when there are no rows
  while (block > 1 && p.batch * p.groups * ((rows + block - 1) / block) < 4 * threads) block /= 2;
  return block;
}

// Loads, for `count` channels from c_first, the padded input rows first .. first + rows_count
// into the task's framed buffer (layout: padded_input_layout; tiles.h: load_framed_row); rows
// outside the input are zero, so that the zero padding is multiplied as in the reference.
template <typename vector_t, typename scalar_t, typename acc_t>
INVOLUTION_CPU_INLINE void load_padded_block(Rows4<const scalar_t> input, const Axis& rows,
                                             const Axis& cols, const PaddedInputLayout& layout,
                                             int64_t n, int64_t c_first, int64_t count,
                                             int64_t first, int64_t rows_count, acc_t* buffer) {
  for (int64_t cc = 0; cc < count; ++cc) {
    for (int64_t b = 0; b < rows_count; ++b) {
      acc_t* target = buffer + cc * layout.channel_stride + b * layout.row_length;
      if (inside(first + b, rows.input_size)) {
        load_padded_input_row<vector_t>(input.row(n, c_first + cc, first + b), input.step, cols,
                                        layout.phase_len, target);
      } else {
        zero_contiguous(target, layout.row_length);
      }
    }
  }
}

}  // namespace cpu
}  // namespace involution
