// Building blocks of the CPU kernels: zero-padded row buffers and register-tiled inner loops.
//
// A task copies the rows it needs into small buffers in the accumulation type (float for half
// types): input rows with their zero padding made explicit, and weight / grad_output rows padded
// to a whole number of tiles (the forward reads float, double and bfloat16 weights in place). A
// tile is one or two vectors of results per channel (GCC/Clang vector extensions; dispatch.h
// lists the shapes of each ISA level), kept in registers across all taps; the inner loops have
// no bounds checks.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <type_traits>
#include <utility>

#include <c10/util/BFloat16.h>

#if defined(__x86_64__)
#include <emmintrin.h>  // SSE2, part of x86-64
#endif

#include "../involution_index.h"

// Every helper the kernels call is inlined into them, so it is compiled for the ISA of the
// kernel it serves (kernels.h: one entry point per ISA).
#define INVOLUTION_CPU_INLINE inline __attribute__((always_inline))
#define INVOLUTION_CPU_LAMBDA __attribute__((always_inline))  // the same, for a lambda

namespace involution {
namespace cpu {

// One vector register of T (kBytes: 64 for AVX-512, 32 for AVX2, 16 for the baseline ISA),
// loaded from unaligned addresses. A tile is kVectors such vectors along a row.
template <typename T, int64_t kBytes>
struct VectorOf {
  typedef T type __attribute__((vector_size(kBytes), aligned(sizeof(T)), may_alias));
};
template <typename T, int64_t kBytes>
using Vector = typename VectorOf<T, kBytes>::type;

// A zeroed buffer of `count` elements that starts at a cache line (64 bytes). Not a std::vector:
// GCC drops a vector type's alignment from a template argument, and where a buffer's lines
// begin decides which of the loads at fixed offsets in it cross a line (on Zen 3 such a load
// costs about twice one that does not).
template <typename T>
class LineBuffer {
 public:
  explicit LineBuffer(int64_t count)
      : data_(static_cast<T*>(std::aligned_alloc(64, bytes(count)))) {
    if (data_ == nullptr) throw std::bad_alloc();
    std::memset(static_cast<void*>(data_), 0, bytes(count));
  }
  LineBuffer(const LineBuffer&) = delete;
  LineBuffer& operator=(const LineBuffer&) = delete;
  ~LineBuffer() { std::free(data_); }
  T* data() const { return data_; }

