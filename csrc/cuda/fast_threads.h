// Per-thread work of the fast CUDA kernels, written once for the GPU and for the CPU tests.
//
// Each kernel is a functor: `items()` says how many work items the problem has and
// `operator()(Thread)` does the items of one thread of a 1-D grid-stride launch. fast_kernels.cu
// launches the functor as a CUDA kernel; the emulated launch (csrc/emulation) calls it for every
// (block, thread) of the very same grid on the CPU, so the CPU tests run the code the GPU runs.
// None of these kernels uses shared memory, barriers or warp shuffles, so running the threads
// one after another is an exact emulation. Each thread writes only its own result elements and
// reads only inputs: no atomics, deterministic results.
//
// Why they are faster than the baseline (one thread per result element):
//   - a thread covers several channels of one group at one pixel, so each generated weight is
//     loaded once for them instead of once per channel;
//   - channels_last (NHWC) tensors are read and written in 16-byte packs of channels (one
//     LDG.128 / STG.128 per pack; the lanes of a warp cover neighbouring pixels of one group);
//   - grad_weight covers a row of kernel taps per thread (channels-first) or one pixel of one
//     group (channels_last), so grad_output is loaded once per channel for several taps;
//   - half types are converted in pairs and accumulated in float.
//
// The header needs no torch and no CUDA headers. The element-type traits `Arith` (conversions)
// and `PackMath` (pack conversions) are defined here for float and double; half_types.cuh
// specialises them for CUDA's __half and __nv_bfloat16, the emulation for torch's host types.
#pragma once

#include <cstdint>
#include <cstring>
#include <initializer_list>
#if !defined(__CUDA_ARCH__)
#include <stdexcept>
#endif

#include "../involution_index.h"

// Full unrolling keeps the small per-thread arrays in registers (device code) and lets the host
// compiler vectorise the pack loops of the emulation (nvcc's host pass needs neither).
#if defined(__CUDA_ARCH__)
#define INVOLUTION_UNROLL _Pragma("unroll")
#elif defined(__CUDACC__)
#define INVOLUTION_UNROLL
#else
#define INVOLUTION_UNROLL _Pragma("GCC unroll 16")
#endif

namespace involution {
namespace fast {

enum class Layout { kChannelsFirst, kChannelsLast };

// One thread of a 1-D launch: its block and lane, and the launch's shape.
struct Thread {
  int64_t block;
  int64_t lane;
  int64_t blocks;
  int64_t threads_per_block;
};

INVOLUTION_HOST_DEVICE int64_t first_item(const Thread& t) { return t.block * t.threads_per_block + t.lane; }
INVOLUTION_HOST_DEVICE int64_t item_stride(const Thread& t) { return t.blocks * t.threads_per_block; }

constexpr int kThreadsPerBlock = 256;
constexpr int64_t kMaxBlocks = int64_t{1} << 20;

// Blocks of kThreadsPerBlock threads for `items` items; at most max_blocks (the grid-stride loop
// covers the rest). The CUDA launch and the emulated launch both use it.
inline int64_t blocks_for(int64_t items, int64_t max_blocks = kMaxBlocks) {
  const int64_t needed = (items + kThreadsPerBlock - 1) / kThreadsPerBlock;
  return needed < max_blocks ? needed : max_blocks;
}

// ---- element types ---------------------------------------------------------------------------

// Accumulation type and exact conversions of one element type.
template <typename T> struct Arith;
template <> struct Arith<float> {
  using acc_t = float;
  static INVOLUTION_HOST_DEVICE float to_acc(float value) { return value; }
  static INVOLUTION_HOST_DEVICE float from_acc(float value) { return value; }
};
template <> struct Arith<double> {
  using acc_t = double;
  static INVOLUTION_HOST_DEVICE double to_acc(double value) { return value; }
  static INVOLUTION_HOST_DEVICE double from_acc(double value) { return value; }
};

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

#if defined(__CUDA_ARCH__)
// The unsigned word of each pack size that __ldg loads in one instruction.
template <int Bytes> struct Word;
template <> struct Word<2> { using type = unsigned short; };
template <> struct Word<4> { using type = unsigned int; };
template <> struct Word<8> { using type = uint2; };
template <> struct Word<16> { using type = uint4; };
#endif

// Load of an element the kernel only reads: through the read-only (non-coherent) data path on
// the GPU; no kernel writes what it reads.
template <typename T>
INVOLUTION_HOST_DEVICE T read_only(const T* address) {
#if defined(__CUDA_ARCH__)
  return __ldg(address);
#else
  return *address;
#endif
}

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
  // One vector store instruction (__stwb: the default write-back policy); a plain assignment
  // may be split by the compiler into element stores.
  using word_t = typename Word<sizeof(Pack<T, N>)>::type;
  word_t word;
  memcpy(&word, &pack, sizeof(word));
  __stwb(reinterpret_cast<word_t*>(address), word);
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

// ---- channels_last kernels: one thread per (pixel, pack of N channels of one group) ----------

// Where a channels_last item stands: image n, group g, channels c0 .. c0+N-1, pixel (row, col).
struct PackItem {
  int64_t n, g, c0, row, col;
};

// Items are ordered (n, g, row, col, pack) with the packs of one group fastest: the lanes of a
// warp cover neighbouring pixels of one group, so its weight loads are one contiguous segment
// and each 16-byte pack load serves N channels.
template <int N>
INVOLUTION_HOST_DEVICE PackItem pack_item(const Problem& p, int64_t item, int64_t rows,
                                          int64_t cols) {
  const int64_t per_group = channels_per_group(p), packs = per_group / N;
  const int64_t pixel = item / packs;
  const int64_t g = pixel / (rows * cols) % p.groups;
  return {pixel / (rows * cols * p.groups), g, g * per_group + item % packs * N,
          pixel / cols % rows, pixel % cols};
}

// out[n, i, j, c0:c0+N] = sum_taps weight[n, g, u, v, i, j] * x[n, h, w, c0:c0+N]
template <typename T, int N>
struct ForwardChannelsLast {
  using acc_t = typename Arith<T>::acc_t;
  Problem p;
  const T* __restrict__ input;
  const T* __restrict__ weight;
  T* __restrict__ output;

