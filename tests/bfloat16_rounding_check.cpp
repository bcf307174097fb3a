// Rounds every float bit pattern to bfloat16 with the kernels' 16-byte vector rounding
// (csrc/cpu/tiles.h: bfloat16_bits; on x86-64 SSE2's signed narrowing, elsewhere the generic
// one) and checks each result against c10's rounding of the same float (NaN: 0x7FC0). Run by
// test_reliability.py.
#include <cstdint>
#include <cstdio>
#include <cstring>

#include "cpu/tiles.h"

using involution::cpu::bfloat16_bits;
using involution::cpu::Vector;

// The bits c10 rounds `bits` to.
static uint16_t c10_bits(uint32_t bits) {
  float value;
  std::memcpy(&value, &bits, sizeof(value));
  return c10::BFloat16(value).x;
}

// Every pattern, kLanes at a time; returns the number of mismatches (the first few printed).
template <int kBytes>
static uint64_t check_all() {
  constexpr int kLanes = kBytes / 4;
  uint64_t failures = 0;
  for (uint64_t first = 0; first < (uint64_t{1} << 32); first += kLanes) {
    uint32_t bits[kLanes];
    for (int k = 0; k < kLanes; ++k) bits[k] = static_cast<uint32_t>(first + k);
    Vector<float, kBytes> values;
    std::memcpy(&values, bits, sizeof(values));
    const auto rounded = bfloat16_bits(values);
    uint16_t got[kLanes];
    std::memcpy(got, &rounded, sizeof(got));
    for (int k = 0; k < kLanes; ++k) {
      const uint16_t wanted = c10_bits(bits[k]);
      if (got[k] != wanted && failures++ < 5) {
        std::printf("FAILED %d bytes: %08x -> %04x, c10 %04x\n", kBytes, bits[k], got[k], wanted);
      }
    }
  }
  return failures;
}

int main() {
  const uint64_t failures = check_all<16>();
  if (failures == 0) std::printf("all bfloat16 roundings match\n");
  return failures == 0 ? 0 : 1;
}
