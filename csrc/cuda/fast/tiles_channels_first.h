// The fast channels-first (NCHW) tile kernels of the 2-byte types: a block first copies the rows
// its threads read (one tile: some channels' rows of one image, over every column) into shared
// memory as float, zeros wherever a row or column lies in the padding; then each thread computes
// V = 4 neighbouring pixels of a row and reads their windows from there, 16 bytes at a time.
//
//   ForwardTilesChannelsFirst     the input rows of a band of output rows, 8 channels a thread
//   GradInputTilesChannelsFirst   the grad_output rows of a band of input rows, 8 channels a thread
//   GradWeightTilesChannelsFirst  a group's input rows and grad_output rows of a band of output
//                                 rows; a thread sums one kernel row's V·KW taps over the group
//
// Why: a bfloat16 scalar read from global memory costs a load and a widening, and the scalars of
// a row start at either parity, so the register-only row kernels (rows_channels_first.h) spend
// two instructions per window value; from the float tile a window of V + KW − 1 values is three
// loads (16, 16 and 8 bytes: a quad's window starts at a multiple of 4 floats). The zeros of the
// tile are multiplied as the reference multiplies its zero padding, so NaN/Inf weights (forward)
// and grad_output (grad_weight) propagate with no masks; grad_input masks the weights of columns
// outside the output (ColumnMask, in the widening), which add nothing in the reference.
//
// The functors follow plumbing.h's tile protocol (kSharedTiles): tiles(), shared_floats(),
// fill(thread, tile, shared) by every thread of the block, a barrier, then compute(thread, tile,
// shared). Taken where stride and dilation along the width are 1, the kernel width is a
// compile-time KW (3 or 7) and a tile of at least one row fits kMaxTileBytes (tiles_plan).
#pragma once

#include <cstdint>
#include <cstring>

#include "../plumbing.h"
#include "channels_first.h"
#include "rows.h"
#include "rows_channels_first.h"