  INVOLUTION_HOST_DEVICE int64_t items() const {
    return p.batch * p.height.output_size * p.width.output_size * (p.channels / N);
  }

  INVOLUTION_HOST_DEVICE void operator()(const Thread& t) const {
    const int64_t total = items();
    for (int64_t item = first_item(t); item < total; item += item_stride(t)) {
      const PackItem at = pack_item<N>(p, item, p.height.output_size, p.width.output_size);
      const int64_t n = at.n, g = at.g, c0 = at.c0, i = at.row, j = at.col;
      acc_t sum[N] = {};
      for (int64_t u = 0; u < p.height.kernel_size; ++u) {
        const int64_t h = input_index(p.height, i, u);
        const bool row_inside = inside(h, p.height.input_size);
        const T* x_row = input + pixel_offset(p.height.input_size, p.width.input_size, p.channels,
                                              n, row_inside ? h : 0, 0, c0);
        const T* taps = weight + weight_offset(p, n, g, u, 0, i, j);
        for (int64_t v = 0; v < p.width.kernel_size; ++v) {
          const int64_t w = input_index(p.width, j, v);
          const acc_t tap = Arith<T>::to_acc(read_only(taps + v * weight_tap_stride(p)));
          acc_t values[N] = {};  // padding reads zero and is multiplied: NaN/Inf taps propagate
          if (row_inside && inside(w, p.width.input_size)) {
            PackMath<T, N>::unpack(load_pack<N>(x_row + w * p.channels), values);
          }
          INVOLUTION_UNROLL
          for (int k = 0; k < N; ++k) sum[k] += tap * values[k];
        }
      }
      store_pack<N>(output + pixel_offset(p.height.output_size, p.width.output_size, p.channels,
                                          n, i, j, c0),
                    PackMath<T, N>::repack(sum));
    }
  }
};

// grad_x[n, h, w, c0:c0+N] = sum over the taps that read (h, w) of weight * grad_out[n, i, j, c0:c0+N]
template <typename T, int N>
struct GradInputChannelsLast {
  using acc_t = typename Arith<T>::acc_t;
  Problem p;
  const T* __restrict__ grad_output;
  const T* __restrict__ weight;
  T* __restrict__ grad_input;

  INVOLUTION_HOST_DEVICE int64_t items() const {
    return p.batch * p.height.input_size * p.width.input_size * (p.channels / N);
  }

