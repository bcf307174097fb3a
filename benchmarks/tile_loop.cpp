// The CPU forward's innermost loop alone, with all its data in L1: how fast the two-row tile
// (csrc/cpu/tiles.h: forward_pair_tile, the code the kernels run) multiplies and adds on this
// host at one ISA level, beside the host's peak rate at that vector width, and where
// CHANNEL_NATIVE_BYTES is given (baseline: 16, AVX2: 32, AVX-512: 64), the float forward's
// pixel tile of 16-channel vectors (csrc/cpu/channel_vectors.h: pixel_tile, 7 x 7 taps, as
// many pixels as the kernels take at that level, inlined; and as the kernels run it, at every
// tile width), and grad_weight's plane tile (csrc/cpu/grad_weight_plane_tasks.h: plane_tile,
// 7 taps of a kernel row) at every start of its first read within a cache line.
// This is the CPU's instruction floor: a forward cannot run faster than its multiply-adds at
// its loop's rate.
// benchmarks/bench_tile_loop.py compiles it once per tile shape of each level (TILE_BYTES,
// TILE_CHANNELS and the level's -m flags) and reads the JSON line it prints.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <type_traits>
#include <vector>

#include "tiles.h"
#if defined(CHANNEL_NATIVE_BYTES)
#include "channel_vectors.h"
#include "grad_weight_plane_tasks.h"
#endif

