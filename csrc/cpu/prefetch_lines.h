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

// A run of back-to-back cache lines of a task's list: its first line's address (+ 1 where the
// lines are about to be written) and its first line's index in the list. A list is stored as
// such spans, with a last one that only marks the list's end: listing a line at a time cost a
// store per line when the list was built and a load and a test per line when it was requested
// (together about a tenth of the stage-3 forward at AVX2 on a Zen 3 host).
struct PrefetchSpan {
  uintptr_t line;
  int64_t begin;
};

// Lines [begin, end) of a task's list, requested in equal parts in turn (one per kernel row).
struct PrefetchSlice {
  const PrefetchSpan* span;  // the span holding line `begin` (or one before it)
  int64_t begin, end;
  int64_t per_request;  // lines per request, rounded up: no division per kernel row
  // Requests the slice's next part, into L2, not L1 (prefetcht1): the next task's rows are
  // over 100 KB at RedNet's shapes, and in L1 they would evict the current task's own (stage 1's
  // forward 5.35 -> 3.24 ms at AVX-512 on a Zen 4 host, with the lines of the rows about to be
  // written: benchmarks/results/ab_zen4_avx512_*.json). The slice keeps its place, span
  // included, so that its spans are walked once over all its parts (grad_weight's slices cross
  // two spans per channel).
  INVOLUTION_CPU_INLINE void request_next() {
    const int64_t last = std::min(begin + per_request, end);
    while (begin < last) {
      if (span[1].begin <= begin) {
        ++span;
        continue;
      }
      const int64_t lines = std::min(last, span[1].begin) - begin;
      const uintptr_t line = span->line + static_cast<uintptr_t>(begin - span->begin) * 64;
      if (line & 1) {
        request_lines<1>(line - 1, lines);
      } else {
        request_lines<0>(line, lines);
      }
      begin += lines;
    }
  }

 private:
  template <int kWrite>
  INVOLUTION_CPU_INLINE static void request_lines(uintptr_t line, int64_t lines) {
    constexpr int kL2 = 2;
    for (int64_t k = 0; k < lines; ++k) {
      __builtin_prefetch(reinterpret_cast<const void*>(line + k * 64), kWrite, kL2);
    }
  }
};

class PrefetchLines {
 public:
  PrefetchLines() { clear(); }

  void clear() {
    spans_count_ = 0;
    size_ = 0;
    reserve(1);
    spans_[0] = {0, 0};
  }

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
    return {span_of(spans_.get(), begin), begin, end, (end - begin + requests - 1) / requests};
  }

  // The span holding line `line`, walked to from `from` (at or before it); the end mark for
  // the list's end.
  const PrefetchSpan* span_of(const PrefetchSpan* from, int64_t line) const {
    const PrefetchSpan* end = spans_.get() + spans_count_;
    while (from < end && from[1].begin <= line) ++from;
    return from;
  }

  const PrefetchSpan* spans() const { return spans_.get(); }
  int64_t size() const { return size_; }  // in lines

 private:
  template <int kWrite, typename T>
  void add_span(const T* first, int64_t count) {
    constexpr uintptr_t kLine = 64;
    const uintptr_t begin = reinterpret_cast<uintptr_t>(first) & ~(kLine - 1);
    const uintptr_t last = reinterpret_cast<uintptr_t>(first + count - 1) & ~(kLine - 1);
    const int64_t added = static_cast<int64_t>((last - begin) / kLine) + 1;
    PrefetchSpan* end = spans_.get() + spans_count_;  // the end mark
    const uintptr_t line = begin + kWrite;
    if (spans_count_ > 0 && end[-1].line + static_cast<uintptr_t>(size_ - end[-1].begin) * kLine ==
                                line) {
      size_ += added;  // continues the last span
      end->begin = size_;
      return;
    }
    reserve(spans_count_ + 2);
    end = spans_.get() + spans_count_;
    *end = {line, size_};
    size_ += added;
    end[1] = {0, size_};
    ++spans_count_;
  }

  // Room for `count` spans, the end mark included.
  void reserve(int64_t count) {
    if (count <= capacity_) return;
    const int64_t capacity = std::max<int64_t>({2 * capacity_, count, 64});
    std::unique_ptr<PrefetchSpan[]> spans(new PrefetchSpan[capacity]);
    if (spans_) std::copy_n(spans_.get(), spans_count_ + 1, spans.get());
    spans_ = std::move(spans);
    capacity_ = capacity;
  }

  std::unique_ptr<PrefetchSpan[]> spans_;
  int64_t spans_count_ = 0;  // the spans before the end mark
  int64_t size_ = 0;         // lines
  int64_t capacity_ = 0;
};

// The slices 0, 1, 2, ... of `parts` of a list in turn, the same as PrefetchLines::slice gives
// without its two divisions (one slice per tile: they were a tenth of stage 4's task loop).
class PrefetchSlices {
 public:
  PrefetchSlices(const PrefetchLines& lines, int64_t parts)
      : lines_(lines), span_(lines.spans()), step_(lines.size() / parts),
        extra_(lines.size() % parts), parts_(parts) {}

  // The next slice, to be requested in `requests` parts.
  PrefetchSlice next(int64_t requests) {
    int64_t count = step_;
    remainder_ += extra_;  // begin = floor(size * part / parts), kept as quotient and remainder
    if (remainder_ >= parts_) remainder_ -= parts_, ++count;
    span_ = lines_.span_of(span_, begin_);
    const PrefetchSlice slice{span_, begin_, begin_ + count, (count + requests - 1) / requests};
    begin_ += count;
    return slice;
  }

 private:
  const PrefetchLines& lines_;
  const PrefetchSpan* span_;
  int64_t step_, extra_, parts_;
  int64_t begin_ = 0, remainder_ = 0;
};

}  // namespace cpu
}  // namespace involution