  INVOLUTION_HOST_DEVICE void operator()(const Thread& t) const {
    const int64_t total = items();
    for (int64_t item = first_item(t); item < total; item += item_stride(t)) {
      const PackItem at = pack_item<N>(p, item, p.height.input_size, p.width.input_size);
      const int64_t n = at.n, g = at.g, c0 = at.c0, h = at.row, w = at.col;
      acc_t sum[N] = {};
      for (int64_t u = 0; u < p.height.kernel_size; ++u) {
        int64_t i;
        if (!output_index(p.height, h, u, &i)) continue;
        const T* go_row = grad_output + pixel_offset(p.height.output_size, p.width.output_size,
                                                     p.channels, n, i, 0, c0);
        const T* taps = weight + weight_offset(p, n, g, u, 0, i, 0);
        for (int64_t v = 0; v < p.width.kernel_size; ++v) {
          int64_t j;
          if (!output_index(p.width, w, v, &j)) continue;
          const acc_t tap = Arith<T>::to_acc(read_only(taps + v * weight_tap_stride(p) + j));
          acc_t values[N];
          PackMath<T, N>::unpack(load_pack<N>(go_row + j * p.channels), values);
          INVOLUTION_UNROLL
          for (int k = 0; k < N; ++k) sum[k] += tap * values[k];
        }
      }
      store_pack<N>(grad_input + pixel_offset(p.height.input_size, p.width.input_size,
                                              p.channels, n, h, w, c0),
                    PackMath<T, N>::repack(sum));
    }
  }
};

// Channels of grad_output that the channels_last grad_weight keeps in registers (the default
// group size); a multiple of every pack width.
constexpr int kHeldChannels = 16;

// Converts a pack into values[0 .. N).
template <int N, typename T, typename acc_t>
INVOLUTION_HOST_DEVICE void unpack_into(const Pack<T, N>& pack, acc_t* values) {
  acc_t unpacked[N];
  PackMath<T, N>::unpack(pack, unpacked);
  INVOLUTION_UNROLL
  for (int k = 0; k < N; ++k) values[k] = unpacked[k];
}

// sum_k grads[k] * x[k] over one pack; a tap in the padding reads zero (grad * 0, as in the
// reference), so NaN/Inf grads propagate.
template <int N, typename T, typename acc_t>
INVOLUTION_HOST_DEVICE acc_t dot_with_input(const acc_t* grads, const T* x, bool in_input) {
  acc_t values[N] = {};
  if (in_input) PackMath<T, N>::unpack(load_pack<N>(x), values);
  acc_t sum = 0;
  INVOLUTION_UNROLL
  for (int k = 0; k < N; ++k) sum += grads[k] * values[k];
  return sum;
}

// grad_w[n, g, u, v, i, j] = sum_{c in g} grad_out[n, i, j, c] * x[n, h, w, c]: one thread per
// (n, g, i, j) covers every tap and reduces its group's channels itself, N at a time.
template <typename T, int N>
struct GradWeightChannelsLast {
  using acc_t = typename Arith<T>::acc_t;
  Problem p;
  const T* __restrict__ grad_output;
  const T* __restrict__ input;
  T* __restrict__ grad_weight;

  INVOLUTION_HOST_DEVICE int64_t items() const {
    return p.batch * p.groups * p.height.output_size * p.width.output_size;
  }