namespace involution {
namespace cuda {
namespace fast {

constexpr int kTilePixels = 4;    // V: pixels of a row per thread (a 16-byte quad of floats)
constexpr int kTileChannels = 8;  // channels per thread in the forward and grad_input
// Shared memory per block: two blocks fit an SM of sm_80 (164 KB) and sm_90 (228 KB).
constexpr int64_t kMaxTileBytes = 80 * 1024;

// A launch's tiles, planned on the host: `rows` result rows per band (the last band may be
// shorter), `chunks` chunks of kTileChannels channels per tile (forward and grad_input; grad_weight
// takes a whole group), `window_rows` shared rows per channel and `row_floats` floats per shared
// row (a multiple of 4, at least 4·quads + KW − 1: every window read stays inside its row).
struct TilePlan {
  int64_t rows = 0, bands = 0, chunks = 0, channel_blocks = 0, window_rows = 0, quads = 0,
          row_floats = 0;
  int64_t read_cols = 0;  // 4·quads + KW − 1: the shared columns a window reads
  bool fits() const { return rows > 0; }
};

INVOLUTION_HOST_DEVICE int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Plans tiles of bands of `result_rows` rows `result_cols` wide, whose shared rows per channel
// for a band of R rows are window_rows(R), and whose shared bytes for R rows and k chunks are
// bytes(R, k): the band as tall as fits, evened out over the bands, then as many chunks as keep
// a tile's items (chunks · rows · quads) within one block of threads (at least one chunk), or
// down to half that many where fewer chunks are left over in the last channel block.
template <typename WindowRows, typename Bytes>
TilePlan plan_tiles(int64_t result_rows, int64_t result_cols, int KW, int64_t chunks_total,
                    const WindowRows& window_rows, const Bytes& bytes) {
  TilePlan plan;
  plan.quads = ceil_div(result_cols, kTilePixels);
  plan.read_cols = kTilePixels * plan.quads + KW - 1;
  plan.row_floats = ceil_div(plan.read_cols, 4) * 4;
  if (plan.row_floats > kThreadsPerBlock) return TilePlan{};  // a fill pass covers a whole row
  int64_t tallest = 0;
  while (tallest < result_rows && bytes(plan, tallest + 1, 1) <= kMaxTileBytes) ++tallest;
  if (tallest == 0 || result_cols == 0) return TilePlan{};
  plan.bands = ceil_div(result_rows, tallest);
  plan.rows = ceil_div(result_rows, plan.bands);
  plan.window_rows = window_rows(plan.rows);
  const int64_t per_chunk = plan.rows * plan.quads;
  plan.chunks = per_chunk < kThreadsPerBlock ? kThreadsPerBlock / per_chunk : 1;
  if (plan.chunks > chunks_total) plan.chunks = chunks_total;
  while (plan.chunks > 1 && bytes(plan, plan.rows, plan.chunks) > kMaxTileBytes) --plan.chunks;
  // Down to half as many chunks, the count that leaves the fewest empty chunks in the last
  // channel block (so no tile of a few chunks beside full ones, and more tiles for the waves).
  const int64_t most = plan.chunks;
  for (int64_t chunks = most; chunks * 2 >= most; --chunks) {
    const int64_t empty = ceil_div(chunks_total, chunks) * chunks - chunks_total;
    if (empty < ceil_div(chunks_total, plan.chunks) * plan.chunks - chunks_total) {
      plan.chunks = chunks;
    }
  }
  plan.channel_blocks = ceil_div(chunks_total, plan.chunks);
  return plan;
}

// The element types the tile kernels are built for: the 2-byte ones (float and double read
// their windows as they are stored, 4 or 2 values per 16 bytes: rows_channels_first.h).
template <typename T>
constexpr bool kTileTypes = sizeof(T) == 2;

// Whether the tile kernels can run a problem with kernel width KW: 2-byte elements, unit stride
// and dilation along the width, and (`reads_weight`) whole chunks of channels per group and a
// weight stride of 1 along pixels or taps. The plan decides the rest (fits()).
template <typename T>
inline bool tiles_apply(const Problem& p, int kernel_width, bool reads_weight) {
  return kTileTypes<T> && p.width.stride == 1 && p.width.dilation == 1 &&
         p.width.kernel_size == kernel_width && p.batch > 0 && p.channels > 0 &&
         (!reads_weight || (channels_per_group(p) % kTileChannels == 0 &&
                            (p.weight.col == 1 || p.weight.tap_col == 1)));
}

// Reads N floats (N even) from a 16-byte aligned shared address: 16-byte loads, then an 8-byte
// one. The emulation checks the alignment the GPU relies on.
template <int N>
INVOLUTION_HOST_DEVICE void load_shared(const float* at, float (&values)[N]) {
  static_assert(N % 2 == 0, "whole 8-byte pieces");
#if defined(__CUDA_ARCH__)
  INVOLUTION_UNROLL
  for (int i = 0; i + 4 <= N; i += 4) {
    const float4 quad = *reinterpret_cast<const float4*>(at + i);
    values[i] = quad.x;
    values[i + 1] = quad.y;
    values[i + 2] = quad.z;
    values[i + 3] = quad.w;
  }
  if (N % 4 == 2) {
    const float2 pair = *reinterpret_cast<const float2*>(at + N - 2);
    values[N - 2] = pair.x;
    values[N - 1] = pair.y;
  }
#else
  if (reinterpret_cast<std::uintptr_t>(at) % 16 != 0) {
    throw std::logic_error("fast kernel: misaligned shared window load");
  }
  std::memcpy(values, at, sizeof(values));
#endif
}

// One fill of a tile: `planes` planes of `source_rows` × `source_cols` elements from `source`
// (the first plane's element (0, 0)), of which the first `existing` exist; shared row r of plane
// k holds source row first_row + r, its column j source column first_col + j, as float; zero
// where that lies outside the source or the plane does not exist. Slots no thread reads are left
// as they are: columns from read_cols on, and (zero_rows_outside false) rows outside the source.
template <typename T>
struct TileFill {
  const T* source;
  int64_t planes, existing, source_rows, source_cols, first_row, first_col, rows, row_floats,
      read_cols;
  bool zero_rows_outside;
};

// Each thread of the block takes slots (row, column) of a plane, lane + 256·m, and fills that
// slot in every plane, stepping pointers by a plane: one division per slot for all planes, and
// the loads of consecutive planes, independent, in flight together (consecutive lanes read
// consecutive columns: coalesced).
template <typename T>
INVOLUTION_HOST_DEVICE void fill_tile(const Thread& t, const TileFill<T>& f, float* shared) {
  const int64_t plane_size = f.source_rows * f.source_cols, slots = f.rows * f.row_floats;
  for (int64_t slot = t.lane; slot < slots; slot += kThreadsPerBlock) {
    const int64_t row = slot / f.row_floats, col = slot - row * f.row_floats;
    const int64_t source_row = f.first_row + row, source_col = f.first_col + col;
    const bool row_inside = inside(source_row, f.source_rows);
    if (col >= f.read_cols || (!row_inside && !f.zero_rows_outside)) continue;  // never read
    float* out = shared + slot;
    int64_t k = 0;
    if (row_inside && inside(source_col, f.source_cols)) {
      const T* in = f.source + source_row * f.source_cols + source_col;
#if defined(__CUDA_ARCH__)
#pragma unroll 16
#endif
      for (; k < f.existing; ++k, in += plane_size, out += slots) {
        *out = Arith<T>::to_acc(read_only(in));
      }
    }
    for (; k < f.planes; ++k, out += slots) *out = 0.0f;  // padding, or planes past the last
  }
}

// Where a forward or grad_input tile stands: image n, chunks chunk0.., rows row0...
struct ChunkTile {
  int64_t n, chunk0, row0;
};
INVOLUTION_HOST_DEVICE ChunkTile chunk_tile(const TilePlan& plan, int64_t tile) {
  return {tile / (plan.channel_blocks * plan.bands), tile / plan.bands % plan.channel_blocks *
          plan.chunks, tile % plan.bands * plan.rows};
}

// An item of a tile: chunk k of the tile's, row r of its band, pixels first .. first+V−1; items
// are ordered (k, r, quad), quads fastest.
struct TileItem {
  int64_t k, r, first;
};
INVOLUTION_HOST_DEVICE TileItem tile_item(const TilePlan& plan, int64_t item) {
  return {item / (plan.quads * plan.rows), item / plan.quads % plan.rows,
          item % plan.quads * kTilePixels};
}

// What the forward's and grad_input's tiles share: chunks of kTileChannels channels over bands
// of `result_rows` rows, whose shared rows per channel for a band of R rows are window_rows(R).
template <typename WindowRows>
TilePlan plan_chunk_tiles(const Problem& p, int64_t result_rows, int64_t result_cols, int KW,
                          const WindowRows& window_rows) {
  return plan_tiles(result_rows, result_cols, KW, p.channels / kTileChannels, window_rows,
                    [&](const TilePlan& plan, int64_t rows, int64_t chunks) {
                      return chunks * kTileChannels * window_rows(rows) * plan.row_floats * 4;
                    });
}
INVOLUTION_HOST_DEVICE int64_t chunk_tiles(const Problem& p, const TilePlan& plan) {
  return p.batch * plan.channel_blocks * plan.bands;
}
INVOLUTION_HOST_DEVICE int64_t chunk_tile_floats(const TilePlan& plan) {
  return plan.chunks * kTileChannels * plan.window_rows * plan.row_floats;
}

// Fills chunk tile `tile` from `source` (channels-first, rows × cols planes): shared row 0 holds
// source row row0 · row_stride + row_offset of the tile's band, shared column 0 source column
// first_col; rows outside the source are zeros where `zero_rows_outside`, else never read.
template <typename T>
INVOLUTION_HOST_DEVICE void fill_chunk_tile(const Thread& t, const Problem& p,
                                            const TilePlan& plan, int64_t tile, const T* source,
                                            int64_t rows, int64_t cols, int64_t row_stride,
                                            int64_t row_offset, int64_t first_col,
                                            bool zero_rows_outside, float* shared) {
  const ChunkTile at = chunk_tile(plan, tile);
  const int64_t c0 = at.chunk0 * kTileChannels, planes = plan.chunks * kTileChannels;
  fill_tile(t,
            TileFill<T>{source + (at.n * p.channels + c0) * rows * cols, planes,
                        p.channels - c0 < planes ? p.channels - c0 : planes, rows, cols,
                        at.row0 * row_stride + row_offset, first_col, plan.window_rows,
                        plan.row_floats, plan.read_cols, zero_rows_outside},
            shared);
}

// out[n, c0 .. c0+7, y, first .. first+3].
template <typename T, int KW, WeightOrder Order>
struct ForwardTilesChannelsFirst {
  static constexpr int V = kTilePixels, CT = kTileChannels, kWindow = V + KW - 1;
  static constexpr bool kSharedTiles = true;
  static constexpr bool kChannelsFirstRows = true;
  static constexpr bool kReadsWeightPairs = IsBfloat16<T>::value;
  Problem p;
  const T* __restrict__ input;
  const T* __restrict__ weight;
  T* __restrict__ output;
  TilePlan plan;