namespace {

using involution::cpu::Vector;
constexpr int64_t kBytes = TILE_BYTES, kChannels = TILE_CHANNELS;
constexpr int64_t kLanes = kBytes / static_cast<int64_t>(sizeof(float));
using vector_t = Vector<float, kBytes>;
constexpr int64_t kKernel = 7;  // RedNet's 7 x 7 kernels
constexpr int kTrials = 21;  // the best of many: the host's other load only slows a run

// Nanoseconds per call of f, the best of kTrials runs of `calls` calls.
template <typename F>
double best_ns(F&& f, int64_t calls) {
  double best = 1e30;
  for (int trial = 0; trial < kTrials; ++trial) {
    const auto begin = std::chrono::steady_clock::now();
    for (int64_t k = 0; k < calls; ++k) f(k);
    const auto end = std::chrono::steady_clock::now();
    best = std::min(best, std::chrono::duration<double, std::nano>(end - begin).count() / calls);
  }
  return best;
}

// Peak: kChains independent multiply-add chains, more than latency x throughput, and few
// enough (with their two operands) for the 16 registers of SSE and AVX2.
constexpr int64_t kChains = 12;

double peak_ns_per_multiply_add() {
  vector_t acc[kChains], scale, shift;
  for (int64_t i = 0; i < kChains; ++i) acc[i] = vector_t{} + 0.001f * i;
  scale = vector_t{} + 0.999f;
  shift = vector_t{} + 0.001f;
  constexpr int64_t kRounds = 64;
  const double ns = best_ns(
      [&](int64_t) {
        for (int64_t r = 0; r < kRounds; ++r) {
#pragma GCC unroll 12
          for (int64_t i = 0; i < kChains; ++i) acc[i] = acc[i] * scale + shift;
          asm volatile("" : "+x"(scale));  // not hoisted or folded across rounds
        }
      },
      20000);
  float sum = 0;
  for (int64_t i = 0; i < kChains; ++i) sum += acc[i][0];
  if (sum == 12345.f) std::puts("");  // keeps the chains alive
  return ns / (kRounds * kChains);
}

// Without fused multiply-add (SSE2), a chain acc * scale + shift is a multiply then a
// dependent add, so the peak above would time latency. Instead: kChains sums acc += x * w, each
// x loaded from L1 (a load, a multiply and an add: what every tile's multiply-add needs at
// least), with w one register, or (`broadcast`) a float loaded and broadcast for every four of
// them, as the 16-channel pixel tile's weights are at this level (a shuffle each).
double separate_peak_ns_per_multiply_add(bool broadcast) {
  constexpr int64_t kRows = 4;  // x rotates through kRows sets of kChains vectors
  std::vector<vector_t> xs(kRows * kChains);
  for (size_t k = 0; k < xs.size(); ++k) xs[k] = vector_t{} + 1.0f / (1 + k);
  float weights[kRows * kChains];
  for (int64_t k = 0; k < kRows * kChains; ++k) weights[k] = 0.5f / (1 + k);
  vector_t acc[kChains] = {};
  vector_t w = vector_t{} + 0.5f;
  const double ns = best_ns(
      [&](int64_t k) {
        const vector_t* x = xs.data() + (k % kRows) * kChains;
        const float* row = weights + (k % kRows) * kChains;
        asm volatile("" : "+r"(x), "+r"(row));  // loads not hoisted out of the calls
#pragma GCC unroll 12
        for (int64_t i = 0; i < kChains; ++i) {
          acc[i] += x[i] * (broadcast ? vector_t{} + row[i / 4] : w);
        }
      },
      2000000);
  float sum = 0;
  for (int64_t i = 0; i < kChains; ++i) sum += acc[i][0];
  if (sum == 12345.f) std::puts("");
  return ns / kChains;
}

// The two-row tile over a 7 x 7 kernel at unit stride and dilation: `aligned` places every
// tap's inputs and every weight on a vector boundary; otherwise consecutive taps read
// consecutive columns (each vector load straddles two cache lines, as in the kernels), and the
// weights are one element off a boundary (as a row of 14 or 7 outputs is).
double tile_ns_per_multiply_add(bool aligned) {
  const int64_t tap_step = aligned ? kLanes : 1;
  const int64_t row_length = (kKernel - 1) * tap_step + kLanes;
  const int64_t rows = kKernel + 1, channel_stride = rows * row_length;
  const int64_t weight_tap = 2 * kLanes, weight_row = kKernel * weight_tap;
  const int64_t offset = aligned ? 0 : 1;
  float* inputs = static_cast<float*>(std::aligned_alloc(64, 4 * 64 * (kChannels * channel_stride / 64 + 2)));
  float* weights = static_cast<float*>(std::aligned_alloc(64, 4 * 64 * (kKernel * weight_row / 64 + 2)));
  for (int64_t k = 0; k < kChannels * channel_stride + 64; ++k) inputs[k] = 1.0f / (1 + k % 7);
  for (int64_t k = 0; k < kKernel * weight_row + 64; ++k) weights[k] = 1.0f / (1 + k % 5);
  int64_t taps[kKernel];
  for (int64_t v = 0; v < kKernel; ++v) taps[v] = v * tap_step;
  vector_t sink{};
  const double ns = best_ns(
      [&](int64_t) {
        vector_t acc[2][kChannels];
        // as the kernels choose: unit steps at the baseline level (so its "aligned" column,
        // read through the table, differs in that too), the table elsewhere
        involution::cpu::with_choice(
            involution::cpu::unit_column_tiles<vector_t>(1, tap_step), [&](auto unit) {
              involution::cpu::forward_pair_tile<kChannels, decltype(unit)::value>(
                  kKernel, kKernel, taps, weights + offset, weights + offset + kLanes, weight_row,
                  weight_tap, inputs, channel_stride, row_length, acc);
            });
        for (int64_t c = 0; c < kChannels; ++c) sink += acc[0][c] + acc[1][c];
        asm volatile("" : "+x"(sink));
      },
      200000);
  std::free(inputs);
  std::free(weights);
  if (sink[0] == 12345.f) std::puts("");
  return ns / (2 * kChannels * kKernel * kKernel);
}

#if defined(CHANNEL_NATIVE_BYTES)
using native_t = Vector<float, CHANNEL_NATIVE_BYTES>;
constexpr int64_t kPixels = involution::cpu::kTilePixels<native_t>;

// The pixel tile of `pixels` pixels over a 7 x 7 kernel at unit stride and dilation:
// nanoseconds per multiply-add of a 16-channel vector (64 bytes of float), its inputs and
// weights in L1. `tile` runs it: inlined here (its strides known to the compiler), or as the
// kernels run it (pixel_tile_as_run, strides read at run time).
template <typename Tile>
double pixel_tile_ns(int64_t pixels, Tile&& tile) {
  const int64_t columns = pixels + kKernel - 1;
  involution::cpu::ChannelVectorBuffer inputs(kKernel * columns);
  for (int64_t k = 0; k < kKernel * columns; ++k) {
    for (int64_t c = 0; c < 16; ++c) inputs.data()[k][c] = 1.0f / (1 + (k + c) % 7);
  }
  std::vector<float> weights(kKernel * kKernel * pixels);
  for (size_t k = 0; k < weights.size(); ++k) weights[k] = 1.0f / (1 + k % 5);
  const involution::cpu::PixelTileArgs args{inputs.data(), columns, 1, 1, weights.data(),
                                             kKernel * pixels, pixels, kKernel, kKernel, {}};
  involution::cpu::ChannelVectorBuffer results(pixels);
  float sink = 0;
  const double ns = best_ns(
      [&](int64_t) {
        tile(args, results.data());
        sink += results.data()[pixels - 1][15];
        asm volatile("" : "+x"(sink));
      },
      100000);
  if (sink == 12345.f) std::puts("");
  return ns / (pixels * kKernel * kKernel);
}

// A function of its own, as channel_vectors.h compiles the kernels' tiles: the strides and
// kernel size are read from the arguments at run time.
template <int64_t kTile>
__attribute__((noinline)) void pixel_tile_as_run(const involution::cpu::PixelTileArgs& args,
                                                 involution::cpu::ChannelVector* results) {
  involution::cpu::pixel_tile<kTile, kKernel, native_t>(args, results);
}

// pixel_tile_ns as the kernels run it, for tiles of 1 .. kPixels pixels (a row of W outputs
// is split into tiles of equal width: 7 pixels at stage 4, 14 at stages 1-3 at AVX-512).
template <int64_t kTile = 1>
void as_run_ns(double* out) {
  out[kTile - 1] = pixel_tile_ns(kTile, pixel_tile_as_run<kTile>);
  if constexpr (kTile < kPixels) as_run_ns<kTile + 1>(out);
}

// grad_weight's plane tile as the kernels run it at this level (as many vectors of pixels as
// plane_columns takes, 7 taps, 16 channels), ns per vector multiply-add, with its first input
// read `start` floats into a 64-byte line, for every start: its taps' loads start a float
// apart, so the start decides how many of them cross a line.
constexpr int64_t kLineFloats = 16;

void plane_tile_by_start(double* out) {
  constexpr int64_t kRegisters = kBytes == 64 ? 32 : 16;
  constexpr int64_t kTiles =
      involution::cpu::plane_tile_vectors<kRegisters, kKernel, vector_t, float>();
  constexpr int64_t kChannels = 16, kStride = 8 * kLineFloats;  // a channel's floats
  involution::cpu::LineBuffer<float> grads(kChannels * kStride);
  involution::cpu::LineBuffer<float> inputs(kChannels * kStride + 4 * kLineFloats);
  for (int64_t k = 0; k < kChannels * kStride; ++k) {
    grads.data()[k] = 0.001f * (k % 7);
    inputs.data()[k] = 0.002f * (k % 5);
  }
  for (int64_t start = 0; start < kLineFloats; ++start) {
    const double ns = best_ns(
        [&](int64_t k) {
          vector_t acc[kTiles][kKernel];
          const float* g = grads.data();
          // two inputs a line apart in turn, so that the loads are not hoisted out of calls
          const float* x = inputs.data() + start + (k & 1) * kLineFloats;
          asm volatile("" : "+r"(g), "+r"(x) : : "memory");
          involution::cpu::plane_tile<kTiles, kKernel>(kChannels, g, kStride, x, kStride, acc);
          for (int64_t t = 0; t < kTiles; ++t) {
            for (int64_t m = 0; m < kKernel; ++m) asm volatile("" : : "v"(acc[t][m]));
          }
        },
        20000);
    out[start] = ns / (kChannels * kTiles * kKernel);
  }
}
#endif

}  // namespace

