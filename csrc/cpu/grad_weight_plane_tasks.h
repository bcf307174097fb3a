// The CPU grad_weight kernel where the kernel's taps are fixed offsets of the flattened plane:
// strides of 1, a column dilation of 1 and an output as wide as the input (2 * pw = KW - 1).
//
// A task's output rows i0 .. i1 are taken as one plane of (i1 - i0) * W pixels, row after row,
// and a tile is a few vectors of consecutive pixels of it, so rows narrower than a vector (7 or
// 14 pixels at RedNet's last stages) waste no lanes. The input rows the task reads are copied
// after one another too (zero rows outside the input), and pixel q's tap (u, v) is then at
//
//     inputs[c][q + u * dh * W + v - pw]
//
// for every q: one load per multiply-add, each grad_output load serving a tile's kernel columns,
// the sums over the group's channels in registers and stored once. Where the tap's column lies
// in the padding, that load read a neighbouring row's pixel instead; such lanes are replaced as
// they are stored by what the reference computes there, sum_c grad_output[c][q] * 0 (0, or NaN
// where a grad_output is not finite: kernels.h).
//
// While a task computes, it requests the next task's cache lines (its grad_output and input
// rows, and its grad_weight rows, for writing) a few per kernel row of every tile
// (prefetch_lines.h): without them a cold call's memory time added to its compute time.
#pragma once

#include "kernels.h"
#include "prefetch_lines.h"