 private:
  // aligned_alloc takes a whole number of lines
  static size_t bytes(int64_t count) {
    const size_t used = static_cast<size_t>(std::max<int64_t>(count, 1)) * sizeof(T);
    return (used + 63) / 64 * 64;
  }
  T* data_;
};

template <typename vector_t, typename T>
constexpr int64_t lanes() {
  return sizeof(vector_t) / sizeof(T);
}

template <typename vector_t, typename T>
INVOLUTION_CPU_INLINE vector_t load(const T* source) {
  return *reinterpret_cast<const vector_t*>(source);
}

// Weights whose vectors the tiles widen as they load them, so that they are read in place:
// bfloat16 is the upper half of a float.
template <typename T>
constexpr bool kWidenedOnLoad = std::is_same<T, c10::BFloat16>::value;

// The float vector whose lanes' upper halves are the bfloat16 bits `half`: each interleaved
// with a zero half. GCC 12 made four or five instructions of the equivalent vector conversion
// (zero-extend, then shift), mostly on the shuffle port; this is one at 16 bytes (punpcklwd),
// two at 32 (vpermq, vpunpcklwd) and one two-source permute at 64. The zero halves' indices
// differ by width because GCC finds the unpack only in the first form, and the two
// instructions at 32 bytes only in the second (it makes three of the first).
template <typename vector_t, int64_t... kLanes>
INVOLUTION_CPU_INLINE vector_t widen_bfloat16(const Vector<uint16_t, sizeof(vector_t) / 2>& half,
                                              std::integer_sequence<int64_t, kLanes...>) {
  using narrow_t = Vector<uint16_t, sizeof(vector_t) / 2>;
#if defined(__clang__) || __GNUC__ >= 12
  constexpr int64_t kHalves = sizeof(vector_t) / 4;
  constexpr bool kUnpack = sizeof(vector_t) == 16;
  const auto bits = __builtin_shufflevector(
      narrow_t{}, half, (kLanes % 2 == 1 ? kHalves + kLanes / 2 : kUnpack ? kLanes / 2 : 0)...);
#else
  using wide_t = Vector<uint32_t, sizeof(vector_t)>;
  const wide_t bits = __builtin_convertvector(half, wide_t) << 16;
#endif
  static_assert(sizeof(bits) == sizeof(vector_t), "widen_bfloat16: a float per bfloat16");
  vector_t result;
  __builtin_memcpy(&result, &bits, sizeof(result));
  return result;
}

// A vector of float from as many bfloat16 (a plain load for any other type).
template <typename vector_t, typename T>
INVOLUTION_CPU_INLINE vector_t load_weight(const T* source) {
  if constexpr (kWidenedOnLoad<T>) {
    using narrow_t = Vector<uint16_t, sizeof(vector_t) / 2>;
    return widen_bfloat16<vector_t>(
        *reinterpret_cast<const narrow_t*>(source),
        std::make_integer_sequence<int64_t, sizeof(vector_t) / 2>());
  } else {
    return load<vector_t>(source);
  }
}

inline int64_t round_up(int64_t value, int64_t multiple) {
  return (value + multiple - 1) / multiple * multiple;
}

// Padded input rows are stored by phase: with column stride s, padded column k (input column
// k - padding) goes to phase k % s, position k / s. Output j reads, at tap v, padded column
// j * s + v * dilation: phase (v * dilation) % s, position j + (v * dilation) / s. Consecutive
// outputs read consecutive positions, so every tile load is contiguous whatever the stride
// (with stride 1 this is the plain padded row).

// Positions per phase: enough for `padded_outputs` outputs at every tap.
inline int64_t phase_length(const Axis& cols, int64_t padded_outputs) {
  return padded_outputs + (cols.kernel_size - 1) * cols.dilation / cols.stride;
}

// Buffers of the padded input rows of a task: per channel, `rows_per_channel` phase-split rows
// for `padded_outputs` outputs (used by the forward and grad_weight kernels alike).
struct PaddedInputLayout {
  int64_t padded_outputs;  // outputs per row, padded to whole tiles
  int64_t phase_len;       // positions per phase
  int64_t row_length;      // one row: stride * phase_len
  int64_t channel_stride;  // one channel: rows_per_channel rows
};

inline PaddedInputLayout padded_input_layout(const Axis& cols, int64_t tile,
                                             int64_t rows_per_channel) {
  PaddedInputLayout layout;
  layout.padded_outputs = round_up(cols.output_size, tile);
  layout.phase_len = phase_length(cols, layout.padded_outputs);
  layout.row_length = cols.stride * layout.phase_len;
  layout.channel_stride = rows_per_channel * layout.row_length;
  return layout;
}

// Buffer index of the padded column that output 0 reads at tap `tap`; output j reads index
// tap_position(tap) + j (padded column j * stride + tap * dilation: same phase, position + j).
inline int64_t tap_position(const Axis& cols, int64_t phase_len, int64_t tap) {
  const int64_t column = tap * cols.dilation;
  return column % cols.stride * phase_len + column / cols.stride;
}

// Rows of a tensor are read and written through a pointer to their first element and the
// element step along the row (1 when contiguous, C for channels_last), so no layout needs a copy.

// Short contiguous copies and fills: the rows here are tens of elements, where a libc call
// (what a loop of unknown length becomes) costs more than the copy itself. Fixed-size moves
// compile to the vector loads and stores of the kernel's ISA.

// Copies `bytes` bytes, kBytes <= bytes <= 2 * kBytes, as two fixed-size moves, the second
// ending at the last byte (overlapping the first where bytes < 2 * kBytes): no branch per piece.
template <int64_t kBytes>
INVOLUTION_CPU_INLINE void copy_two_pieces(const char* source, int64_t bytes, char* target) {
  __builtin_memcpy(target, source, kBytes);
  __builtin_memcpy(target + bytes - kBytes, source + bytes - kBytes, kBytes);
}

// `rows` rows of `count` elements (rows `source_stride` and `target_stride` elements apart),
// the size dispatched once for all of them: grad_input copies a task's weight rows a kernel row
// at a time, and at RedNet's last stage (rows of 7 floats) the dispatch and the address of each
// row took more than its two moves.
template <typename T>
INVOLUTION_CPU_INLINE void copy_rows(const T* source, int64_t source_stride, int64_t count,
                                     int64_t rows, T* target, int64_t target_stride) {
  const int64_t bytes = count * static_cast<int64_t>(sizeof(T));
  auto each_row = [&](auto&& copy) INVOLUTION_CPU_LAMBDA {
    for (int64_t r = 0; r < rows; ++r) {
      copy(reinterpret_cast<const char*>(source + r * source_stride),
           reinterpret_cast<char*>(target + r * target_stride));
    }
  };
  auto in_two = [&](auto piece) INVOLUTION_CPU_LAMBDA {
    each_row([&](const char* from, char* to) INVOLUTION_CPU_LAMBDA {
      copy_two_pieces<decltype(piece)::value>(from, bytes, to);
    });
  };
  if (bytes > 64) {  // whole 64-byte blocks, the last one ending at the last byte
    each_row([&](const char* from, char* to) INVOLUTION_CPU_LAMBDA {
      for (int64_t k = 0; k + 64 < bytes; k += 64) __builtin_memcpy(to + k, from + k, 64);
      __builtin_memcpy(to + bytes - 64, from + bytes - 64, 64);
    });
  } else if (bytes >= 32) {
    in_two(std::integral_constant<int64_t, 32>{});
  } else if (bytes >= 16) {
    in_two(std::integral_constant<int64_t, 16>{});
  } else if (bytes >= 8) {
    in_two(std::integral_constant<int64_t, 8>{});
  } else if (bytes >= 4) {
    in_two(std::integral_constant<int64_t, 4>{});
  } else if (bytes >= 2) {
    in_two(std::integral_constant<int64_t, 2>{});
  }
}

template <typename T>
INVOLUTION_CPU_INLINE void copy_contiguous(const T* source, int64_t count, T* target) {
  copy_rows(source, 0, count, 1, target, 0);
}

template <typename T>
INVOLUTION_CPU_INLINE void zero_contiguous(T* target, int64_t count) {
  static_assert(std::is_floating_point<T>::value, "zero_contiguous: all-zero bits must be 0");
  constexpr int64_t kBlock = 64 / static_cast<int64_t>(sizeof(T));
  int64_t k = 0;
  for (; k + kBlock <= count; k += kBlock) __builtin_memset(target + k, 0, 64);
  for (; k < count; ++k) target[k] = T(0);
}

// target[k] = source[k] for k < count, bfloat16 to float (a plain copy for float), vector_t's
// width at a time; the rest, and spans shorter than a vector (rows of 7 or 14 pixels), as two
// pieces of 16, 8 or 4 that overlap (they write the same values twice) rather than a piece and
// single elements: grad_input widens 49 rows of 7 weights per output row, and its
// element-by-element tails took most of its task loop.
template <typename vector_t, typename T>
INVOLUTION_CPU_INLINE void widen_span(const T* source, int64_t count, float* target) {
  if constexpr (std::is_same<T, float>::value) {
    return copy_contiguous(source, count, target);
  } else {
    static_assert(kWidenedOnLoad<T>, "widen_span: float or bfloat16");
    constexpr int64_t kLanes = lanes<vector_t, float>();
    auto piece = [&](auto width, int64_t k) INVOLUTION_CPU_LAMBDA {
      using piece_t = Vector<float, 4 * decltype(width)::value>;
      const piece_t widened = load_weight<piece_t>(source + k);
      __builtin_memcpy(target + k, &widened, sizeof(widened));
    };
    using vector_width = std::integral_constant<int64_t, kLanes>;
    using eight = std::integral_constant<int64_t, 8>;
    using four = std::integral_constant<int64_t, 4>;
    if (count >= kLanes) {
      int64_t k = 0;
      for (; k + kLanes <= count; k += kLanes) piece(vector_width{}, k);
      if (k < count) piece(vector_width{}, count - kLanes);
    } else if (kLanes > 8 && count >= 8) {
      piece(eight{}, 0);
      piece(eight{}, count - 8);
    } else if (count >= 4) {
      piece(four{}, 0);
      piece(four{}, count - 4);
    } else {
      for (int64_t k = 0; k < count; ++k) target[k] = static_cast<float>(source[k]);
    }
  }
}

// buffer[k] = row[k * step] for k < count (converted to the accumulation type). Contiguous
// bfloat16 rows are widened a vector_t's width at a time (widen_span): as a loop of element
// conversions, with element-by-element tails, they made bfloat16's grad_input and grad_weight
// slower per element than float32's at the baseline level.
template <typename vector_t, typename scalar_t, typename acc_t>
INVOLUTION_CPU_INLINE void copy_row(const scalar_t* row, int64_t step, int64_t count,
                                    acc_t* buffer) {
  if constexpr (std::is_same<scalar_t, acc_t>::value) {
    if (step == 1) return copy_contiguous(row, count, buffer);
  }
  if constexpr (kWidenedOnLoad<scalar_t> && std::is_same<acc_t, float>::value) {
    if (step == 1) return widen_span<Vector<float, sizeof(vector_t)>>(row, count, buffer);
  }
  if (step == 1) {
    for (int64_t k = 0; k < count; ++k) buffer[k] = static_cast<acc_t>(row[k]);
  } else {
    for (int64_t k = 0; k < count; ++k) buffer[k] = static_cast<acc_t>(row[k * step]);
  }
}

// The kernels' row buffers are framed: the positions of a buffer row that no element of the
// row lands in (the zero padding, the round-up to whole tiles) are zeroed once, when the buffer
// is made (std::vector zero-initialises) for a thread's run of tasks, and are only ever written
// with zeros after that, so every task's rows keep the same frame. So a row is loaded by writing
// its own span alone, and a missing row by zeroing that span.

// The span of a framed buffer row of `length` that a row of `count` elements fills when its
// element 0 goes to position `first`: buffer[begin, end) = the row's elements from `skip`. Made
// once for rows of one shape (a task copies hundreds of rows of 7 at RedNet's last stage).
struct FramedSpan {
  int64_t begin, end, skip;
  FramedSpan(int64_t count, int64_t first, int64_t length)
      : begin(std::min(std::max<int64_t>(first, 0), length)),
        end(std::max(std::min(first + count, length), begin)),
        skip(begin - first) {}

