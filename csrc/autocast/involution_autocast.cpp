// Autocast kernels of the three involution ops, one per op and autocast device (CPU, CUDA).
//
// Under torch.autocast the ops run in the autocast dtype, the policy autocast applies to
// convolutions: floating-point tensors other than float64 are cast (float64 is left alone, as
// at::autocast::cached_cast does), the kernels accumulate in float32 whatever the storage dtype,
// and the result stays in the autocast dtype. Registering the cast at the op level makes raw
// ops, the functional API and compiled or exported graphs behave alike.
#include <ATen/autocast_mode.h>
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <torch/library.h>

#include <utility>

#include "../op_calls.h"

namespace involution {
namespace {

template <c10::DeviceType device>
constexpr c10::DispatchKey autocast_key() {
  return device == c10::DeviceType::CUDA ? c10::DispatchKey::AutocastCUDA
                                         : c10::DispatchKey::AutocastCPU;
}

template <c10::DeviceType device>
at::Tensor cast(const at::Tensor& tensor) {
  return at::autocast::cached_cast(at::autocast::get_autocast_dtype(device), tensor, device);
}

template <c10::DeviceType device>
at::Tensor involution_autocast(const at::Tensor& input, const at::Tensor& weight,
                               at::IntArrayRef stride, at::IntArrayRef padding,
                               at::IntArrayRef dilation, c10::string_view kernels) {
  c10::impl::ExcludeDispatchKeyGuard no_autocast(autocast_key<device>());
  return call_involution(cast<device>(input), cast<device>(weight), stride, padding, dilation,
                         kernels);
}

template <c10::DeviceType device>
at::Tensor grad_input_autocast(const at::Tensor& grad_output, const at::Tensor& weight,
                               c10::SymIntArrayRef input_size, at::IntArrayRef stride,
                               at::IntArrayRef padding, at::IntArrayRef dilation,
                               c10::string_view kernels) {
  c10::impl::ExcludeDispatchKeyGuard no_autocast(autocast_key<device>());
  return call_grad_input(cast<device>(grad_output), cast<device>(weight), input_size, stride,
                         padding, dilation, kernels);
}

template <c10::DeviceType device>
at::Tensor grad_weight_autocast(const at::Tensor& grad_output, const at::Tensor& input,
                                c10::SymInt groups, c10::SymIntArrayRef kernel_size,
                                at::IntArrayRef stride, at::IntArrayRef padding,
                                at::IntArrayRef dilation, c10::string_view kernels) {
  c10::impl::ExcludeDispatchKeyGuard no_autocast(autocast_key<device>());
  return call_grad_weight(cast<device>(grad_output), cast<device>(input), std::move(groups),
                          kernel_size, stride, padding, dilation, kernels);
}

}  // namespace

TORCH_LIBRARY_IMPL(involution_cuda, AutocastCPU, m) {
  m.impl("involution", &involution_autocast<c10::DeviceType::CPU>);
  m.impl("involution_grad_input", &grad_input_autocast<c10::DeviceType::CPU>);
  m.impl("involution_grad_weight", &grad_weight_autocast<c10::DeviceType::CPU>);
}

TORCH_LIBRARY_IMPL(involution_cuda, AutocastCUDA, m) {
  m.impl("involution", &involution_autocast<c10::DeviceType::CUDA>);
  m.impl("involution_grad_input", &grad_input_autocast<c10::DeviceType::CUDA>);
  m.impl("involution_grad_weight", &grad_weight_autocast<c10::DeviceType::CUDA>);
}

}  // namespace involution
