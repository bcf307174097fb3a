// The two sets of CUDA kernels and the choice of a kernel functor by set and layout, shared by
// the CUDA launchers (launchers.cu) and the test-only emulated launches, so both run the same
// functor for the same call. No torch and no CUDA headers.
//   kBaseline: baseline/kernels.h, one thread per result element, channels-first tensors only;
//   kFast:     fast/select.h, several channels per thread, channels-first or channels_last.
// Each entry point calls launch(functor) and returns true, or returns false without launching
// for a channels_last layout with the baseline set (the caller lays tensors out for its set).
#pragma once

#include "baseline/kernels.h"
#include "fast/select.h"
#include "plumbing.h"

namespace involution {
namespace cuda {

enum class KernelSet { kBaseline, kFast };

// Runs fast() with the fast set, or baseline() with the baseline set on channels-first tensors;
// false, running nothing, for a layout the chosen set cannot read.
template <typename Fast, typename Baseline>
bool run_set(KernelSet set, Layout layout, const Fast& fast, const Baseline& baseline) {
  if (set == KernelSet::kFast) {
    fast();
  } else if (layout == Layout::kChannelsFirst) {
    baseline();
  } else {
    return false;
  }
  return true;
}

template <typename T, typename Launch>
bool forward(KernelSet set, Layout layout, const Problem& p, const T* input, const T* weight,
             T* output, Launch&& launch) {
  return run_set(set, layout, [&] { fast::forward(p, layout, input, weight, output, launch); },
                 [&] { baseline::forward(p, input, weight, output, launch); });
}

template <typename T, typename Launch>
bool grad_input(KernelSet set, Layout layout, const Problem& p, const T* grad_output,
                const T* weight, T* grad_input, Launch&& launch) {
  return run_set(
      set, layout, [&] { fast::grad_input(p, layout, grad_output, weight, grad_input, launch); },
      [&] { baseline::grad_input(p, grad_output, weight, grad_input, launch); });
}

template <typename T, typename Launch>
bool grad_weight(KernelSet set, Layout layout, const Problem& p, const T* grad_output,
                 const T* input, T* grad_weight, Launch&& launch) {
  return run_set(
      set, layout, [&] { fast::grad_weight(p, layout, grad_output, input, grad_weight, launch); },
      [&] { baseline::grad_weight(p, grad_output, input, grad_weight, launch); });
}

}  // namespace cuda
}  // namespace involution
