// Runs the fast kernels' CUDA half-type code on the host (built by nvcc, run without a GPU):
//  1. the paired pack conversions of csrc/cuda/half_types.cuh keep every lane in its place and
//     round as the scalar conversion does;
//  2. the channels_last functors of csrc/cuda/fast/channels_last.h and, at unit width stride,
//     the row kernels of fast/rows.h (launched through fast/select.h; bfloat16 with the column
//     selectors of its sm_90 build), and in channels-first the functors of
//     fast/channels_first.h and, at unit width stride, the tile kernels of
//     fast/tiles_channels_first.h, instantiated with __half and __nv_bfloat16 (the GPU's types,
//     not torch's), match a double-precision loop over the definition on small problems,
//     every thread of their grid emulated.
// Prints "all half checks passed" and exits 0 on success.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "cuda/fast/select.h"
#include "cuda/half_types.cuh"
#include "cuda/plumbing.h"

using namespace involution;
using namespace involution::cuda;
using namespace involution::cuda::fast;

namespace {

int failures = 0;

void expect(bool ok, const char* what, int index, double actual, double wanted) {
  if (!ok) {
    std::printf("FAILED %s [%d]: %.8g, expected %.8g\n", what, index, actual, wanted);
    ++failures;
  }
}

template <typename T>
void check_pack_conversions(const char* name) {
  constexpr int N = kWidePack<T>;
  float values[N];
  Pack<T, N> pack;
  for (int k = 0; k < N; ++k) {
    values[k] = 0.5f * static_cast<float>(k + 1);  // exact in both half types, all distinct
    pack.lane[k] = Arith<T>::from_acc(values[k]);
  }
  float unpacked[N];
  PackMath<T, N>::unpack(pack, unpacked);
  for (int k = 0; k < N; ++k) expect(unpacked[k] == values[k], name, k, unpacked[k], values[k]);

  // Values between representable ones: the paired narrowing rounds as the scalar one does.
  float between[N];
  for (int k = 0; k < N; ++k) between[k] = 1.0f + 0.3f * static_cast<float>(k) + 1e-3f;
  const Pack<T, N> rounded = PackMath<T, N>::repack(between);
  for (int k = 0; k < N; ++k) {
    const float actual = Arith<T>::to_acc(rounded.lane[k]);
    const float wanted = Arith<T>::to_acc(Arith<T>::from_acc(between[k]));
    expect(actual == wanted, name, k, actual, wanted);
  }
}

// Runs a functor for every thread of its CUDA grid, as the GPU launch would (a tile kernel's
// block: every thread's fill of a tile, then every thread's compute).
struct HostLaunch {
  template <typename Functor>
  void operator()(const Functor& functor) const {
    if constexpr (SharedTiles<Functor>::value) {
      const int64_t blocks = blocks_for_tiles(functor.tiles(), 3);
      std::vector<float> shared(functor.shared_floats());
      for (int64_t block = 0; block < blocks; ++block) {
        for (int64_t tile = block; tile < functor.tiles(); tile += blocks) {
          for (int64_t lane = 0; lane < kThreadsPerBlock; ++lane) {
            functor.fill(Thread{block, lane, blocks, kThreadsPerBlock}, tile, shared.data());
          }
          for (int64_t lane = 0; lane < kThreadsPerBlock; ++lane) {
            functor.compute(Thread{block, lane, blocks, kThreadsPerBlock}, tile, shared.data());
          }
        }
      }
    } else {
      const int64_t blocks = blocks_for(functor.items(), 3);  // few blocks: threads loop
      for (int64_t block = 0; block < blocks; ++block) {
        for (int64_t lane = 0; lane < kThreadsPerBlock; ++lane) {
          functor(Thread{block, lane, blocks, kThreadsPerBlock});
        }
      }
    }
  }
};

double uniform() { return std::rand() / (RAND_MAX + 1.0) * 2.0 - 1.0; }

template <typename T>
void check_kernels(const char* name, Layout layout, int64_t width_stride) {
  // (B, C, H, W) = (2, 32, 5, 6), G = 2 (16 channels per group), 3x3 kernel, stride
  // (1, width_stride), padding 1, dilation (2, 1): output 3 x 3 (width stride 2: the one-pixel
  // kernels) or 3 x 6 (width stride 1: the row kernels, whose first and last items reach past the
  // tensors' ends and run the one-pixel code).
  const int64_t H = 5, W = 6, Ho = 3, Wo = (W + 2 - 3) / width_stride + 1;
  const Axis height{H, Ho, 3, 1, 1, 2}, width{W, Wo, 3, width_stride, 1, 1};
  const Problem p{2, 32, 2, height, width};
  const int64_t in_size = 2 * H * W * 32, out_size = 2 * Ho * Wo * 32, w_size = 2 * 2 * 9 * Ho * Wo;
  std::vector<T> x(in_size), go(out_size), w(w_size), out(out_size), gx(in_size), gw(w_size);
  for (auto& v : x) v = Arith<T>::from_acc(static_cast<float>(uniform()));
  for (auto& v : go) v = Arith<T>::from_acc(static_cast<float>(uniform()));
  for (auto& v : w) v = Arith<T>::from_acc(static_cast<float>(uniform()));
  // std::vector's storage is 16-byte aligned, so the wide packs are chosen.
  if (channels_last_pack<T>(p, {x.data(), out.data(), go.data(), gx.data()}) != kWidePack<T>) {
    std::printf("FAILED %s: the 16-byte packs were not chosen\n", name);
    ++failures;
  }
  const bool rows = layout == Layout::kChannelsLast
                        ? rows_apply<T>(p, 3, {x.data(), out.data()}, true)
                        : tiles_apply<T>(p, 3, true) &&
                              ForwardTilesChannelsFirst<T, 3, WeightOrder::kPixelsInner>::make_plan(p)
                                  .fits();
  if ((width_stride == 1) != rows) {
    std::printf("FAILED %s: the row or tile kernels %s\n", name,
                width_stride == 1 ? "do not apply" : "apply");
    ++failures;
  }
  forward(p, layout, x.data(), w.data(), out.data(), HostLaunch{});
  grad_input(p, layout, go.data(), w.data(), gx.data(), HostLaunch{});
  grad_weight(p, layout, go.data(), x.data(), gw.data(), HostLaunch{});
  auto offset = [&](int64_t rows, int64_t cols, int64_t n, int64_t h, int64_t col, int64_t c) {
    return layout == Layout::kChannelsLast ? pixel_offset(rows, cols, 32, n, h, col, c)
                                           : plane_offset(32, rows, cols, n, c, h, col);
  };

  auto value = [](T v) { return static_cast<double>(Arith<T>::to_acc(v)); };
  std::vector<double> want_out(out_size, 0.0), want_gx(in_size, 0.0), want_gw(w_size, 0.0);
  for (int n = 0; n < 2; ++n)
    for (int c = 0; c < 32; ++c)
      for (int i = 0; i < Ho; ++i)
        for (int j = 0; j < Wo; ++j)
          for (int u = 0; u < 3; ++u)
            for (int v = 0; v < 3; ++v) {
              const int64_t h = input_index(height, i, u), col = input_index(width, j, v);
              if (!inside(h, H) || !inside(col, W)) continue;
              const int64_t xi = offset(H, W, n, h, col, c);
              const int64_t oi = offset(Ho, Wo, n, i, j, c);
              const int64_t wi = weight_offset(p, n, c / 16, u, v, i, j);
              want_out[oi] += value(w[wi]) * value(x[xi]);
              want_gx[xi] += value(w[wi]) * value(go[oi]);
              want_gw[wi] += value(go[oi]) * value(x[xi]);
            }
  const double tolerance = sizeof(T) == 2 ? 0.05 : 1e-6;  // rounding of the half-type result
  auto compare = [&](const std::vector<T>& actual, const std::vector<double>& wanted, const char* what) {
    for (size_t k = 0; k < wanted.size(); ++k) {
      const double a = value(actual[k]);
      expect(std::fabs(a - wanted[k]) <= tolerance * (1.0 + std::fabs(wanted[k])), what,
             static_cast<int>(k), a, wanted[k]);
    }
  };
  std::printf("%s: output, grad_input, grad_weight against a double loop\n", name);
  compare(out, want_out, "forward");
  compare(gx, want_gx, "grad_input");
  compare(gw, want_gw, "grad_weight");
}

}  // namespace

int main() {
  check_pack_conversions<__half>("__half pack conversions");
  check_pack_conversions<__nv_bfloat16>("__nv_bfloat16 pack conversions");
  check_kernels<__half>("__half kernels", Layout::kChannelsLast, 2);
  check_kernels<__nv_bfloat16>("__nv_bfloat16 kernels", Layout::kChannelsLast, 2);
  check_kernels<__half>("__half row kernels", Layout::kChannelsLast, 1);
  check_kernels<__nv_bfloat16>("__nv_bfloat16 row kernels", Layout::kChannelsLast, 1);
  check_kernels<__half>("__half channels-first kernels", Layout::kChannelsFirst, 2);
  check_kernels<__nv_bfloat16>("__nv_bfloat16 channels-first kernels", Layout::kChannelsFirst, 2);
  check_kernels<__half>("__half tile kernels", Layout::kChannelsFirst, 1);
  check_kernels<__nv_bfloat16>("__nv_bfloat16 tile kernels", Layout::kChannelsFirst, 1);
  if (failures != 0) {
    std::printf("%d half checks failed\n", failures);
    return 1;
  }
  std::printf("all half checks passed\n");
  return 0;
}
