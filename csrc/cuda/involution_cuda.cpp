// Torch-facing glue of the CUDA kernels (built only in CUDA builds): argument checks, device
// guard, current stream, dtype dispatch, the choice between the baseline and the fast kernels
// (involution_cuda.set_cuda_kernels), launch-error reporting, and the CUDA registration.
//
// The baseline kernels work in NCHW; the fast ones natively in NCHW or channels_last (NHWC).
// Either way each result takes the memory format of result_memory_format (checks.h).
#include <ATen/Dispatch.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>
#include <torch/types.h>

#include "../checks.h"
#include "../cuda_kernels_choice.h"
#include "fast_kernels.cuh"
#include "fast_layout.h"
#include "involution_kernels.cuh"

namespace involution {
namespace {

// The CUDA type with the same bits as each torch scalar type.
template <typename T> struct CudaType { using type = T; };
template <> struct CudaType<at::Half> { using type = __half; };
template <> struct CudaType<at::BFloat16> { using type = __nv_bfloat16; };

template <typename scalar_t>
const typename CudaType<scalar_t>::type* cuda_ptr(const at::Tensor& tensor) {
  return reinterpret_cast<const typename CudaType<scalar_t>::type*>(tensor.const_data_ptr<scalar_t>());
}

template <typename scalar_t>
typename CudaType<scalar_t>::type* cuda_mutable_ptr(at::Tensor& tensor) {
  return reinterpret_cast<typename CudaType<scalar_t>::type*>(tensor.mutable_data_ptr<scalar_t>());
}

void check_cuda(const at::Tensor& tensor, const char* name) {
  TORCH_CHECK_VALUE(tensor.is_cuda(), name, " must be a CUDA tensor, got device ", tensor.device());
}

bool use_fast_kernels() { return cuda_kernels() == CudaKernels::kFast; }

void check_launch(cudaError_t error, const char* what) {
  TORCH_CHECK(error == cudaSuccess, "involution CUDA ", what, " kernel failed to launch: ",
              cudaGetErrorString(error));
}

at::Tensor involution_cuda(const at::Tensor& input, const at::Tensor& weight,
                           at::IntArrayRef stride, at::IntArrayRef padding,
                           at::IntArrayRef dilation) {
  const Problem p = check_forward(input, weight, stride, padding, dilation);
  check_cuda(input, "input");
  const c10::cuda::CUDAGuard guard(input.device());
  const bool fast = use_fast_kernels();
  const at::MemoryFormat format = result_memory_format(input);
  const at::MemoryFormat kernel_format = fast ? format : at::MemoryFormat::Contiguous;
  const at::Tensor input_c = input.contiguous(kernel_format);
  const at::Tensor weight_c = weight.contiguous();
  at::Tensor output = at::empty({p.batch, p.channels, p.height.output_size, p.width.output_size},
                                input.options().memory_format(kernel_format));
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream().stream();
  const fast::Layout layout = fast::layout_of(format);  // used by the fast kernels only
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "involution_cuda", [&] {
    const auto* x = cuda_ptr<scalar_t>(input_c);
    const auto* w = cuda_ptr<scalar_t>(weight_c);
    auto* out = cuda_mutable_ptr<scalar_t>(output);
    check_launch(fast ? cuda::launch_fast_forward(p, layout, x, w, out, stream)
                      : cuda::launch_forward(p, x, w, out, stream),
                 "forward");
  });
  return output.contiguous(format);
}

at::Tensor involution_grad_input_cuda(const at::Tensor& grad_output, const at::Tensor& weight,
                                      at::IntArrayRef input_size, at::IntArrayRef stride,
                                      at::IntArrayRef padding, at::IntArrayRef dilation) {
  const Problem p = check_grad_input(grad_output, weight, input_size, stride, padding, dilation);
  check_cuda(grad_output, "grad_output");
  const c10::cuda::CUDAGuard guard(grad_output.device());
  const bool fast = use_fast_kernels();
  const at::MemoryFormat format = result_memory_format(grad_output);
  const at::MemoryFormat kernel_format = fast ? format : at::MemoryFormat::Contiguous;
  const at::Tensor grad_output_c = grad_output.contiguous(kernel_format);
  const at::Tensor weight_c = weight.contiguous();
  at::Tensor grad_input = at::empty({p.batch, p.channels, p.height.input_size, p.width.input_size},
                                    grad_output.options().memory_format(kernel_format));
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream().stream();
  const fast::Layout layout = fast::layout_of(format);  // used by the fast kernels only
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, grad_output.scalar_type(), "involution_grad_input_cuda", [&] {
        const auto* go = cuda_ptr<scalar_t>(grad_output_c);
        const auto* w = cuda_ptr<scalar_t>(weight_c);
        auto* gx = cuda_mutable_ptr<scalar_t>(grad_input);
        check_launch(fast ? cuda::launch_fast_grad_input(p, layout, go, w, gx, stream)
                          : cuda::launch_grad_input(p, go, w, gx, stream),
                     "grad_input");
      });
  return grad_input.contiguous(format);
}

at::Tensor involution_grad_weight_cuda(const at::Tensor& grad_output, const at::Tensor& input,
                                       int64_t groups, at::IntArrayRef kernel_size,
                                       at::IntArrayRef stride, at::IntArrayRef padding,
                                       at::IntArrayRef dilation) {
  const Problem p =
      check_grad_weight(grad_output, input, groups, kernel_size, stride, padding, dilation);
  check_cuda(input, "input");
  const c10::cuda::CUDAGuard guard(input.device());
  const bool fast = use_fast_kernels();
  // The fast kernels read both tensors in the input's layout; grad_weight is always contiguous.
  const at::MemoryFormat format = fast ? result_memory_format(input) : at::MemoryFormat::Contiguous;
  const at::Tensor grad_output_c = grad_output.contiguous(format);
  const at::Tensor input_c = input.contiguous(format);
  at::Tensor grad_weight =
      at::empty({p.batch, p.groups, p.height.kernel_size, p.width.kernel_size,
                 p.height.output_size, p.width.output_size},
                input.options());
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream().stream();
  const fast::Layout layout = fast::layout_of(format);  // used by the fast kernels only
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, input.scalar_type(), "involution_grad_weight_cuda", [&] {
        const auto* go = cuda_ptr<scalar_t>(grad_output_c);
        const auto* x = cuda_ptr<scalar_t>(input_c);
        auto* gw = cuda_mutable_ptr<scalar_t>(grad_weight);
        check_launch(fast ? cuda::launch_fast_grad_weight(p, layout, go, x, gw, stream)
                          : cuda::launch_grad_weight(p, go, x, gw, stream),
                     "grad_weight");
      });
  return grad_weight;
}

}  // namespace

TORCH_LIBRARY_IMPL(involution_cuda, CUDA, m) {
  m.impl("involution", &involution_cuda);
  m.impl("involution_grad_input", &involution_grad_input_cuda);
  m.impl("involution_grad_weight", &involution_grad_weight_cuda);
}

}  // namespace involution