int main() {
  char peak[96];
#if defined(__FMA__)
  std::snprintf(peak, sizeof(peak), "%.5f", peak_ns_per_multiply_add());
#else
  std::snprintf(peak, sizeof(peak), "%.5f, \"broadcast_peak_ns_per_vector_multiply_add\": %.5f",
                separate_peak_ns_per_multiply_add(false), separate_peak_ns_per_multiply_add(true));
#endif
  const double kernel = tile_ns_per_multiply_add(false);
  const double aligned = tile_ns_per_multiply_add(true);
  std::string channel;
#if defined(CHANNEL_NATIVE_BYTES)
  const double inlined = pixel_tile_ns(kPixels, [](const auto& args, auto* results) {
    involution::cpu::pixel_tile<kPixels, kKernel, native_t>(args, results);
  });
  double as_run[kPixels];
  as_run_ns(as_run);
  char text[96];
  std::snprintf(text, sizeof(text),
                ", \"channel_tile_pixels\": %lld, \"channel_tile_ns_per_multiply_add\": %.5f",
                static_cast<long long>(kPixels), inlined);
  channel = text;
  channel += ", \"channel_tile_as_run_ns_per_multiply_add\": [";
  for (int64_t p = 0; p < kPixels; ++p) {
    std::snprintf(text, sizeof(text), "%s%.5f", p > 0 ? ", " : "", as_run[p]);
    channel += text;
  }
  channel += "]";
  double by_start[kLineFloats];
  plane_tile_by_start(by_start);
  channel += ", \"plane_tile_ns_by_start\": [";
  for (int64_t p = 0; p < kLineFloats; ++p) {
    std::snprintf(text, sizeof(text), "%s%.5f", p > 0 ? ", " : "", by_start[p]);
    channel += text;
  }
  channel += "]";
#endif
  std::printf(
      "{\"vector_bytes\": %lld, \"channels\": %lld, \"lanes\": %lld, "
      "\"peak_ns_per_vector_multiply_add\": %s, \"tile_ns_per_vector_multiply_add\": %.5f, "
      "\"aligned_tile_ns_per_vector_multiply_add\": %.5f%s}\n",
      static_cast<long long>(kBytes), static_cast<long long>(kChannels),
      static_cast<long long>(kLanes), peak, kernel, aligned, channel.c_str());
}
