// The Python module involution_cuda._C. Importing it runs the static op registrations of this
// library (schemas in ops.cpp, kernels per dispatch key); the module itself exposes the argument
// checks (checks.h) so that the Python entry points that do not run a kernel (fake kernels,
// reference, decomposition) raise exactly what the kernels raise, and the ISA level the CPU
// kernels run at. Each check returns the result's
// size (symbolic in compiled graphs) and whether the result is channels_last.
#include <torch/extension.h>

#include <string>
#include <tuple>
#include <vector>

#include "checks.h"
#include "cpu/isa.h"

namespace {

using Result = std::tuple<std::vector<c10::SymInt>, bool>;

Result result_of(const involution::Checked& checked) {
  return {checked.result_size, checked.result_format == at::MemoryFormat::ChannelsLast};
}

Result check_forward(const at::Tensor& input, const at::Tensor& weight,
                     std::vector<int64_t> stride, std::vector<int64_t> padding,
                     std::vector<int64_t> dilation, const std::string& kernels) {
  return result_of(involution::check_forward(input, weight, stride, padding, dilation, kernels));
}

Result check_grad_input(const at::Tensor& grad_output, const at::Tensor& weight,
                        c10::SymIntArrayRef input_size, std::vector<int64_t> stride,
                        std::vector<int64_t> padding, std::vector<int64_t> dilation,
                        const std::string& kernels) {
  return result_of(involution::check_grad_input(grad_output, weight, input_size, stride, padding,
                                                dilation, kernels));
}

Result check_grad_weight(const at::Tensor& grad_output, const at::Tensor& input,
                         const c10::SymInt& groups, c10::SymIntArrayRef kernel_size,
                         std::vector<int64_t> stride, std::vector<int64_t> padding,
                         std::vector<int64_t> dilation, const std::string& kernels) {
  return result_of(involution::check_grad_weight(grad_output, input, groups, kernel_size, stride,
                                                 padding, dilation, kernels));
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("check_forward", &check_forward, "Checks the arguments of involution.");
  m.def("check_grad_input", &check_grad_input, "Checks the arguments of involution_grad_input.");
  m.def("check_grad_weight", &check_grad_weight,
        "Checks the arguments of involution_grad_weight.");
  m.def("cpu_capability", [] { return std::string(involution::cpu::isa_name(involution::cpu::isa())); },
        "The ISA level the CPU kernels run at: default, avx2 or avx512.");
}
