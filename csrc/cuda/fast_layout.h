// The layout the fast kernels run in for tensors of a torch memory format; shared by the CUDA
// glue and the emulated launch, which both lay tensors out by result_memory_format (checks.h).
#pragma once

#include <c10/core/MemoryFormat.h>

#include "fast_threads.h"

namespace involution {
namespace fast {

inline Layout layout_of(c10::MemoryFormat format) {
  return format == c10::MemoryFormat::ChannelsLast ? Layout::kChannelsLast
                                                   : Layout::kChannelsFirst;
}

}  // namespace fast
}  // namespace involution