  INVOLUTION_HOST_DEVICE void operator()(const Thread& t) const {
    const int64_t per_group = channels_per_group(p), total = items();
    for (int64_t item = first_item(t); item < total; item += item_stride(t)) {
      // j fastest, so that neighbouring lanes write neighbouring grad_weight elements.
      const int64_t j = item % p.width.output_size;
      const int64_t i = item / p.width.output_size % p.height.output_size;
      const int64_t g = item / (p.width.output_size * p.height.output_size) % p.groups;
      const int64_t n = item / (p.width.output_size * p.height.output_size * p.groups);
      const T* go = grad_output + pixel_offset(p.height.output_size, p.width.output_size,
                                               p.channels, n, i, j, g * per_group);
      // A group of up to kHeldChannels keeps its grads in registers for all K² taps; a wider
      // one reloads them for each tap (from L1). Both sum in the same order.
      const bool hold = per_group <= kHeldChannels;
      acc_t held[kHeldChannels] = {};
      if (hold) {
        INVOLUTION_UNROLL
        for (int c = 0; c < kHeldChannels; c += N) {
          if (c < per_group) unpack_into<N>(load_pack<N>(go + c), held + c);
        }
      }
      for (int64_t u = 0; u < p.height.kernel_size; ++u) {
        const int64_t h = input_index(p.height, i, u);
        for (int64_t v = 0; v < p.width.kernel_size; ++v) {
          const int64_t w = input_index(p.width, j, v);
          const bool in_input = inside(h, p.height.input_size) && inside(w, p.width.input_size);
          const T* x = input + pixel_offset(p.height.input_size, p.width.input_size, p.channels,
                                            n, in_input ? h : 0, in_input ? w : 0, g * per_group);
          acc_t sum = 0;
          if (hold) {
            INVOLUTION_UNROLL
            for (int c = 0; c < kHeldChannels; c += N) {
              if (c < per_group) sum += dot_with_input<N>(held + c, x + c, in_input);
            }
          } else {
            for (int64_t c = 0; c < per_group; c += N) {
              acc_t grads[N];
              PackMath<T, N>::unpack(load_pack<N>(go + c), grads);
              sum += dot_with_input<N>(grads, x + c, in_input);
            }
          }
          grad_weight[weight_offset(p, n, g, u, v, i, j)] = Arith<T>::from_acc(sum);
        }
      }
    }
  }
};

// ---- channels-first (NCHW) kernels ------------------------------------------------------------

// Channels of one group that one thread covers in the channels-first kernels: each weight is
// loaded once for all of them (16 = the default group size, so a group is one thread).
constexpr int kChannelsPerThread = 16;

INVOLUTION_HOST_DEVICE int64_t channel_chunks(const Problem& p) {
  return (channels_per_group(p) + kChannelsPerThread - 1) / kChannelsPerThread;
}

// Where a channels-first item stands: image n, group g, channels c0 .. c0+count-1 (count may
// exceed 16: only the first 16 are the item's), pixel (row, col) of a rows × cols plane.
struct ChannelChunk {
  int64_t n, g, c0, count, row, col;
};

// Items are ordered (n, g, chunk, row, col) with col fastest, so neighbouring lanes take
// neighbouring pixels of the same channels and every access is coalesced across a warp.
INVOLUTION_HOST_DEVICE ChannelChunk channel_chunk(const Problem& p, int64_t item, int64_t rows,
                                                  int64_t cols) {
  const int64_t chunks = channel_chunks(p), per_group = channels_per_group(p);
  const int64_t chunk = item / (rows * cols) % chunks;
  const int64_t g = item / (rows * cols * chunks) % p.groups;
  const int64_t first = chunk * kChannelsPerThread;
  return {item / (rows * cols * chunks * p.groups), g, g * per_group + first, per_group - first,
          item / cols % rows, item % cols};
}

// Stores the item's sums to first[k * plane] for its channels k.
template <typename T, typename acc_t>
INVOLUTION_HOST_DEVICE void store_channels(T* first, int64_t plane, int64_t count,
                                           const acc_t (&sum)[kChannelsPerThread]) {
  INVOLUTION_UNROLL
  for (int k = 0; k < kChannelsPerThread; ++k) {
    if (k < count) first[k * plane] = Arith<T>::from_acc(sum[k]);
  }
}

// out[n, c, i, j] for the channels c0 .. c0+15 of one group (fewer at a group's end).
template <typename T>
struct ForwardChannelsFirst {
  using acc_t = typename Arith<T>::acc_t;
  Problem p;
  const T* __restrict__ input;
  const T* __restrict__ weight;
  T* __restrict__ output;

  INVOLUTION_HOST_DEVICE int64_t items() const {
    return p.batch * p.groups * channel_chunks(p) * p.height.output_size * p.width.output_size;
  }