  static TilePlan make_plan(const Problem& p) {
    return plan_chunk_tiles(p, p.height.output_size, p.width.output_size, KW,
                            [&](int64_t rows) { return block_input_rows(p.height, rows); });
  }

  INVOLUTION_HOST_DEVICE int64_t tiles() const { return chunk_tiles(p, plan); }
  INVOLUTION_HOST_DEVICE int64_t shared_floats() const { return chunk_tile_floats(plan); }
  // Threads of the grid over all tiles: what the launch plan reports as items.
  INVOLUTION_HOST_DEVICE int64_t items() const { return tiles() * kThreadsPerBlock; }

  INVOLUTION_HOST_DEVICE void fill(const Thread& t, int64_t tile, float* shared) const {
    // Rows in the padding are multiplied as zeros.
    fill_chunk_tile(t, p, plan, tile, input, p.height.input_size, p.width.input_size,
                    p.height.stride, -p.height.padding, -p.width.padding, true, shared);
  }

  INVOLUTION_HOST_DEVICE void compute(const Thread& t, int64_t tile, const float* shared) const {
    const ChunkTile at = chunk_tile(plan, tile);
    const int64_t out_h = p.height.output_size, out_w = p.width.output_size;
    const int64_t out_plane = out_h * out_w, per_group = channels_per_group(p);
    const int64_t plane_floats = plan.window_rows * plan.row_floats;
    const int64_t row_step = p.height.dilation * plan.row_floats;
    const int64_t tile_items = plan.chunks * plan.rows * plan.quads;
    for (int64_t item = t.lane; item < tile_items; item += kThreadsPerBlock) {
      const TileItem it = tile_item(plan, item);
      const int64_t y = at.row0 + it.r, chunk = at.chunk0 + it.k;
      if (y >= out_h || chunk * CT >= p.channels) continue;
      const int64_t c0 = chunk * CT, g = c0 / per_group;
      // The weights of pixels past the row's end are read (from the next row) and not stored;
      // only past the tensor's end would they fault: those items take the one-pixel code.
      if (!weight_columns_in_tensor(p, at.n, g, it.first, V)) {
        for (int64_t o = 0; o < V && it.first + o < out_w; ++o) {
          ForwardChannelsFirst<T>::pixel(p, input, weight, output,
                                         {at.n, g, c0, CT, y, it.first + o});
        }
        continue;
      }
      const T* weights = weight + at.n * p.weight.batch + g * p.weight.group + y * p.weight.row;
      const float* window = shared + it.k * CT * plane_floats +
                            it.r * p.height.stride * plan.row_floats + it.first;
      float sum[V][CT] = {};
      const T* kernel_row = weights;  // the weights of kernel row u
      for (int64_t u = 0; u < p.height.kernel_size;
           ++u, window += row_step, kernel_row += p.weight.tap_row) {
        const RowWeights<T, KW, V, Order> taps(kernel_row, p.weight, it.first);
        float tap[V][KW];
        INVOLUTION_UNROLL
        for (int o = 0; o < V; ++o) {
          INVOLUTION_UNROLL
          for (int v = 0; v < KW; ++v) tap[o][v] = taps.widened(o, v);
        }
        INVOLUTION_UNROLL
        for (int k = 0; k < CT; ++k) {
          float values[kWindow];
          load_shared(window + k * plane_floats, values);
          INVOLUTION_UNROLL
          for (int o = 0; o < V; ++o) {
            INVOLUTION_UNROLL
            for (int v = 0; v < KW; ++v) sum[o][k] += tap[o][v] * values[o + v];
          }
        }
      }
      T* out = output + plane_offset(p.channels, out_h, out_w, at.n, c0, y, it.first);
      INVOLUTION_UNROLL
      for (int k = 0; k < CT; ++k, out += out_plane) {
        INVOLUTION_UNROLL
        for (int o = 0; o < V; ++o) {
          if (it.first + o < out_w) out[o] = Arith<T>::from_acc(sum[o][k]);
        }
      }
    }
  }
};

// grad_x[n, c0 .. c0+7, h, first .. first+3] (unit stride along the height too): shared row s of
// a channel holds grad_output row row0 + ph − (KH−1)·dh + s, its column j grad_output column
// j + pw − (KW−1), so that pixel first + o takes tap v from window column KW − 1 + o − v.
template <typename T, int KW, WeightOrder Order>
struct GradInputTilesChannelsFirst {
  static constexpr int V = kTilePixels, CT = kTileChannels, kWindow = V + KW - 1;
  static constexpr bool kSharedTiles = true;
  static constexpr bool kChannelsFirstRows = true;
  Problem p;
  const T* __restrict__ grad_output;
  const T* __restrict__ weight;
  T* __restrict__ grad_input;
  TilePlan plan;

