// Element traits of CUDA's half types for the kernels: Arith (plumbing.h) with exact conversions
// to float and round-to-nearest-even back, and the fast kernels' PackMath (fast/packs.h)
// converting packs two elements at a time.
//
// Everything here is __host__ __device__: launchers.cu uses it on the GPU, and
// tests/half_pack_check.cu runs the same code on the host (nvcc, no GPU) to check it.
#pragma once

#include <cstdint>
#include <cstring>

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "fast/packs.h"
#include "plumbing.h"

namespace involution {
namespace cuda {

// torch builds with the implicit half conversions disabled: convert explicitly.
template <> struct Arith<__half> {
  using acc_t = float;
  static INVOLUTION_HOST_DEVICE float to_acc(__half value) { return __half2float(value); }
  static INVOLUTION_HOST_DEVICE __half from_acc(float value) { return __float2half_rn(value); }
};
template <> struct Arith<__nv_bfloat16> {
  using acc_t = float;
  static INVOLUTION_HOST_DEVICE float to_acc(__nv_bfloat16 value) { return __bfloat162float(value); }
  static INVOLUTION_HOST_DEVICE __nv_bfloat16 from_acc(float value) { return __float2bfloat16_rn(value); }
};

namespace fast {

template <> struct IsBfloat16<__nv_bfloat16> { static constexpr bool value = true; };

// Pair conversions of the half types: two elements per instruction.
INVOLUTION_HOST_DEVICE float2 widen_pair(__half first, __half second) {
  return __half22float2(__halves2half2(first, second));
}
INVOLUTION_HOST_DEVICE float2 widen_pair(__nv_bfloat16 first, __nv_bfloat16 second) {
  return __bfloat1622float2(__halves2bfloat162(first, second));
}
INVOLUTION_HOST_DEVICE void narrow_pair(float first, float second, __half* pair) {
  const __half2 both = __floats2half2_rn(first, second);
  pair[0] = __low2half(both);
  pair[1] = __high2half(both);
}
INVOLUTION_HOST_DEVICE void narrow_pair(float first, float second, __nv_bfloat16* pair) {
  const __nv_bfloat162 both = __floats2bfloat162_rn(first, second);
  pair[0] = __low2bfloat16(both);
  pair[1] = __high2bfloat16(both);
}

// Half packs convert in pairs (accumulation stays in float).
template <typename T, int N>
struct PairedPackMath {
  static INVOLUTION_HOST_DEVICE void unpack(const Pack<T, N>& pack, float (&values)[N]) {
    INVOLUTION_UNROLL
    for (int k = 0; k + 1 < N; k += 2) {
      const float2 pair = widen_pair(pack.lane[k], pack.lane[k + 1]);
      values[k] = pair.x;
      values[k + 1] = pair.y;
    }
    if (N % 2 == 1) values[N - 1] = Arith<T>::to_acc(pack.lane[N - 1]);
  }
  static INVOLUTION_HOST_DEVICE Pack<T, N> repack(const float (&values)[N]) {
    Pack<T, N> pack;
    INVOLUTION_UNROLL
    for (int k = 0; k + 1 < N; k += 2) narrow_pair(values[k], values[k + 1], &pack.lane[k]);
    if (N % 2 == 1) pack.lane[N - 1] = Arith<T>::from_acc(values[N - 1]);
    return pack;
  }
};
template <int N> struct PackMath<__half, N> : PairedPackMath<__half, N> {};

// bfloat16 is the top half of a float: a pair in one 32-bit word widens with one shift and one
// mask (exact, NaN payloads kept), instead of unpacking and re-pairing the elements.
template <int N>
struct PackMath<__nv_bfloat16, N> : PairedPackMath<__nv_bfloat16, N> {
  static INVOLUTION_HOST_DEVICE void unpack(const Pack<__nv_bfloat16, N>& pack,
                                            float (&values)[N]) {
    if (N % 2 == 1) {
      PairedPackMath<__nv_bfloat16, N>::unpack(pack, values);
      return;
    }
    uint32_t words[N / 2 > 0 ? N / 2 : 1];
    memcpy(words, &pack, sizeof(pack));
    INVOLUTION_UNROLL
    for (int k = 0; k + 1 < N; k += 2) {
      const uint32_t low = words[k / 2] << 16, high = words[k / 2] & 0xffff0000u;
      memcpy(&values[k], &low, sizeof(float));
      memcpy(&values[k + 1], &high, sizeof(float));
    }
  }
};

// The pair conversions for held bfloat16 grads: with the shift and mask, ptxas spills 20 bytes of
// GradWeightRowsChannelsLast<__nv_bfloat16, 7> under the 128-register cap.
template <int N> struct HeldPackMath<__nv_bfloat16, N> : PairedPackMath<__nv_bfloat16, N> {};

}  // namespace fast
}  // namespace cuda
}  // namespace involution