  INVOLUTION_HOST_DEVICE void operator()(const Thread& t) const {
    const int64_t total = items();
    const int64_t in_plane = p.height.input_size * p.width.input_size;
    const int64_t out_plane = p.height.output_size * p.width.output_size;
    for (int64_t item = first_item(t); item < total; item += item_stride(t)) {
      const ChannelChunk at = channel_chunk(p, item, p.height.output_size, p.width.output_size);
      const int64_t n = at.n, g = at.g, c0 = at.c0, count = at.count, i = at.row, j = at.col;
      acc_t sum[kChannelsPerThread] = {};
      for (int64_t u = 0; u < p.height.kernel_size; ++u) {
        const int64_t h = input_index(p.height, i, u);
        const bool row_inside = inside(h, p.height.input_size);
        const T* x_row = input + plane_offset(p.channels, p.height.input_size, p.width.input_size,
                                              n, c0, row_inside ? h : 0, 0);
        const T* taps = weight + weight_offset(p, n, g, u, 0, i, j);
        for (int64_t v = 0; v < p.width.kernel_size; ++v) {
          const int64_t w = input_index(p.width, j, v);
          const acc_t tap = Arith<T>::to_acc(read_only(taps + v * weight_tap_stride(p)));
          const bool in_input = row_inside && inside(w, p.width.input_size);
          const T* x = x_row + (in_input ? w : 0);
          INVOLUTION_UNROLL
          for (int k = 0; k < kChannelsPerThread; ++k) {
            if (k < count) {
              // Padding reads zero and is multiplied: NaN/Inf taps propagate.
              sum[k] += tap * (in_input ? Arith<T>::to_acc(read_only(x + k * in_plane)) : acc_t(0));
            }
          }
        }
      }
      store_channels(output + plane_offset(p.channels, p.height.output_size, p.width.output_size,
                                           n, c0, i, j),
                     out_plane, count, sum);
    }
  }
};

// grad_x[n, c, h, w] for the channels c0 .. c0+15 of one group, each weight loaded once for them.
template <typename T>
struct GradInputChannelsFirst {
  using acc_t = typename Arith<T>::acc_t;
  Problem p;
  const T* __restrict__ grad_output;
  const T* __restrict__ weight;
  T* __restrict__ grad_input;

  INVOLUTION_HOST_DEVICE int64_t items() const {
    return p.batch * p.groups * channel_chunks(p) * p.height.input_size * p.width.input_size;
  }

  INVOLUTION_HOST_DEVICE void operator()(const Thread& t) const {
    const int64_t total = items();
    const int64_t in_plane = p.height.input_size * p.width.input_size;
    const int64_t out_plane = p.height.output_size * p.width.output_size;
    for (int64_t item = first_item(t); item < total; item += item_stride(t)) {
      const ChannelChunk at = channel_chunk(p, item, p.height.input_size, p.width.input_size);
      const int64_t n = at.n, g = at.g, c0 = at.c0, count = at.count, h = at.row, w = at.col;
      acc_t sum[kChannelsPerThread] = {};
      for (int64_t u = 0; u < p.height.kernel_size; ++u) {
        int64_t i;
        if (!output_index(p.height, h, u, &i)) continue;
        const T* go_row = grad_output + plane_offset(p.channels, p.height.output_size,
                                                     p.width.output_size, n, c0, i, 0);
        const T* taps = weight + weight_offset(p, n, g, u, 0, i, 0);
        for (int64_t v = 0; v < p.width.kernel_size; ++v) {
          int64_t j;
          if (!output_index(p.width, w, v, &j)) continue;
          const acc_t tap = Arith<T>::to_acc(read_only(taps + v * weight_tap_stride(p) + j));
          const T* go = go_row + j;
          INVOLUTION_UNROLL
          for (int k = 0; k < kChannelsPerThread; ++k) {
            if (k < count) sum[k] += tap * Arith<T>::to_acc(read_only(go + k * out_plane));
          }
        }
      }
      store_channels(grad_input + plane_offset(p.channels, p.height.input_size,
                                               p.width.input_size, n, c0, h, w),
                     in_plane, count, sum);
    }
  }
};

// Kernel taps of one row that one thread of the channels-first grad_weight covers: grad_output
// is loaded once per channel for all of them.
constexpr int kTapsPerThread = 8;

INVOLUTION_HOST_DEVICE int64_t tap_chunks(const Problem& p) {
  return (p.width.kernel_size + kTapsPerThread - 1) / kTapsPerThread;
}

// grad_w[n, g, u, v0 .. v0+7, i, j], reducing the group's channels in the thread.
template <typename T>
struct GradWeightChannelsFirst {
  using acc_t = typename Arith<T>::acc_t;
  Problem p;
  const T* __restrict__ grad_output;
  const T* __restrict__ input;
  T* __restrict__ grad_weight;

  INVOLUTION_HOST_DEVICE int64_t items() const {
    return p.batch * p.groups * p.height.kernel_size * tap_chunks(p) * p.height.output_size *
           p.width.output_size;
  }