  static TilePlan make_plan(const Problem& p) {
    return plan_chunk_tiles(p, p.height.input_size, p.width.input_size, KW, [&](int64_t rows) {
      return rows + (p.height.kernel_size - 1) * p.height.dilation;
    });
  }

  INVOLUTION_HOST_DEVICE int64_t tiles() const { return chunk_tiles(p, plan); }
  INVOLUTION_HOST_DEVICE int64_t shared_floats() const { return chunk_tile_floats(plan); }
  INVOLUTION_HOST_DEVICE int64_t items() const { return tiles() * kThreadsPerBlock; }

  INVOLUTION_HOST_DEVICE void fill(const Thread& t, int64_t tile, float* shared) const {
    fill_chunk_tile(t, p, plan, tile, grad_output, p.height.output_size, p.width.output_size, 1,
                    p.height.padding - (p.height.kernel_size - 1) * p.height.dilation,
                    p.width.padding - (KW - 1), false, shared);  // rows outside: skipped
  }

  INVOLUTION_HOST_DEVICE void compute(const Thread& t, int64_t tile, const float* shared) const {
    const ChunkTile at = chunk_tile(plan, tile);
    const int64_t in_h = p.height.input_size, in_w = p.width.input_size;
    const int64_t out_h = p.height.output_size, out_w = p.width.output_size;
    const int64_t in_plane = in_h * in_w, per_group = channels_per_group(p);
    const int64_t plane_floats = plan.window_rows * plan.row_floats;
    const int64_t dh = p.height.dilation, kh = p.height.kernel_size;
    const int64_t tile_items = plan.chunks * plan.rows * plan.quads;
    for (int64_t item = t.lane; item < tile_items; item += kThreadsPerBlock) {
      const TileItem it = tile_item(plan, item);
      const int64_t h = at.row0 + it.r, chunk = at.chunk0 + it.k;
      if (h >= in_h || chunk * CT >= p.channels) continue;
      const int64_t c0 = chunk * CT, g = c0 / per_group;
      const int64_t left = it.first + p.width.padding - (KW - 1);  // output column of window 0
      if (!weight_columns_in_tensor(p, at.n, g, left, kWindow)) {
        for (int64_t o = 0; o < V && it.first + o < in_w; ++o) {
          GradInputChannelsFirst<T>::pixel(p, grad_output, weight, grad_input,
                                           {at.n, g, c0, CT, h, it.first + o});
        }
        continue;
      }
      const WindowMasks<T, kWindow> masks = window_masks<T, kWindow>(left, out_w);
      // The weights of tap (u, 0) at window column 0, for output row i = h + ph − u·dh: one
      // pointer stepped per kernel row and, along pixels, per tap.
      const T* row = weight + at.n * p.weight.batch + g * p.weight.group +
                     (h + p.height.padding) * p.weight.row + left * p.weight.col;
      const int64_t row_step = p.weight.tap_row - dh * p.weight.row;
      // Shared row r + (KH − 1 − u)·dh holds output row i: stepped back by dh rows per u.
      const float* window = shared + it.k * CT * plane_floats +
                            (it.r + (kh - 1) * dh) * plan.row_floats + it.first;
      const int64_t window_step = dh * plan.row_floats;
      float sum[V][CT] = {};
      int64_t i = h + p.height.padding;  // the output row whose tap u reads h
      for (int64_t u = 0; u < kh; ++u, row += row_step, i -= dh, window -= window_step) {
        if (!inside(i, out_h)) continue;
        // tap[o][v]: the weight of window column q = KW − 1 + o − v, zero outside the output.
        float tap[V][KW];
        if (Order == WeightOrder::kPixelsInner) {
          const T* column = row + (KW - 1);  // tap v of window column KW − 1 − v
          INVOLUTION_UNROLL
          for (int v = 0; v < KW; ++v, column += p.weight.tap_col - 1) {
            INVOLUTION_UNROLL
            for (int o = 0; o < V; ++o) tap[o][v] = masks.column[KW - 1 + o - v].load(column + o);
          }
        } else {
          INVOLUTION_UNROLL
          for (int q = 0; q < kWindow; ++q) {
            const T* tap0 = row + q * p.weight.col;
            INVOLUTION_UNROLL
            for (int o = 0; o < V; ++o) {
              const int v = KW - 1 + o - q;
              if (v >= 0 && v < KW) tap[o][v] = masks.column[q].load(tap0 + v);
            }
          }
        }
        INVOLUTION_UNROLL
        for (int k = 0; k < CT; ++k) {
          float values[kWindow];
          load_shared(window + k * plane_floats, values);
          INVOLUTION_UNROLL
          for (int o = 0; o < V; ++o) {
            INVOLUTION_UNROLL
            for (int v = 0; v < KW; ++v) sum[o][k] += tap[o][v] * values[KW - 1 + o - v];
          }
        }
      }
      T* gx = grad_input + plane_offset(p.channels, in_h, in_w, at.n, c0, h, it.first);
      INVOLUTION_UNROLL
      for (int k = 0; k < CT; ++k, gx += in_plane) {
        INVOLUTION_UNROLL
        for (int o = 0; o < V; ++o) {
          if (it.first + o < in_w) gx[o] = Arith<T>::from_acc(sum[o][k]);
        }
      }
    }
  }
};

// grad_w[n, g, u, 0 .. KW−1, y, first .. first+3]: a tile holds, for one group, the input rows of
// a band of output rows (as the forward's) and then that band's grad_output rows (4·quads floats
// each); a thread sums its V·KW taps over the group's channels, four shared loads and V·KW
// multiply-adds per channel.
template <typename T, int KW>
struct GradWeightTilesChannelsFirst {
  static constexpr int V = kTilePixels, kWindow = V + KW - 1;
  static constexpr bool kSharedTiles = true;
  static constexpr bool kChannelsFirstRows = true;
  Problem p;
  const T* __restrict__ grad_output;
  const T* __restrict__ input;
  T* __restrict__ grad_weight;
  TilePlan plan;

