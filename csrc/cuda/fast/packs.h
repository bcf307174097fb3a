// Packs of the fast channels_last kernels: N consecutive channels moved as one aligned access
// (16 bytes for the wide packs: one LDG.E.128 / STG.E.128 on the GPU), their conversion to and
// from the accumulation type, the choice of N for a problem, and the byte permutes (and
// ColumnMask) that widen and mask a row kernel's window values in one instruction.
//
// No torch and no CUDA headers. PackMath is defined here for every element type by scalar
// conversions; half_types.cuh specialises it for CUDA's half types to convert pairs.
#pragma once

#include <cstdint>
#include <cstring>
#include <initializer_list>
#if !defined(__CUDA_ARCH__)
#include <stdexcept>
#endif

#include "../plumbing.h"

namespace involution {
namespace cuda {
namespace fast {

// N consecutive elements moved as one aligned access (N·sizeof(T) = 16 bytes for the wide packs).
template <typename T, int N>
struct alignas(sizeof(T) * N) Pack {
  T lane[N];
};

// Elements per 16-byte pack.
template <typename T>
constexpr int kWidePack = 16 / static_cast<int>(sizeof(T));

// Conversion of a whole pack to and from the accumulation type; the CUDA half types specialise
// it to convert pairs.
template <typename T, int N>
struct PackMath {
  using acc_t = typename Arith<T>::acc_t;
  static INVOLUTION_HOST_DEVICE void unpack(const Pack<T, N>& pack, acc_t (&values)[N]) {
    INVOLUTION_UNROLL
    for (int k = 0; k < N; ++k) values[k] = Arith<T>::to_acc(pack.lane[k]);
  }
  static INVOLUTION_HOST_DEVICE Pack<T, N> repack(const acc_t (&values)[N]) {
    Pack<T, N> pack;
    INVOLUTION_UNROLL
    for (int k = 0; k < N; ++k) pack.lane[k] = Arith<T>::from_acc(values[k]);
    return pack;
  }
};

// The widening of packs held in registers for a whole item (grad_weight's grads): PackMath, except
// where half_types.cuh picks a form that ptxas allocates better for values live that long.
template <typename T, int N>
struct HeldPackMath : PackMath<T, N> {};

#if defined(__CUDA_ARCH__)
// The unsigned word of each pack size that __ldg loads in one instruction.
template <int Bytes> struct Word;
template <> struct Word<2> { using type = unsigned short; };
template <> struct Word<4> { using type = unsigned int; };
template <> struct Word<8> { using type = uint2; };
template <> struct Word<16> { using type = uint4; };
#endif

#if defined(__CUDA_ARCH__)
// A weak global store of a whole pack in one instruction (st.global.v4.b32 for 16 bytes).
template <typename T, int N>
__device__ __forceinline__ void store_word(T* address, const Pack<T, N>& pack) {
  using word_t = typename Word<sizeof(Pack<T, N>)>::type;
  word_t word;
  memcpy(&word, &pack, sizeof(word));
  if constexpr (sizeof(word) == 16) {
    asm("st.global.v4.b32 [%0], {%1, %2, %3, %4};" ::"l"(address), "r"(word.x), "r"(word.y),
        "r"(word.z), "r"(word.w)
        : "memory");
  } else {
    *reinterpret_cast<word_t*>(address) = word;  // one element or one pair: one store anyway
  }
}
#endif

// Whether T is bfloat16: specialised where the type is defined (half_types.cuh, the emulation),
// for kernels that widen its bits themselves.
template <typename T>
struct IsBfloat16 {
  static constexpr bool value = false;
};

// The byte permute of PTX (prmt.b32, no sign replication): byte i of the result is byte
// (selector >> 4i) & 7 of the pair (high = 0, low = a). With a selector made once per item it
// widens and masks a value in one instruction; a mask the compiler can see to be 0 or ~0 (an
// AND) becomes a select on a predicate instead, and with more columns than the 7 predicates it
// re-derives them for every value.
INVOLUTION_HOST_DEVICE uint32_t permute_with_zero(uint32_t a, uint32_t selector) {
#if defined(__CUDA_ARCH__)
  uint32_t r;
  asm("prmt.b32 %0, %1, 0, %2;" : "=r"(r) : "r"(a), "r"(selector));
  return r;
#else
  uint32_t r = 0;
  for (int i = 0; i < 4; ++i) {
    const uint32_t byte = selector >> (4 * i) & 7;
    if (byte < 4) r |= (a >> (8 * byte) & 0xff) << (8 * i);
  }
  return r;
#endif
}

// Selectors: the word itself; a 16-bit word, or the low half of a word, moved to the high half
// (bfloat16 to float); the high half of a word alone (the second bfloat16 of a pair, widened);
// zero.
constexpr uint32_t kKeepWord = 0x3210, kWidenBfloat16 = 0x1044, kWidenHighBfloat16 = 0x3244,
                   kZeroWord = 0x4444;

// Loads of a window column that may lie in the padding: the load is always made (the caller
// keeps it inside the tensor) and the column's selector, made once per item, turns it into zero
// in the same instruction that (for bfloat16) widens it.
template <typename T>
struct ColumnMask {
  using acc_t = typename Arith<T>::acc_t;
  uint32_t selector = kZeroWord;
  ColumnMask() = default;
  INVOLUTION_HOST_DEVICE explicit ColumnMask(bool keep)
      : selector(keep ? (IsBfloat16<T>::value ? kWidenBfloat16 : kKeepWord) : kZeroWord) {}
  INVOLUTION_HOST_DEVICE acc_t load(const T* x) const {
    const T value = read_only(x);
    static_assert(sizeof(T) == 2, "float and double have their own");
    uint16_t raw;
    memcpy(&raw, &value, sizeof(raw));
    const uint32_t bits = permute_with_zero(raw, selector);
    if (IsBfloat16<T>::value) {
      float widened;
      memcpy(&widened, &bits, sizeof(widened));
      return widened;
    }
    // (half: the masked bits, then the conversion)
    const uint16_t masked = static_cast<uint16_t>(bits);
    T zero_or_value;
    memcpy(static_cast<void*>(&zero_or_value), &masked, sizeof(masked));
    return Arith<T>::to_acc(zero_or_value);
  }
};
template <>
struct ColumnMask<float> {
  uint32_t selector = kZeroWord;
  ColumnMask() = default;
  INVOLUTION_HOST_DEVICE explicit ColumnMask(bool keep) : selector(keep ? kKeepWord : kZeroWord) {}
  INVOLUTION_HOST_DEVICE float load(const float* x) const {
    const float value = read_only(x);
    uint32_t bits;
    memcpy(&bits, &value, sizeof(bits));
    bits = permute_with_zero(bits, selector);
    float masked;
    memcpy(&masked, &bits, sizeof(masked));
    return masked;
  }
};
template <>
struct ColumnMask<double> {
  uint32_t selector = kZeroWord;
  ColumnMask() = default;
  INVOLUTION_HOST_DEVICE explicit ColumnMask(bool keep) : selector(keep ? kKeepWord : kZeroWord) {}
  INVOLUTION_HOST_DEVICE double load(const double* x) const {
    const double value = read_only(x);
    uint32_t words[2];
    memcpy(words, &value, sizeof(words));
    words[0] = permute_with_zero(words[0], selector);
    words[1] = permute_with_zero(words[1], selector);
    double masked;
    memcpy(&masked, words, sizeof(masked));
    return masked;
  }
};

// Aligned pack load and store. On the GPU a 16-byte pack is one 128-bit access; an unaligned
// one would fault, so the CPU emulation checks the alignment that the GPU relies on.
template <int N, typename T>
INVOLUTION_HOST_DEVICE Pack<T, N> load_pack(const T* address) {
#if defined(__CUDA_ARCH__)
  using word_t = typename Word<sizeof(Pack<T, N>)>::type;
  const word_t word = __ldg(reinterpret_cast<const word_t*>(address));
  Pack<T, N> pack;
  memcpy(&pack, &word, sizeof(pack));
  return pack;
#else
  if (reinterpret_cast<std::uintptr_t>(address) % sizeof(Pack<T, N>) != 0) {
    throw std::logic_error("fast kernel: misaligned pack load");
  }
  Pack<T, N> pack;
  std::memcpy(static_cast<void*>(&pack), address, sizeof(pack));
  return pack;
#endif
}

template <int N, typename T>
INVOLUTION_HOST_DEVICE void store_pack(T* address, const Pack<T, N>& pack) {
#if defined(__CUDA_ARCH__)
  // One plain vector store (STG.E.128 for 16 bytes). The compiler may split an assignment of
  // the pack, or of its vector word, into element stores (it did after an unrelated change), and
  // __stwb gives STG.E.128.STRONG.SM, which orders memory for nothing: hence the PTX store.
  store_word(address, pack);
#else
  if (reinterpret_cast<std::uintptr_t>(address) % sizeof(Pack<T, N>) != 0) {
    throw std::logic_error("fast kernel: misaligned pack store");
  }
  std::memcpy(static_cast<void*>(address), &pack, sizeof(pack));
#endif
}

// Channels per pack of the channels_last kernels: a 16-byte pack when every pack lies inside
// one group and every pack address is 16-byte aligned (tensor bases aligned, channels a multiple
// of the pack), else one channel.
template <typename T>
inline int channels_last_pack(const Problem& p, std::initializer_list<const void*> bases) {
  const int64_t wide = kWidePack<T>;
  if (channels_per_group(p) % wide != 0) return 1;
  for (const void* base : bases) {
    if (reinterpret_cast<std::uintptr_t>(base) % 16 != 0) return 1;
  }
  return static_cast<int>(wide);
}

}  // namespace fast
}  // namespace cuda
}  // namespace involution
