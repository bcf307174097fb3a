// A task's cache lines, listed while the task before it starts and requested a few at a time
// from that task's innermost loop (forward_channel_tasks.h), so that the requests spread evenly
// over its compute. Requested in bursts, once per tile, the stage-1 forward's 2,600 lines a
// task stalled the loads that the multiply-adds wait for: the memory time added to the compute
// time instead of hiding under it. (The row tiles, forward_tasks.h, still request a slice per
// tile.) A task's rows are short and scattered (one per kernel tap): too many streams for the
// hardware prefetchers.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <utility>

#include "tiles.h"

namespace involution {
namespace cpu {

// Lines [begin, end) of a task's list, requested in `requests` equal parts (one per kernel row).
struct PrefetchSlice {
  const uintptr_t* lines;  // a line's address, + 1 for a line about to be written
  int64_t count;
  int64_t per_request;  // lines per request, rounded up: no division per kernel row
  // Requests part `part` of the slice's lines, into L2, not L1 (prefetcht1): the next task's
  // rows are over 100 KB at RedNet's shapes, and in L1 they would evict the current task's own
  // (stage 1's forward 5.35 -> 3.24 ms at AVX-512 on a Zen 4 host, with the lines of the rows
  // about to be written: benchmarks/results/ab_zen4_avx512_*.json).
  INVOLUTION_CPU_INLINE void request(int64_t part) const {
    constexpr int kL2 = 2;
    const int64_t begin = std::min(part * per_request, count);
    const int64_t end = std::min(begin + per_request, count);
    for (int64_t k = begin; k < end; ++k) {
      const uintptr_t line = lines[k];
      if (line & 1) {
        __builtin_prefetch(reinterpret_cast<const void*>(line - 1), 1, kL2);
      } else {
        __builtin_prefetch(reinterpret_cast<const void*>(line), 0, kL2);
      }
    }
  }
};

class PrefetchLines {
 public:
  void clear() { size_ = 0; }

  // The lines of `rows` rows `row_stride` apart, `count` elements each (contiguous rows only:
  // a row with a step, channels_last, is left to the hardware), one span where the rows are
  // back to back.
  template <int kWrite, typename T>
  void add_rows(const T* first, int64_t step, int64_t row_stride, int64_t rows, int64_t count) {
    if (step != 1 || rows <= 0 || count <= 0) return;
    if (row_stride == count) return add_span<kWrite>(first, rows * count);
    for (int64_t r = 0; r < rows; ++r) add_span<kWrite>(first + r * row_stride, count);
  }

  // add_rows as a row visitor (visit_forward_task_rows, visit_grad_input_task_rows).
  template <typename T, typename Write>
  void operator()(const T* first, int64_t step, int64_t row_stride, int64_t rows, int64_t count,
                  Write) {
    add_rows<Write::value>(first, step, row_stride, rows, count);
  }

  // Slice `part` of `parts`, in list order, to be requested in `requests` parts.
  PrefetchSlice slice(int64_t part, int64_t parts, int64_t requests) const {
    const int64_t begin = size_ * part / parts, end = size_ * (part + 1) / parts;
    return {lines_.get() + begin, end - begin, (end - begin + requests - 1) / requests};
  }

  const uintptr_t* data() const { return lines_.get(); }
  int64_t size() const { return size_; }

 private:
  template <int kWrite, typename T>
  void add_span(const T* first, int64_t count) {
    constexpr uintptr_t kLine = 64;
    const uintptr_t begin = reinterpret_cast<uintptr_t>(first) & ~(kLine - 1);
    const uintptr_t last = reinterpret_cast<uintptr_t>(first + count - 1) & ~(kLine - 1);
    const int64_t added = static_cast<int64_t>((last - begin) / kLine) + 1;
    // filled through a local pointer, never zeroed first: push_back kept the vector's end in
    // memory (a store-to-load chain per line, a tenth of the stage-1 forward) and resize
    // called memset for every span (stage 4's are a tap's 49 floats)
    uintptr_t* out = extend(added);
    for (int64_t k = 0; k < added; ++k) out[k] = begin + k * kLine + kWrite;
  }

  // The list made `added` lines longer: where they go.
  uintptr_t* extend(int64_t added) {
    if (size_ + added > capacity_) {
      const int64_t capacity = std::max<int64_t>(2 * capacity_, size_ + added);
      std::unique_ptr<uintptr_t[]> lines(new uintptr_t[capacity]);
      std::copy_n(lines_.get(), size_, lines.get());
      lines_ = std::move(lines);
      capacity_ = capacity;
    }
    size_ += added;
    return lines_.get() + size_ - added;
  }

  std::unique_ptr<uintptr_t[]> lines_;
  int64_t size_ = 0, capacity_ = 0;
};

// The slices 0, 1, 2, ... of `parts` of a list in turn, the same as PrefetchLines::slice gives
// without its two divisions (one slice per tile: they were a tenth of stage 4's task loop).
class PrefetchSlices {
 public:
  PrefetchSlices(const PrefetchLines& lines, int64_t parts)
      : lines_(lines.data()), step_(lines.size() / parts), extra_(lines.size() % parts),
        parts_(parts) {}

  // The next slice, to be requested in `requests` parts.
  PrefetchSlice next(int64_t requests) {
    int64_t count = step_;
    remainder_ += extra_;  // begin = floor(size * part / parts), kept as quotient and remainder
    if (remainder_ >= parts_) remainder_ -= parts_, ++count;
    const PrefetchSlice slice{lines_ + begin_, count, (count + requests - 1) / requests};
    begin_ += count;
    return slice;
  }

 private:
  const uintptr_t* lines_;
  int64_t step_, extra_, parts_;
  int64_t begin_ = 0, remainder_ = 0;
};

}  // namespace cpu
}  // namespace involution