  static TilePlan make_plan(const Problem& p) {
    const int64_t per_group = channels_per_group(p);
    const auto window_rows = [&](int64_t rows) { return block_input_rows(p.height, rows); };
    TilePlan plan = plan_tiles(
        p.height.output_size, p.width.output_size, KW, 1, window_rows,
        [&](const TilePlan& plan, int64_t rows, int64_t) {
          return per_group * (window_rows(rows) * plan.row_floats + rows * 4 * plan.quads) * 4;
        });
    plan.channel_blocks = p.groups;
    return plan;
  }

  INVOLUTION_HOST_DEVICE int64_t tiles() const { return p.batch * p.groups * plan.bands; }
  INVOLUTION_HOST_DEVICE int64_t input_floats() const {
    return channels_per_group(p) * plan.window_rows * plan.row_floats;
  }
  INVOLUTION_HOST_DEVICE int64_t shared_floats() const {
    return input_floats() + channels_per_group(p) * plan.rows * 4 * plan.quads;
  }
  INVOLUTION_HOST_DEVICE int64_t items() const { return tiles() * kThreadsPerBlock; }

  // Tile (n, g, band), bands fastest: image n, group g, output rows row0...
  struct GroupTile {
    int64_t n, g, row0;
  };
  INVOLUTION_HOST_DEVICE GroupTile group_tile(int64_t tile) const {
    return {tile / (p.groups * plan.bands), tile / plan.bands % p.groups,
            tile % plan.bands * plan.rows};
  }