  INVOLUTION_HOST_DEVICE void operator()(const Thread& t) const {
    const int64_t chunks = tap_chunks(p), per_group = channels_per_group(p), total = items();
    const int64_t out_plane = p.height.output_size * p.width.output_size;
    for (int64_t item = first_item(t); item < total; item += item_stride(t)) {
      const int64_t j = item % p.width.output_size;
      const int64_t i = item / p.width.output_size % p.height.output_size;
      const int64_t chunk = item / out_plane % chunks;
      const int64_t u = item / (out_plane * chunks) % p.height.kernel_size;
      const int64_t g = item / (out_plane * chunks * p.height.kernel_size) % p.groups;
      const int64_t n = item / (out_plane * chunks * p.height.kernel_size * p.groups);
      const int64_t v0 = chunk * kTapsPerThread;
      const int64_t h = input_index(p.height, i, u);
      const bool row_inside = inside(h, p.height.input_size);
      int64_t columns[kTapsPerThread];
      bool in_input[kTapsPerThread];
      INVOLUTION_UNROLL
      for (int k = 0; k < kTapsPerThread; ++k) {
        columns[k] = input_index(p.width, j, v0 + k);
        in_input[k] = row_inside && v0 + k < p.width.kernel_size &&
                      inside(columns[k], p.width.input_size);
      }
      acc_t sum[kTapsPerThread] = {};
      for (int64_t c = g * per_group; c < (g + 1) * per_group; ++c) {
        const acc_t grad = Arith<T>::to_acc(read_only(grad_output + plane_offset(
            p.channels, p.height.output_size, p.width.output_size, n, c, i, j)));
        const T* row = input + plane_offset(p.channels, p.height.input_size, p.width.input_size,
                                            n, c, row_inside ? h : 0, 0);
        INVOLUTION_UNROLL
        for (int k = 0; k < kTapsPerThread; ++k) {
          // A tap in the padding reads zero (grad * 0, as in the reference).
          sum[k] += grad * (in_input[k] ? Arith<T>::to_acc(read_only(row + columns[k])) : acc_t(0));
        }
      }
      INVOLUTION_UNROLL
      for (int k = 0; k < kTapsPerThread; ++k) {
        if (v0 + k < p.width.kernel_size) {
          grad_weight[weight_offset(p, n, g, u, v0 + k, i, j)] = Arith<T>::from_acc(sum[k]);
        }
      }
    }
  }
};

// ---- choosing the kernel ------------------------------------------------------------------------

// Launches First<T> on channels-first tensors; on channels_last ones Last<T, N> with 16-byte
// packs when `packed` (the channels_last tensors' bases) and the groups allow, else N = 1.
// Tensors are contiguous in `layout`; the weight is always (B, G, KH, KW, Ho, Wo).
template <template <typename> class First, template <typename, int> class Last, typename T,
          typename Launch>
void launch_for_layout(const Problem& p, Layout layout, const T* a, const T* b, T* result,
                       std::initializer_list<const void*> packed, Launch&& launch) {
  if (layout == Layout::kChannelsFirst) {
    launch(First<T>{p, a, b, result});
  } else if (channels_last_pack<T>(p, packed) > 1) {
    launch(Last<T, kWidePack<T>>{p, a, b, result});
  } else {
    launch(Last<T, 1>{p, a, b, result});
  }
}

template <typename T, typename Launch>
void forward(const Problem& p, Layout layout, const T* input, const T* weight, T* output,
             Launch&& launch) {
  launch_for_layout<ForwardChannelsFirst, ForwardChannelsLast>(p, layout, input, weight, output,
                                                               {input, output}, launch);
}

template <typename T, typename Launch>
void grad_input(const Problem& p, Layout layout, const T* grad_output, const T* weight,
                T* grad_input, Launch&& launch) {
  launch_for_layout<GradInputChannelsFirst, GradInputChannelsLast>(
      p, layout, grad_output, weight, grad_input, {grad_output, grad_input}, launch);
}

template <typename T, typename Launch>
void grad_weight(const Problem& p, Layout layout, const T* grad_output, const T* input,
                 T* grad_weight, Launch&& launch) {
  launch_for_layout<GradWeightChannelsFirst, GradWeightChannelsLast>(
      p, layout, grad_output, input, grad_weight, {grad_output, input}, launch);
}

}  // namespace fast
}  // namespace involution