namespace involution {
namespace cpu {

// Where the plane tiles serve: besides the strides, a column dilation of 1 (the kernel columns'
// offsets are constants of the tile's loop: few registers for addresses) and grad_weight's
// (u, v) planes row after row (as the ops allocate it), so that a tile's pixels are consecutive
// there too. Rows of a whole number of `lanes` (the level's vector of accumulators) waste no
// lanes in the row tiles, which share each input load between two output rows: they keep those.
template <typename scalar_t>
bool grad_weight_takes_planes(const Problem& p, const WeightRows<scalar_t>& grad_weight,
                              int64_t lanes) {
  return p.height.stride == 1 && p.width.stride == 1 && p.width.dilation == 1 &&
         p.width.output_size == p.width.input_size && p.width.output_size % lanes != 0 &&
         grad_weight.step() == 1 && grad_weight.strides[4] == p.width.output_size;
}

// Output rows per task: whole images where there are enough images and groups to keep every
// thread busy (each task copies the input rows its block reads, (KH - 1) * dh more than the
// block's own), but no more than keeps a task's float buffers within half a megabyte (the L2
// cache of most cores).
inline int64_t plane_block_rows(const Problem& p, int64_t threads) {
  const int64_t rows = p.height.output_size, halo = (p.height.kernel_size - 1) * p.height.dilation;
  const int64_t row_bytes = p.width.output_size * channels_per_group(p) * 4;
  int64_t block = std::max<int64_t>(rows, 1);  // 1 when there are no rows
  while (block > 1 && ((2 * block + halo) * row_bytes > (int64_t{1} << 19) ||
                       p.batch * p.groups * ((rows + block - 1) / block) < 4 * threads)) {
    block = (block + 1) / 2;
  }
  return block;
}

// Rows r0 .. r1 of channel c of image n, `width` elements each, one after another into
// `target`: a single copy where the tensor's rows follow one another in memory (a contiguous
// image: at RedNet's last stages a row is only 7 or 14 elements, too short a copy to pay for
// its loop).
template <typename vector_t, typename scalar_t, typename acc_t>
INVOLUTION_CPU_INLINE void copy_plane_rows(Rows4<const scalar_t> tensor, int64_t n, int64_t c,
                                           int64_t r0, int64_t r1, int64_t width,
                                           acc_t* target) {
  if (r1 <= r0) return;
  if (tensor.step == 1 && tensor.row_stride == width) {
    return copy_row<vector_t>(tensor.row(n, c, r0), 1, (r1 - r0) * width, target);
  }
  for (int64_t r = r0; r < r1; ++r) {
    copy_row<vector_t>(tensor.row(n, c, r), tensor.step, width, target + (r - r0) * width);
  }
}

// Whether a plane tile shuffles half of its input vectors out of the other half instead of
// loading them: AVX2's float vectors. Its loop is held by its loads, two a cycle on Zen 3 and
// one where a load crosses a cache line, and the 7 loads of a tile's taps start a float apart,
// so most tiles have some that cross; a shuffle takes a port the multiply-adds mostly leave
// free (benchmarks/CPU_KERNELS.md: "grad_weight's odd taps shuffled").
template <typename vector_t, typename acc_t>
constexpr bool kShuffledTaps = std::is_same<acc_t, float>::value && sizeof(vector_t) == 32;

// Lanes k .. k + 3 of each 128-bit half of `low` followed by the same half of `high`: the
// vector that starts k floats after `low` where `high` starts 4 floats after it (vpalignr).
template <int64_t k, typename vector_t>
INVOLUTION_CPU_INLINE vector_t within_halves(const vector_t& low, const vector_t& high) {
  using index_t = Vector<int32_t, 32>;
  static_assert(k == 1 || k == 3, "within_halves: shifts of 1 or 3 floats");
  if constexpr (k == 1) return __builtin_shuffle(low, high, index_t{1, 2, 3, 8, 5, 6, 7, 12});
  return __builtin_shuffle(low, high, index_t{3, 8, 9, 10, 7, 12, 13, 14});
}

// taps[m] = the vector at inputs + m, m < kTaps: loaded where m is even; shuffled out of two
// loaded ones where m is odd and they are, at kShuffledTaps (window m - 1 and m + 3, or m - 3
// and m + 1).
template <int64_t kTaps, typename vector_t, typename acc_t>
INVOLUTION_CPU_INLINE void load_taps(const acc_t* inputs, vector_t (&taps)[kTaps]) {
  if constexpr (!kShuffledTaps<vector_t, acc_t>) {
    for (int64_t m = 0; m < kTaps; ++m) taps[m] = load<vector_t>(inputs + m);
  } else {
    for (int64_t m = 0; m < kTaps; m += 2) taps[m] = load<vector_t>(inputs + m);
    for (int64_t m = 1; m < kTaps; m += 2) {
      if (m + 3 < kTaps) {
        taps[m] = within_halves<1>(taps[m - 1], taps[m + 3]);
      } else if (m >= 3 && m + 1 < kTaps) {
        taps[m] = within_halves<3>(taps[m - 3], taps[m + 1]);
      } else {
        taps[m] = load<vector_t>(inputs + m);
      }
    }
  }
}

// kernel columns v0 .. v0 + kTaps of one kernel row for kTiles vectors of pixels:
//     acc[k][m][t] = sum_c grads[c * grad_stride + k * lanes + t]
//                        * inputs[c * channel_stride + m + k * lanes + t]
// (`inputs` points at kernel column v0's read of the tile's first pixel, channel 0).
template <int64_t kTiles, int64_t kTaps, typename vector_t, typename acc_t>
INVOLUTION_CPU_INLINE void plane_tile(int64_t channels, const acc_t* grads, int64_t grad_stride,
                                      const acc_t* inputs, int64_t channel_stride,
                                      vector_t (&acc)[kTiles][kTaps]) {
  constexpr int64_t kLanes = lanes<vector_t, acc_t>();
  for (int64_t k = 0; k < kTiles; ++k) {
    for (int64_t m = 0; m < kTaps; ++m) acc[k][m] = vector_t{};
  }
  for (int64_t c = 0; c < channels; ++c, grads += grad_stride, inputs += channel_stride) {
    vector_t grad[kTiles], taps[kTiles][kTaps];
    for (int64_t k = 0; k < kTiles; ++k) {
      grad[k] = load<vector_t>(grads + k * kLanes);
      load_taps(inputs + k * kLanes, taps[k]);
    }
    for (int64_t m = 0; m < kTaps; ++m) {
      for (int64_t k = 0; k < kTiles; ++k) acc[k][m] += grad[k] * taps[k][m];
    }
  }
}

// Where a task's results go: grad_weight[n, g, u, v, :, :] of its rows, pixel q of the plane at
// row(n, g, u, v, i0) + q, through the lanes' masks (kernel column v in the input at pixel q:
// -1) and the padding's sums.
template <typename scalar_t, typename acc_t, int64_t kBytes>
struct PlaneTarget {
  using vector_t = Vector<acc_t, kBytes>;
  using mask_int = std::conditional_t<sizeof(acc_t) == 4, int32_t, int64_t>;
  using mask_t = Vector<mask_int, kBytes>;
  WeightRows<scalar_t> grad_weight;
  int64_t n, g, i0;
  const mask_int* columns;  // kernel column v's masks of pixels q: columns[v * plane + q]
  int64_t plane;
  const acc_t* padding_sums;  // of pixels q: padding_sums[q]
  // Kernel row u's plane of kernel column v: tap_stride() apart for consecutive columns.
  INVOLUTION_CPU_INLINE scalar_t* row(int64_t u, int64_t v) const {
    return grad_weight.row(n, g, u, v, i0);
  }
  INVOLUTION_CPU_INLINE int64_t tap_stride() const { return grad_weight.strides[3]; }
  // Pixels q .. q + count of kernel column v's plane `target` (row(u, v)).
  INVOLUTION_CPU_INLINE void store(const vector_t& tile, scalar_t* target, int64_t v, int64_t q,
                                   int64_t count) const {
    const mask_t valid = *reinterpret_cast<const mask_t*>(columns + v * plane + q);
    const vector_t one[1] = {valid ? tile : load<vector_t>(padding_sums + q)};
    store_tile<1>(one, count, target + q, 1);
  }
};

// One task's buffers as the tiles read them: pixel q of the plane (q < count) has grad_output
// grads[c * grad_stride + q] and its tap (u, v) reads inputs[c * channel_stride + q + u * row_step
// + v].
template <typename acc_t>
struct PlaneTask {
  const acc_t* grads;
  int64_t grad_stride;
  const acc_t* inputs;
  int64_t channel_stride, row_step, channels, kernel_h, count;
  const PrefetchLines* next;  // the next task's lines, requested over the task's passes
  int64_t passes;             // of plane_columns: one per kMaxTaps kernel columns
};

// Vectors of pixels per plane tile at a level of kRegisters vector registers: two where the
// registers hold both tiles' sums, their grad_output and an input (twice the independent sums
// to hide the multiply-add latency), one where the taps are shuffled (their loaded half takes
// the registers, and one shuffled tile outran two loaded ones: CPU_KERNELS.md).
template <int64_t kRegisters, int64_t kTaps, typename vector_t, typename acc_t>
constexpr int64_t plane_tile_vectors() {
  return 2 * kTaps + 3 <= kRegisters && !kShuffledTaps<vector_t, acc_t> ? 2 : 1;
}

// Computes and stores kernel columns v0 .. v0 + kTaps of every kernel row for the whole plane,
// plane_tile_vectors vectors of pixels at a time. Pass `pass` of the task's passes requests
// its share of the next task's lines, a part per kernel row of every tile.
template <int64_t kRegisters, int64_t kTaps, typename vector_t, typename acc_t, typename Target>
INVOLUTION_CPU_INLINE void plane_columns(const PlaneTask<acc_t>& task, const Target& target,
                                         int64_t v0, int64_t pass) {
  constexpr int64_t kLanes = lanes<vector_t, acc_t>();
  constexpr int64_t kTiles = plane_tile_vectors<kRegisters, kTaps, vector_t, acc_t>();
  const int64_t tiles = (task.count + kTiles * kLanes - 1) / (kTiles * kLanes);
  PrefetchSlice prefetch = task.next->slice(pass, task.passes, tiles * task.kernel_h);
  for (int64_t q0 = 0; q0 < task.count; q0 += kTiles * kLanes) {
    for (int64_t u = 0; u < task.kernel_h; ++u) {
      prefetch.request_next();
      vector_t acc[kTiles][kTaps];
      plane_tile<kTiles, kTaps>(task.channels, task.grads + q0, task.grad_stride,
                                task.inputs + q0 + u * task.row_step + v0, task.channel_stride,
                                acc);
      // the row's address once, its columns a stride apart: computed from the tensor's five
      // strides per store, the address took registers the loop had to spill
      auto* const first_column = target.row(u, v0);
      const int64_t tap_stride = target.tap_stride();
      for (int64_t k = 0; k < kTiles; ++k) {
        const int64_t q = q0 + k * kLanes;
        if (q >= task.count) break;
        for (int64_t m = 0; m < kTaps; ++m) {
          target.store(acc[k][m], first_column + m * tap_stride, v0 + m, q,
                       std::min(kLanes, task.count - q));
        }
      }
    }
  }
}

// grad_weight tasks [begin, end) of the B * G * blocks tasks (blocks of `block` output rows),
// as the header says; Shape gives the vector width.
template <typename scalar_t, typename Shape>
INVOLUTION_CPU_INLINE void grad_weight_plane_tasks(const Problem& p,
                                                   Rows4<const scalar_t> grad_output,
                                                   Rows4<const scalar_t> input,
                                                   WeightRows<scalar_t> grad_weight,
                                                   int64_t block, int64_t begin, int64_t end) {
  using acc_t = at::opmath_type<scalar_t>;
  using vector_t = Vector<acc_t, Shape::bytes>;
  using Target = PlaneTarget<scalar_t, acc_t, Shape::bytes>;
  using mask_int = typename Target::mask_int;
  constexpr int64_t kLanes = lanes<vector_t, acc_t>();
  constexpr int64_t kRegisters = Shape::bytes == 64 ? 32 : 16;
  constexpr int64_t kMaxTaps = 8;
  const Axis& rows = p.height;
  const Axis& cols = p.width;
  const int64_t width = cols.output_size;
  if (width == 0) return;
  const int64_t per_group = channels_per_group(p);
  const int64_t blocks = (rows.output_size + block - 1) / block;
  const int64_t plane = round_up(block * width, 2 * kLanes);  // one channel, whole tiles
  const int64_t row_reach = (rows.kernel_size - 1) * rows.dilation * width;
  // an input channel: `lead` elements before row 0 and room for every tile's reads after it
  const int64_t lead = cols.padding;
  const int64_t channel_stride = lead + plane + row_reach + cols.padding;
  // zeroed once (never read unset, only into discarded lanes); a plane's tiles start at the
  // same place in a cache line in every channel and every call
  LineBuffer<acc_t> grads(per_group * plane);
  LineBuffer<acc_t> inputs(per_group * channel_stride);
  LineBuffer<acc_t> padding_sums(plane);
  LineBuffer<mask_int> columns(cols.kernel_size * plane);
  for (int64_t v = 0; v < cols.kernel_size; ++v) {
    for (int64_t q = 0; q < plane; ++q) {
      const bool valid = inside(q % width + v - cols.padding, width);
      columns.data()[v * plane + q] = valid ? mask_int(-1) : mask_int(0);
    }
  }
  // task `task`'s rows: output rows i0 .. i1 of image n, group g; the input rows the buffer's
  // rows r0 .. r1 hold (input row first + r; the buffer's other rows are zero)
  struct Rows {
    int64_t n, g, i0, i1, first, r0, r1;
  };
  const int64_t input_rows_of_block = (rows.kernel_size - 1) * rows.dilation;
  auto rows_of = [&](int64_t task) {
    const Task t = decode_task(task, blocks, p.groups);
    const int64_t i0 = t.r * block, i1 = std::min(i0 + block, rows.output_size);
    const int64_t first = i0 - rows.padding, input_rows = i1 - i0 + input_rows_of_block;
    const int64_t r0 = std::min(std::max<int64_t>(-first, 0), input_rows);
    const int64_t r1 = std::max(std::min(rows.input_size - first, input_rows), r0);
    return Rows{t.n, t.g, i0, i1, first, r0, r1};
  };
  const int64_t passes = (cols.kernel_size + kMaxTaps - 1) / kMaxTaps;
  PrefetchLines next_lines;
  for (int64_t task = begin; task < end; ++task) {
    const auto [n, g, i0, i1, first, r0, r1] = rows_of(task);
    const int64_t c_first = g * per_group;
    const int64_t input_rows = i1 - i0 + input_rows_of_block;
    const int64_t count = (i1 - i0) * width;
    for (int64_t c = 0; c < per_group; ++c) {
      copy_plane_rows<vector_t>(grad_output, n, c_first + c, i0, i1, width,
                                grads.data() + c * plane);
      acc_t* target = inputs.data() + c * channel_stride + lead;
      zero_contiguous(target, r0 * width);
      copy_plane_rows<vector_t>(input, n, c_first + c, first + r0, first + r1, width,
                                target + r0 * width);
      zero_contiguous(target + r1 * width, (input_rows - r1) * width);
    }
    next_lines.clear();
    if (task + 1 < end) {
      const Rows next = rows_of(task + 1);
      for (int64_t c = next.g * per_group; c < (next.g + 1) * per_group; ++c) {
        next_lines.add_rows<0>(grad_output.row(next.n, c, next.i0), grad_output.step,
                               grad_output.row_stride, next.i1 - next.i0, width);
        next_lines.add_rows<0>(input.row(next.n, c, next.first + next.r0), input.step,
                               input.row_stride, next.r1 - next.r0, width);
      }
      // grad_weight's (u, v) planes of the task: one span where they are back to back
      const int64_t taps = rows.kernel_size * cols.kernel_size;
      const bool in_a_row = grad_weight.strides[2] == cols.kernel_size * grad_weight.strides[3];
      for (int64_t u = 0; u < rows.kernel_size; u += in_a_row ? rows.kernel_size : 1) {
        next_lines.add_rows<1>(grad_weight.row(next.n, next.g, u, 0, next.i0), 1,
                               grad_weight.strides[3], in_a_row ? taps : cols.kernel_size,
                               (next.i1 - next.i0) * width);
      }
    }
    for (int64_t k = 0; k * kLanes < count; ++k) {
      vector_t sum{};
      for (int64_t c = 0; c < per_group; ++c) {
        sum += load<vector_t>(grads.data() + c * plane + k * kLanes) * vector_t{};
      }
      __builtin_memcpy(padding_sums.data() + k * kLanes, &sum, sizeof(sum));
    }
    const Target out{
        grad_weight, n, g, i0, columns.data(), plane, padding_sums.data()};
    const PlaneTask<acc_t> planes{grads.data(),          plane,
                                  inputs.data() + lead - cols.padding,
                                  channel_stride,        rows.dilation * width,
                                  per_group,             rows.kernel_size,
                                  count,                 &next_lines,
                                  passes};
    for (int64_t v0 = 0; v0 < cols.kernel_size; v0 += kMaxTaps) {
      auto run = [&](auto taps) INVOLUTION_CPU_LAMBDA {
        plane_columns<kRegisters, decltype(taps)::value, vector_t>(planes, out, v0,
                                                                   v0 / kMaxTaps);
      };
      switch (std::min(cols.kernel_size - v0, kMaxTaps)) {
        case 1: run(std::integral_constant<int64_t, 1>{}); break;
        case 2: run(std::integral_constant<int64_t, 2>{}); break;
        case 3: run(std::integral_constant<int64_t, 3>{}); break;
        case 4: run(std::integral_constant<int64_t, 4>{}); break;
        case 5: run(std::integral_constant<int64_t, 5>{}); break;
        case 6: run(std::integral_constant<int64_t, 6>{}); break;
        case 7: run(std::integral_constant<int64_t, 7>{}); break;
        default: run(std::integral_constant<int64_t, 8>{}); break;
      }
    }
  }
}

}  // namespace cpu
}  // namespace involution