  INVOLUTION_HOST_DEVICE void fill(const Thread& t, int64_t tile, float* shared) const {
    const GroupTile at = group_tile(tile);
    const int64_t per_group = channels_per_group(p), c0 = at.g * per_group;
    const int64_t in_h = p.height.input_size, in_w = p.width.input_size;
    const int64_t out_h = p.height.output_size, out_w = p.width.output_size;
    fill_tile(t,
              TileFill<T>{input + (at.n * p.channels + c0) * in_h * in_w, per_group, per_group,
                          in_h, in_w, at.row0 * p.height.stride - p.height.padding,
                          -p.width.padding, plan.window_rows, plan.row_floats, plan.read_cols,
                          true},
              shared);
    fill_tile(t,
              TileFill<T>{grad_output + (at.n * p.channels + c0) * out_h * out_w, per_group,
                          per_group, out_h, out_w, at.row0, 0, plan.rows, 4 * plan.quads,
                          4 * plan.quads, true},
              shared + input_floats());
  }

  // sum[o][v] += go[o] * x[o + v] for one channel.
  INVOLUTION_HOST_DEVICE static void add_channel(const float* go, const float* x,
                                                 float (&sum)[V][KW]) {
    float grads[V], values[kWindow];
    load_shared(go, grads);
    load_shared(x, values);
    INVOLUTION_UNROLL
    for (int o = 0; o < V; ++o) {
      INVOLUTION_UNROLL
      for (int v = 0; v < KW; ++v) sum[o][v] += grads[o] * values[o + v];
    }
  }

