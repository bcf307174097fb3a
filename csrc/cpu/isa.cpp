// Host ISA detection for the CPU kernels (see isa.h). AVX2 means x86-64-v3 (AVX2, FMA, F16C,
// BMI2); AVX-512 means x86-64-v4 (AVX-512 F, BW, DQ, VL), as the kernels are compiled for.
#include "isa.h"

#include <c10/util/Exception.h>

#include <cstdlib>
#include <string>

namespace involution {
namespace cpu {
namespace {

Isa host_isa() {
#if defined(__GNUC__) && defined(__x86_64__)
  __builtin_cpu_init();
  const bool v3 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                  __builtin_cpu_supports("f16c") && __builtin_cpu_supports("bmi2");
  const bool v4 = v3 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                  __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
  return v4 ? Isa::kAvx512 : v3 ? Isa::kAvx2 : Isa::kDefault;
#else
  return Isa::kDefault;  // other architectures run the portable kernels
#endif
}

Isa capped_isa() {
  const Isa host = host_isa();
  const char* setting = std::getenv("ATEN_CPU_CAPABILITY");
  if (setting == nullptr || *setting == '\0') return host;
  const std::string cap(setting);
  for (Isa level : {Isa::kDefault, Isa::kAvx2, Isa::kAvx512}) {
    if (cap == isa_name(level)) return level < host ? level : host;
  }
  // PyTorch ignores values it does not know (other architectures' names); so do the kernels.
  TORCH_WARN_ONCE("involution_cuda: ATEN_CPU_CAPABILITY=", cap,
                  " is not one of default, avx2, avx512; using ", isa_name(host));
  return host;
}

}  // namespace

Isa isa() {
  static const Isa chosen = capped_isa();
  return chosen;
}

const char* isa_name(Isa level) {
  switch (level) {
    case Isa::kAvx512:
      return "avx512";
    case Isa::kAvx2:
      return "avx2";
    default:
      return "default";
  }
}

}  // namespace cpu
}  // namespace involution
