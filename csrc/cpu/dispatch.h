// One entry point per ISA level for the CPU kernels: each compiles the kernels (always inlined,
// *_tasks.h) for its level, with the tile shapes that fit that level's registers, and `run_at`
// calls the one isa.h chose.
//
//   level    vector   Wide: rows over 32 bytes     Narrow: rows of up to 32 bytes
//   avx512   64 B     1 vector, 8 channels         32 B, 8 channels
//   avx2     32 B     1 vector, 4 channels         as Wide
//   default  16 B     1 vector, 4 channels         as Wide
// The forward and grad_input tiles compute two rows at once where they can: 2 * channels
// accumulators, the weights and one input stay within the level's 32 or 16 registers.
// grad_weight takes one vector of the shape's width (4 taps x 2 rows of accumulators).
// The float and bfloat16 forward and stride-1 grad_input take vectors along 16 channels instead
// (one zmm, two ymm or four xmm registers), where the groups have a multiple of 16 channels
// (forward_channel_tasks.h, grad_input_channel_tasks.h); at the baseline level only for rows
// that are not a whole number of its vectors.
#pragma once

#include "isa.h"
#include "kernels.h"

namespace involution {
namespace cpu {

// ChannelNative: the registers of a 16-channel vector's parts; channel_vectors_for: whether
// the channel vectors serve rows of `length` results.
struct DefaultShapes {
  using Wide = TileShape<16, 1, 4>;
  using Narrow = Wide;
  using ChannelNative = Vector<float, 16>;
  // SSE2's pixel tile is only about a fifth faster than the row tiles (no fused multiply-add,
  // and a shuffle to broadcast each weight), so its transposes pay only where rows would leave
  // lanes of the row tiles' vectors empty (benchmarks/CPU_KERNELS.md: "Channel vectors at the
  // baseline level")
  static constexpr bool channel_vectors_for(int64_t length) {
    return length % (Wide::bytes / static_cast<int64_t>(sizeof(float))) != 0;
  }
};
struct Avx2Shapes {
  using Wide = TileShape<32, 1, 4>;
  using Narrow = Wide;
  using ChannelNative = Vector<float, 32>;
  static constexpr bool channel_vectors_for(int64_t) { return true; }
};
struct Avx512Shapes {
  using Wide = TileShape<64, 1, 8>;
  using Narrow = TileShape<32, 1, 8>;
  using ChannelNative = Vector<float, 64>;
  static constexpr bool channel_vectors_for(int64_t) { return true; }
};

#if defined(__GNUC__) && defined(__x86_64__)
#define INVOLUTION_TARGET_AVX2 __attribute__((target("avx2,fma,f16c,bmi,bmi2,lzcnt,movbe")))
#define INVOLUTION_TARGET_AVX512 \
  __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,f16c,bmi,bmi2,lzcnt,movbe")))

template <typename Kernel>
INVOLUTION_TARGET_AVX512 void run_avx512(const Kernel& kernel) {
  kernel.template run<Avx512Shapes>();
}

template <typename Kernel>
INVOLUTION_TARGET_AVX2 void run_avx2(const Kernel& kernel) {
  kernel.template run<Avx2Shapes>();
}
#endif

template <typename Kernel>
void run_default(const Kernel& kernel) {
  kernel.template run<DefaultShapes>();
}

// The width of the level's vectors, in bytes.
inline int64_t vector_bytes(Isa level) {
  if (level == Isa::kAvx512) return Avx512Shapes::Wide::bytes;
  if (level == Isa::kAvx2) return Avx2Shapes::Wide::bytes;
  return DefaultShapes::Wide::bytes;
}

// Whether the level takes channel vectors for rows of `length` results (its Shapes' rule).
inline bool channel_vectors_at(Isa level, int64_t length) {
  if (level == Isa::kAvx512) return Avx512Shapes::channel_vectors_for(length);
  if (level == Isa::kAvx2) return Avx2Shapes::channel_vectors_for(length);
  return DefaultShapes::channel_vectors_for(length);
}

// kernel.run<Shapes>() compiled for the ISA level `level` (a level this build lacks runs the
// portable code).
template <typename Kernel>
void run_at(Isa level, const Kernel& kernel) {
#if defined(__GNUC__) && defined(__x86_64__)
  if (level == Isa::kAvx512) return run_avx512(kernel);
  if (level == Isa::kAvx2) return run_avx2(kernel);
#endif
  run_default(kernel);
}

}  // namespace cpu
}  // namespace involution