  INVOLUTION_HOST_DEVICE void compute(const Thread& t, int64_t tile, const float* shared) const {
    const GroupTile at = group_tile(tile);
    const int64_t per_group = channels_per_group(p);
    const int64_t out_h = p.height.output_size, out_w = p.width.output_size;
    const int64_t out_plane = out_h * out_w;
    const int64_t x_plane = plan.window_rows * plan.row_floats, go_row = 4 * plan.quads;
    const int64_t go_plane = plan.rows * go_row;
    const int64_t tile_items = p.height.kernel_size * plan.rows * plan.quads;
    for (int64_t item = t.lane; item < tile_items; item += kThreadsPerBlock) {
      // Items are ordered (u, r, quad): the kernel row takes the place of the chunk.
      const TileItem it = tile_item(plan, item);
      const int64_t u = it.k, y = at.row0 + it.r;
      if (y >= out_h) continue;
      const float* x = shared + (it.r * p.height.stride + u * p.height.dilation) *
                                    plan.row_floats + it.first;
      const float* go = shared + input_floats() + it.r * go_row + it.first;
      float sum[V][KW] = {};
      int64_t c = 0;
      for (; c + 2 <= per_group; c += 2, x += 2 * x_plane, go += 2 * go_plane) {
        add_channel(go, x, sum);
        add_channel(go + go_plane, x + x_plane, sum);
      }
      if (c < per_group) add_channel(go, x, sum);
      T* gw = grad_weight + contiguous_weight_offset(p, at.n, at.g, u, 0, y, it.first);
      INVOLUTION_UNROLL
      for (int v = 0; v < KW; ++v, gw += out_plane) {
        INVOLUTION_UNROLL
        for (int o = 0; o < V; ++o) {
          if (it.first + o < out_w) gw[o] = Arith<T>::from_acc(sum[o][v]);
        }
      }
    }
  }
};

}  // namespace fast
}  // namespace cuda
}  // namespace involution
