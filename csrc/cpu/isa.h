// The vector ISA level the CPU kernels run at: the best the host supports, capped by
// ATEN_CPU_CAPABILITY (default | avx2 | avx512), PyTorch's own setting for its CPU kernels, so
// that every level can be tested and benchmarked on one machine.
#pragma once

namespace involution {
namespace cpu {

enum class Isa { kDefault = 0, kAvx2 = 1, kAvx512 = 2 };

// Read once, at the first call (as PyTorch does).
Isa isa();

// "default", "avx2" or "avx512".
const char* isa_name(Isa isa);

}  // namespace cpu
}  // namespace involution