  // buffer[k] = row[(k - first) * step] for k in the span; the rest of the buffer row is its
  // frame, already zero.
  template <typename vector_t, typename scalar_t, typename acc_t>
  INVOLUTION_CPU_INLINE void load(const scalar_t* row, int64_t step, acc_t* buffer) const {
    copy_row<vector_t>(row + skip * step, step, end - begin, buffer + begin);
  }
};

// buffer[k] = the row's element k - first for the k in [0, length) where it exists (the span);
// the rest of the buffer row is its frame, already zero.
template <typename vector_t, typename scalar_t, typename acc_t>
INVOLUTION_CPU_INLINE void load_framed_row(const scalar_t* row, int64_t step, int64_t count,
                                           int64_t first, acc_t* buffer, int64_t length) {
  FramedSpan(count, first, length).load<vector_t>(row, step, buffer);
}

// A padded input row in phases (see phase_length), zero in the padding; the buffer holds
// cols.stride * phase_len entries, framed at stride 1 (and written whole otherwise).
template <typename vector_t, typename scalar_t, typename acc_t>
INVOLUTION_CPU_INLINE void load_padded_input_row(const scalar_t* row, int64_t step,
                                                 const Axis& cols, int64_t phase_len,
                                                 acc_t* buffer) {
  if (cols.stride == 1) {
    load_framed_row<vector_t>(row, step, cols.input_size, cols.padding, buffer, phase_len);
    return;
  }
  zero_contiguous(buffer, cols.stride * phase_len);
  for (int64_t phase = 0; phase < cols.stride; ++phase) {
    // padded columns phase + stride * m that hold input columns (0 <= column - padding < W)
    const int64_t offset = cols.padding - phase;
    const int64_t first = offset > 0 ? (offset + cols.stride - 1) / cols.stride : 0;
    const int64_t last_column = cols.input_size - 1 + offset;  // stride * m <= this
    const int64_t end = last_column < 0 ? 0 : std::min(phase_len, last_column / cols.stride + 1);
    acc_t* target = buffer + phase * phase_len;
    for (int64_t m = first; m < end; ++m) {
      target[m] = static_cast<acc_t>(row[(cols.stride * m - offset) * step]);
    }
  }
}

// Forward tile: for kChannels channels and kVectors vectors of outputs of one output row
// (`weights` and `inputs` point at the tile's first output),
//     acc[c][k][t] = sum over kernel rows q < kernel_h and kernel columns v < kernel_w of
//         weights[q * weight_row_stride + v * weight_tap_stride + k * lanes + t]
//       * inputs[c * channel_stride + q * row_stride + taps[v] + k * lanes + t]
// Each weight load serves kChannels channels; the accumulators stay in registers.
template <int64_t kChannels, int64_t kVectors, typename vector_t, typename acc_t,
          typename weight_t>
INVOLUTION_CPU_INLINE void forward_tile(int64_t kernel_h, int64_t kernel_w, const int64_t* taps,
                                        const weight_t* weights, int64_t weight_row_stride,
                                        int64_t weight_tap_stride, const acc_t* inputs,
                                        int64_t channel_stride, int64_t row_stride,
                                        vector_t (&acc)[kChannels][kVectors]) {
  constexpr int64_t kLanes = lanes<vector_t, acc_t>();
  for (int64_t c = 0; c < kChannels; ++c)
    for (int64_t k = 0; k < kVectors; ++k) acc[c][k] = vector_t{};
  for (int64_t q = 0; q < kernel_h; ++q) {
    const weight_t* weight_row = weights + q * weight_row_stride;
    const acc_t* input_row = inputs + q * row_stride;
    for (int64_t v = 0; v < kernel_w; ++v) {
      vector_t weight[kVectors];
      for (int64_t k = 0; k < kVectors; ++k) {
        weight[k] = load_weight<vector_t>(weight_row + v * weight_tap_stride + k * kLanes);
      }
      const acc_t* tap = input_row + taps[v];
      for (int64_t c = 0; c < kChannels; ++c) {
        for (int64_t k = 0; k < kVectors; ++k) {
          acc[c][k] += weight[k] * load<vector_t>(tap + c * channel_stride + k * kLanes);
        }
      }
    }
  }
}

// Whether the two-row tiles of vector_t read kernel column v at v (kUnitColumns) instead of
// through the tap table: at unit column stride and dilation, and with 16-byte vectors only. At
// AVX2 and AVX-512 GCC's code for that form ran slower (ad hoc, back to back: the forward's
// tile in bench_tile_loop.py at 0.194 -> 0.246 ns per multiply-add at AVX2 and 0.242 -> 0.334
// at AVX-512, against 0.224 -> 0.206 at the baseline level; float64 grad_input at AVX-512 7-13%
// slower at stage 1).
template <typename vector_t>
constexpr bool unit_column_tiles(int64_t column_stride, int64_t column_dilation) {
  return sizeof(vector_t) == 16 && column_stride == 1 && column_dilation == 1;
}

// Calls f(std::true_type{}) or f(std::false_type{}): a run-time choice made a template argument.
template <typename F>
INVOLUTION_CPU_INLINE void with_choice(bool choice, F&& f) {
  if (choice) {
    f(std::true_type{});
  } else {
    f(std::false_type{});
  }
}

// Keeps a loaded vector in a register for the uses that follow (an empty asm that GCC must
// assume reads and changes it): otherwise GCC loads a vector that two multiply-adds share twice,
// folded into each at AVX2 and AVX-512, reloaded before each at the baseline level. GCC on
// x86-64 only: clang checks the operand's size against the helper's own target (no AVX), and
// other architectures' multiply-adds take no memory operands. "x" keeps the vector in one of
// the first 16 registers, which costs at most a move at AVX-512.
template <typename vector_t>
INVOLUTION_CPU_INLINE void in_register(vector_t& value) {
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
  __asm__("" : "+x"(value));
#else
  (void)value;
#endif
}

// One buffer row of a two-row forward tile (forward_pair_tile): for kernel columns v, the
// input row's tap serves the upper output row (kernel row u, weights `upper`) and the lower
// one (kernel row u - 1, weights `lower`) where kUpper / kLower say it reaches them.
// kUnitColumns: tap v is at v (unit column stride and dilation), without the table.
template <bool kUpper, bool kLower, int64_t kChannels, bool kUnitColumns, typename vector_t,
          typename acc_t, typename weight_t>
INVOLUTION_CPU_INLINE void pair_tile_row(int64_t kernel_w, const int64_t* taps,
                                         const weight_t* upper, const weight_t* lower,
                                         int64_t weight_tap_stride, const acc_t* input_row,
                                         int64_t channel_stride,
                                         vector_t (&acc)[2][kChannels]) {
  for (int64_t v = 0; v < kernel_w; ++v) {
    vector_t upper_weight{}, lower_weight{};
    if (kUpper) upper_weight = load_weight<vector_t>(upper + v * weight_tap_stride);
    if (kLower) lower_weight = load_weight<vector_t>(lower + v * weight_tap_stride);
    const acc_t* tap = input_row + (kUnitColumns ? v : taps[v]);
    for (int64_t c = 0; c < kChannels; ++c) {
      vector_t x = load<vector_t>(tap + c * channel_stride);
      if (kUpper && kLower) in_register(x);
      if (kUpper) acc[0][c] += upper_weight * x;
      if (kLower) acc[1][c] += lower_weight * x;
    }
  }
}

// Forward tile of two consecutive output rows when the kernel's row step equals the rows'
// stride, so that kernel row u of the lower row reads the input row of kernel row u + 1 of the
// upper one: one vector of outputs for kChannels channels of both rows, each input load
// serving both (0.75 loads per multiply-add for four channels, against 1.25 for one row).
// `upper` and `lower` are the rows' weight tiles (kernel row stride, column stride), `inputs`
// the upper row's kernel row 0.
template <int64_t kChannels, bool kUnitColumns, typename vector_t, typename acc_t,
          typename weight_t>
INVOLUTION_CPU_INLINE void forward_pair_tile(int64_t kernel_h, int64_t kernel_w,
                                             const int64_t* taps, const weight_t* upper,
                                             const weight_t* lower, int64_t weight_row_stride,
                                             int64_t weight_tap_stride, const acc_t* inputs,
                                             int64_t channel_stride, int64_t row_stride,
                                             vector_t (&acc)[2][kChannels]) {
  for (int64_t c = 0; c < kChannels; ++c) acc[0][c] = acc[1][c] = vector_t{};
  pair_tile_row<true, false, kChannels, kUnitColumns>(kernel_w, taps, upper, lower,
                                                      weight_tap_stride, inputs, channel_stride,
                                                      acc);
  for (int64_t q = 1; q < kernel_h; ++q) {
    pair_tile_row<true, true, kChannels, kUnitColumns>(
        kernel_w, taps, upper + q * weight_row_stride, lower + (q - 1) * weight_row_stride,
        weight_tap_stride, inputs + q * row_stride, channel_stride, acc);
  }
  pair_tile_row<false, true, kChannels, kUnitColumns>(
      kernel_w, taps, upper, lower + (kernel_h - 1) * weight_row_stride, weight_tap_stride,
      inputs + kernel_h * row_stride, channel_stride, acc);
}

// The lanes of a float vector rounded to bfloat16's bits as c10::BFloat16 rounds a float (to
// nearest even, NaN as 0x7FC0), a vector at a time instead of a call per lane.
template <typename vector_t>
INVOLUTION_CPU_INLINE auto bfloat16_bits(const vector_t& value) {
  constexpr int64_t kBytes = sizeof(vector_t);
  using bits_t = Vector<uint32_t, kBytes>;
  using narrow_t = Vector<uint16_t, kBytes / 2>;
  bits_t bits;
  __builtin_memcpy(&bits, &value, kBytes);
  const bits_t rounded = bits + 0x7FFFu + ((bits >> 16) & 1u);
#if defined(__x86_64__)
  if constexpr (kBytes == 16) {
    // SSE2 has no unsigned narrowing (packusdw is SSE4.1): GCC narrowed the shifted lanes with
    // five shuffles. The upper halves, sign-extended, fit the signed one (packssdw) exactly.
    using signed_t = Vector<int32_t, kBytes>;
    const signed_t upper = reinterpret_cast<const signed_t&>(rounded) >> 16;
    const signed_t result = value == value ? upper : signed_t{} + 0x7FC0;
    __m128i lanes;  // the kernels' vectors are only float-aligned
    __builtin_memcpy(&lanes, &result, sizeof(lanes));
    const __m128i packed = _mm_packs_epi32(lanes, lanes);
    narrow_t low;
    __builtin_memcpy(&low, &packed, sizeof(low));
    return low;
  }
#endif
  const bits_t result = value == value ? rounded >> 16 : bits_t{} + 0x7FC0u;
  return __builtin_convertvector(result, narrow_t);
}

// Lanes kFirst .. kFirst + sizeof...(kLanes) of `value`, as a vector of their own.
template <int64_t kFirst, typename vector_t, int64_t... kLanes>
INVOLUTION_CPU_INLINE auto lanes_from(const vector_t& value,
                                      std::integer_sequence<int64_t, kLanes...>) {
#if defined(__clang__) || __GNUC__ >= 12
  return __builtin_shufflevector(value, value, (kFirst + kLanes)...);
#else
  using T = std::decay_t<decltype(value[0])>;
  Vector<T, sizeof...(kLanes) * sizeof(T)> part;
  __builtin_memcpy(&part, reinterpret_cast<const char*>(&value) + kFirst * sizeof(T), sizeof(part));
  return part;
#endif
}

// Stores lanes [0, count) of `value` to target (count <= its lanes), a half vector at a time,
// from registers. Copied through the stack (copy_contiguous) instead, a piece straddling the
// copy's 8-byte halves waited for the copy's store to retire: at the baseline level, the three
// lanes that end a row of 7 took about a tenth of stage 4's forward (perf).
template <typename vector_t, typename T>
INVOLUTION_CPU_INLINE void store_lanes(const vector_t& value, int64_t count, T* target) {
  constexpr int64_t kLanes = lanes<vector_t, T>();
  static_assert(sizeof(value[0]) == sizeof(T), "store_lanes: lanes of the target's type");
  if (count == kLanes) {
    __builtin_memcpy(target, &value, sizeof(vector_t));
  } else if constexpr (kLanes <= 2) {
    if (count > 0) __builtin_memcpy(target, &value, sizeof(T));
  } else {
    constexpr int64_t kHalf = kLanes / 2;
    using half_lanes = std::make_integer_sequence<int64_t, kHalf>;
    const auto low = lanes_from<0>(value, half_lanes());
    if (count < kHalf) return store_lanes(low, count, target);
    __builtin_memcpy(target, &low, sizeof(low));
    store_lanes(lanes_from<kHalf>(value, half_lanes()), count - kHalf, target + kHalf);
  }
}

// Stores the first `count` lanes of kVectors vectors to target[k * step]: whole vectors at
// once when the target row is contiguous.
template <int64_t kVectors, typename vector_t, typename scalar_t>
INVOLUTION_CPU_INLINE void store_tile(const vector_t (&tile)[kVectors], int64_t count,
                                      scalar_t* target, int64_t step) {
  using acc_t = std::decay_t<decltype(tile[0][0])>;
  constexpr int64_t kLanes = lanes<vector_t, acc_t>();
  for (int64_t k = 0; k < kVectors; ++k) {
    const int64_t lanes_here = std::min(kLanes, count - k * kLanes);
    if (lanes_here <= 0) break;
    if constexpr (std::is_same<scalar_t, c10::BFloat16>::value &&
                  std::is_same<acc_t, float>::value) {
      if (step == 1) {
        store_lanes(bfloat16_bits(tile[k]), lanes_here,
                    reinterpret_cast<uint16_t*>(target + k * kLanes));
        continue;
      }
    } else if constexpr (std::is_same<scalar_t, acc_t>::value) {
      if (step == 1) {
        store_lanes(tile[k], lanes_here, target + k * kLanes);
        continue;
      }
    }
    for (int64_t t = 0; t < lanes_here; ++t) {
      target[(k * kLanes + t) * step] = static_cast<scalar_t>(tile[k][t]);
    }
  }
}

// grad_weight tile of one vector of outputs and kTaps consecutive kernel columns: the sums over
// `channels` channels of grad_output * input for the upper output row (kernel row u, grads
// `upper`) and the lower one (kernel row u - 1, grads `lower`), where kUpper / kLower say the
// input row reaches them (forward_pair_tile's sharing, seen from the weight's side):
//     acc[r][m][t] = sum_c grads_r[c * grad_stride + t]
//                        * input_row[c * channel_stride + taps[m] + t]
// Each input load serves both rows; each grad_output load serves kTaps taps.
template <bool kUpper, bool kLower, int64_t kTaps, typename vector_t, typename acc_t>
INVOLUTION_CPU_INLINE void grad_weight_pair_tile(int64_t channels, const int64_t* taps,
                                                 const acc_t* upper, const acc_t* lower,
                                                 int64_t grad_stride, const acc_t* input_row,
                                                 int64_t channel_stride,
                                                 vector_t (&acc)[2][kTaps]) {
  for (int64_t m = 0; m < kTaps; ++m) acc[0][m] = acc[1][m] = vector_t{};
  for (int64_t c = 0; c < channels; ++c) {
    vector_t upper_grad{}, lower_grad{};
    if (kUpper) upper_grad = load<vector_t>(upper + c * grad_stride);
    if (kLower) lower_grad = load<vector_t>(lower + c * grad_stride);
    const acc_t* inputs = input_row + c * channel_stride;
    for (int64_t m = 0; m < kTaps; ++m) {
      vector_t x = load<vector_t>(inputs + taps[m]);
      if (kUpper && kLower) in_register(x);
      if (kUpper) acc[0][m] += upper_grad * x;
      if (kLower) acc[1][m] += lower_grad * x;
    }
  }
}

// grad_input works on input columns by phase as well: input column w = r + stride * m (phase r)
// receives, at tap v, the output j = (w + padding - v * dilation) / stride when that division is
// exact, i.e. j = m + (r + padding - v * dilation) / stride: consecutive m, consecutive j. The
// weight and grad_output rows are kept with output column j at buffer index j + shift (zero
// outside the row), so that every offset below is non-negative.
struct GradInputLayout {
  int64_t phase_inputs;  // input columns per phase, padded to whole tiles
  int64_t shift;         // buffer index of output column 0
  int64_t length;        // buffer length
};

inline GradInputLayout grad_input_layout(const Axis& cols, int64_t tile) {
  const int64_t s = cols.stride;
  const int64_t reach = (cols.kernel_size - 1) * cols.dilation - cols.padding;
  GradInputLayout layout;
  layout.phase_inputs = round_up((cols.input_size + s - 1) / s, tile);
  layout.shift = reach > 0 ? (reach + s - 1) / s : 0;
  layout.length = layout.phase_inputs + (s - 1 + cols.padding) / s + layout.shift;
  return layout;
}

// The taps that reach input columns of phase `phase`, and the buffer offset of each
// (offset + m is the buffer index of the output read by column phase + stride * m). Returns
// how many; `taps` and `offsets` need room for kernel_size entries.
inline int64_t phase_taps(const Axis& cols, const GradInputLayout& layout, int64_t phase,
                          int64_t* taps, int64_t* offsets) {
  int64_t count = 0;
  for (int64_t v = 0; v < cols.kernel_size; ++v) {
    const int64_t distance = phase + cols.padding - v * cols.dilation;  // = stride * (j - m)
    if (distance % cols.stride != 0) continue;
    taps[count] = v;
    offsets[count] = distance / cols.stride + layout.shift;
    ++count;
  }
  return count;
}

// grad_input tile: for kChannels channels and kVectors vectors of input columns of one phase,
// from m0, of one input row,
//     acc[c][k][t] = sum_{q < kernel_h with grad_rows[q] >= 0, n < tap_count}
//         weights[(q * KW + taps[n]) * length + m0 + k * lanes + t + offsets[n]]
//       * grads[c * channel_stride + grad_rows[q] + (same index)]
// i.e. the sum over taps (u, v) of weight[u, v, i_u, j] * grad_output[c, i_u, j] over the j
// whose tap v reads this column, where i_u is the output row whose tap u reads this input row
// (grad_rows[u]: that row's offset in the grads buffer, -1 when kernel row u reads none).
template <int64_t kChannels, int64_t kVectors, typename vector_t, typename acc_t>
INVOLUTION_CPU_INLINE void grad_input_tile(int64_t kernel_h, int64_t kernel_w, int64_t m0,
                                           const int64_t* taps, const int64_t* offsets,
                                           int64_t tap_count, const acc_t* weights,
                                           const acc_t* grads, const int64_t* grad_rows,
                                           int64_t length, int64_t channel_stride,
                                           vector_t (&acc)[kChannels][kVectors]) {
  constexpr int64_t kLanes = lanes<vector_t, acc_t>();
  for (int64_t c = 0; c < kChannels; ++c)
    for (int64_t k = 0; k < kVectors; ++k) acc[c][k] = vector_t{};
  for (int64_t q = 0; q < kernel_h; ++q) {
    if (grad_rows[q] < 0) continue;
    for (int64_t n = 0; n < tap_count; ++n) {
      const int64_t offset = m0 + offsets[n];
      const acc_t* weight_row = weights + (q * kernel_w + taps[n]) * length + offset;
      vector_t weight[kVectors];
      for (int64_t k = 0; k < kVectors; ++k) weight[k] = load<vector_t>(weight_row + k * kLanes);
      const acc_t* grad_row = grads + grad_rows[q] + offset;
      for (int64_t c = 0; c < kChannels; ++c) {
        for (int64_t k = 0; k < kVectors; ++k) {
          acc[c][k] += weight[k] * load<vector_t>(grad_row + c * channel_stride + k * kLanes);
        }
      }
    }
  }
}

// One grad_output row of a two-row grad_input tile (grad_input_pair_tile): its taps serve the
// upper input row (kernel row u - 1, weights `upper`) and the lower one (kernel row u, weights
// `lower`) where kUpper / kLower say the row reaches them. kUnitColumns: the taps are every
// kernel column v at offsets offsets[0] - v (unit column stride and dilation), so the loop
// moves its pointers by constants instead of a multiply and two table reads per tap. (Fully
// unrolled, GCC spilled the weights and ran the channels' sums one after another.)
template <bool kUpper, bool kLower, int64_t kChannels, bool kUnitColumns, typename vector_t,
          typename acc_t>
INVOLUTION_CPU_INLINE void grad_input_pair_step(int64_t m0, const int64_t* taps,
                                                const int64_t* offsets, int64_t tap_count,
                                                const acc_t* upper, const acc_t* lower,
                                                int64_t length, const acc_t* grad_row,
                                                int64_t channel_stride,
                                                vector_t (&acc)[2][kChannels]) {
  auto multiply_add = [&](const acc_t* upper_row, const acc_t* lower_row,
                          const acc_t* grads) INVOLUTION_CPU_LAMBDA {
    vector_t upper_weight{}, lower_weight{};
    if (kUpper) upper_weight = load<vector_t>(upper_row);
    if (kLower) lower_weight = load<vector_t>(lower_row);
    for (int64_t c = 0; c < kChannels; ++c) {
      vector_t grad = load<vector_t>(grads + c * channel_stride);
      if (kUpper && kLower) in_register(grad);
      if (kUpper) acc[0][c] += upper_weight * grad;
      if (kLower) acc[1][c] += lower_weight * grad;
    }
  };
  if constexpr (kUnitColumns) {
    const int64_t offset = m0 + offsets[0];
    const acc_t* upper_row = upper + offset;
    const acc_t* lower_row = lower + offset;
    const acc_t* grads = grad_row + offset;
#pragma GCC unroll 1
    for (int64_t v = 0; v < tap_count; ++v) {
      multiply_add(upper_row, lower_row, grads);
      upper_row += length - 1;  // the next weight row, one column to the left
      lower_row += length - 1;
      grads -= 1;
    }
  } else {
    for (int64_t n = 0; n < tap_count; ++n) {
      const int64_t offset = m0 + offsets[n];
      multiply_add(upper + taps[n] * length + offset, lower + taps[n] * length + offset,
                   grad_row + offset);
    }
  }
}

// grad_input tile of two consecutive input rows (row stride and dilation 1): kernel row u + 1
// of the lower row reads the grad_output row of kernel row u of the upper one, so each
// grad_output load serves both. `upper` / `lower` are the rows' weights (kernel row u at
// u * kernel_w * length, zero where it reads no output row), `grads` the upper row's kernel
// row 0 (row -1 is the lower row's kernel row 0), `grad_stride` one grad_output row.
template <int64_t kChannels, bool kUnitColumns, typename vector_t, typename acc_t>
INVOLUTION_CPU_INLINE void grad_input_pair_tile(int64_t kernel_h, int64_t kernel_w, int64_t m0,
                                                const int64_t* taps, const int64_t* offsets,
                                                int64_t tap_count, const acc_t* upper,
                                                const acc_t* lower, const acc_t* grads,
                                                int64_t grad_stride, int64_t length,
                                                int64_t channel_stride,
                                                vector_t (&acc)[2][kChannels]) {
  for (int64_t c = 0; c < kChannels; ++c) acc[0][c] = acc[1][c] = vector_t{};
  const int64_t kernel_row = kernel_w * length;
  grad_input_pair_step<false, true, kChannels, kUnitColumns>(m0, taps, offsets, tap_count, upper,
                                                       lower, length, grads + grad_stride,
                                                       channel_stride, acc);
  for (int64_t u = 1; u < kernel_h; ++u) {
    grad_input_pair_step<true, true, kChannels, kUnitColumns>(
        m0, taps, offsets, tap_count, upper + (u - 1) * kernel_row, lower + u * kernel_row, length,
        grads - (u - 1) * grad_stride, channel_stride, acc);
  }
  grad_input_pair_step<true, false, kChannels, kUnitColumns>(
      m0, taps, offsets, tap_count, upper + (kernel_h - 1) * kernel_row, lower, length,
      grads - (kernel_h - 1) * grad_stride, channel_stride, acc);
}

}  // namespace cpu
}  // namespace involution
